"""The one metrics module: every figure in ``metrics/`` is computed here.

Accuracy (exact match), accuracy per answer type, per answer-frequency bucket and per question
type, SBERT similarity and WUPS.

Answers are compared after ``normalize_answer``; predictions and gold answers stored in records
are already normalised, and normalisation is idempotent, so comparing again is safe.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from vqalab.data.normalize import normalize_answer
from vqalab.models.pretrained import resolve_pretrained


def exact_match(predictions: Sequence[str], golds: Sequence[str]) -> list[bool]:
    if len(predictions) != len(golds):
        raise ValueError(f"{len(predictions)} predictions for {len(golds)} gold answers")
    return [normalize_answer(p) == normalize_answer(g) for p, g in zip(predictions, golds)]


def accuracy(predictions: Sequence[str], golds: Sequence[str]) -> float:
    matches = exact_match(predictions, golds)
    return sum(matches) / len(matches) if matches else float("nan")


def accuracy_by_group(predictions: Sequence[str], golds: Sequence[str], groups: Sequence[str | None]) -> dict:
    """{group: {"accuracy", "n"}} for every group present (None groups are left out)."""
    matches = exact_match(predictions, golds)
    result = {}
    for group in sorted({g for g in groups if g is not None}):
        picked = [m for m, g in zip(matches, groups) if g == group]
        result[group] = {"accuracy": sum(picked) / len(picked), "n": len(picked)}
    return result


def accuracy_by_answer_type(predictions: Sequence[str], golds: Sequence[str], answer_types: Sequence[str]) -> dict:
    """Overall accuracy plus ``accuracy_<type>`` and ``n_<type>`` for every answer type present."""
    result: dict = {"accuracy": accuracy(predictions, golds), "n": len(golds)}
    for answer_type, group in accuracy_by_group(predictions, golds, answer_types).items():
        result[f"accuracy_{answer_type}"] = group["accuracy"]
        result[f"n_{answer_type}"] = group["n"]
    return result


def sentence_embeddings(texts: Sequence[str], *, model_name: str, batch_size: int = 256) -> np.ndarray:
    """Unit-length SBERT embeddings of ``texts`` (one row each); each distinct text is embedded once."""
    from sentence_transformers import SentenceTransformer

    distinct = sorted(set(texts))
    if not distinct:
        return np.zeros((0, 0), dtype=np.float32)
    scorer = SentenceTransformer(resolve_pretrained(model_name))
    vectors = scorer.encode(distinct, batch_size=batch_size, convert_to_numpy=True, normalize_embeddings=True,
                            show_progress_bar=False)
    row = {text: i for i, text in enumerate(distinct)}
    return vectors[[row[t] for t in texts]]


def sbert_similarity(predictions: Sequence[str], golds: Sequence[str], *, model_name: str,
                     batch_size: int = 256) -> float:
    """Mean cosine similarity of SBERT embeddings of each prediction and its gold answer."""
    if len(predictions) != len(golds):
        raise ValueError(f"{len(predictions)} predictions for {len(golds)} gold answers")
    if not predictions:
        return float("nan")
    vectors = sentence_embeddings([*predictions, *golds], model_name=model_name, batch_size=batch_size)
    pred, gold = vectors[:len(predictions)], vectors[len(predictions):]
    return float(np.mean(np.sum(pred * gold, axis=1)))


def split_answer_list(answer: str) -> list[str]:
    """A normalised answer as the list of items it names ("chair, table" -> ["chair", "table"])."""
    return [item for item in answer.split(", ") if item]


def wup_word_similarity(a: str, b: str, wordnet) -> float:
    """The highest Wu-Palmer similarity between any noun senses of two words (1.0 when equal)."""
    if a == b:
        return 1.0
    senses_a = wordnet.synsets(a.replace(" ", "_"), pos="n")
    senses_b = wordnet.synsets(b.replace(" ", "_"), pos="n")
    return max((x.wup_similarity(y) or 0.0 for x in senses_a for y in senses_b), default=0.0)


def wups(predictions: Sequence[str], golds: Sequence[str], *, threshold: float, wordnet) -> float:
    """WUPS (Malinowski and Fritz, 2014), as DAQUAR is scored: for answer lists A (predicted) and
    T (gold), min(prod_a max_t mu(a, t), prod_t max_a mu(a, t)), averaged over questions, where
    mu is the Wu-Palmer similarity, scaled by 0.1 when below ``threshold``."""
    if len(predictions) != len(golds):
        raise ValueError(f"{len(predictions)} predictions for {len(golds)} gold answers")
    cache: dict[tuple[str, str], float] = {}

    def mu(a: str, b: str) -> float:
        if (a, b) not in cache:
            score = wup_word_similarity(a, b, wordnet)
            cache[a, b] = score if score >= threshold else 0.1 * score
        return cache[a, b]

    def one_way(xs: list[str], ys: list[str]) -> float:
        return float(np.prod([max((mu(x, y) for y in ys), default=0.0) for x in xs])) if xs else 0.0

    scores = []
    for prediction, gold in zip(predictions, golds):
        a, t = split_answer_list(normalize_answer(prediction)), split_answer_list(normalize_answer(gold))
        scores.append(min(one_way(a, t), one_way(t, a)))
    return float(np.mean(scores)) if scores else float("nan")


FREQUENCY_BUCKETS = (("unseen", 0, 0), ("tail", 1, 5), ("body", 6, 50), ("head", 51, None))


def frequency_bucket(train_count: int) -> str:
    """unseen: never a training answer; tail: 1-5 training questions; body: 6-50; head: more."""
    for name, low, high in FREQUENCY_BUCKETS:
        if train_count >= low and (high is None or train_count <= high):
            return name
    raise ValueError(f"negative count {train_count}")


def accuracy_figures(predictions: Sequence[str], records: Sequence, *, train_answer_counts: dict[str, int]) -> dict:
    """Accuracy overall, per answer type and per answer-frequency bucket (``records``: the test
    records, in order)."""
    golds = [r.answer for r in records]
    counts = [train_answer_counts.get(g, 0) for g in golds]
    return {
        **accuracy_by_answer_type(predictions, golds, [r.answer_type for r in records]),
        "by_frequency": accuracy_by_group(predictions, golds, [frequency_bucket(c) for c in counts]),
    }


def score_predictions(predictions: Sequence[str], records: Sequence, *, train_answer_counts: dict[str, int],
                      sbert_model: str) -> dict:
    """Every figure for one set of test predictions (``records``: the test records, in order)."""
    from vqalab.evaluation.wordnet import load_wordnet

    golds = [r.answer for r in records]
    covered = [train_answer_counts.get(g, 0) > 0 for g in golds]
    result = {
        **accuracy_figures(predictions, records, train_answer_counts=train_answer_counts),
        # The ceiling of a classifier over the training answers, beside what was achieved.
        "answer_coverage": sum(covered) / len(covered) if covered else float("nan"),
        "sbert_similarity": sbert_similarity(predictions, golds, model_name=sbert_model),
    }
    question_types = [r.question_type for r in records]
    if any(question_types):
        result["by_question_type"] = accuracy_by_group(predictions, golds, question_types)
    wordnet, why_not = load_wordnet()
    if wordnet is None:
        result["wups_unavailable"] = why_not
    else:
        result["wups_09"] = wups(predictions, golds, threshold=0.9, wordnet=wordnet)
        result["wups_00"] = wups(predictions, golds, threshold=0.0, wordnet=wordnet)
    return result
