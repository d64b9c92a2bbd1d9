"""Accuracy: exact match, overall, per answer type, per answer-frequency bucket and per question type.

The figures every step needs (training validates with ``accuracy``); the SBERT similarity
(``vqalab.evaluation.similarity``) and WUPS (``vqalab.evaluation.wups``) are the evaluate stage's
alone, and ``vqalab.evaluation.scores`` puts all of them together for a test run.

Answers are compared after ``normalize_answer``; predictions and gold answers stored in records
are already normalised, and normalisation is idempotent, so comparing again is safe.
"""

from __future__ import annotations

from collections.abc import Sequence

from vqalab.data.normalize import normalize_answer


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
