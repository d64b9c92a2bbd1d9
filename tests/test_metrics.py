import numpy as np
import pytest
from sentence_transformers import SentenceTransformer

from vqalab.evaluation.metrics import accuracy, accuracy_by_answer_type, exact_match, sbert_similarity
from vqalab.models.pretrained import resolve_pretrained

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
