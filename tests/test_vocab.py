import pytest

from vqalab.data.vocab import IGNORE_INDEX, AnswerVocab


def test_vocab_orders_by_frequency_then_alphabet():
    vocab = AnswerVocab.build(["no", "yes", "yes", "red", "blue", "no", "yes"])
    assert vocab.answers == ["yes", "no", "blue", "red"]
    assert vocab.label("yes") == 0
    assert vocab.label("red") == 3
    assert len(vocab) == 4


def test_vocab_min_count_and_unknown_answers():
    vocab = AnswerVocab.build(["yes", "yes", "no", "no", "rare"], min_count=2)
    assert vocab.answers == ["no", "yes"]
    assert "rare" not in vocab
    assert vocab.label("rare") == IGNORE_INDEX


def test_vocab_rejects_empty_and_duplicates():
    with pytest.raises(ValueError, match="min_count=3"):
        AnswerVocab.build(["yes", "no"], min_count=3)
    with pytest.raises(ValueError, match="duplicate"):
        AnswerVocab(["yes", "yes"])


def test_list_answers_name_their_parts_that_are_answers_of_their_own():
    vocab = AnswerVocab(["chair", "table", "chair, table", "lamp, sofa", "sofa, chair, vase", "red"])
    # "lamp, sofa" names no answer of the vocabulary; "sofa, chair, vase" only chair.
    assert vocab.list_parts() == {2: [0, 1], 4: [0]}
    assert AnswerVocab(["yes", "no"]).list_parts() == {}
