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
