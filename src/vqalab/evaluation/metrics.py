"""The one metrics module: every figure in ``metrics/`` is computed here.

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


def accuracy_by_answer_type(predictions: Sequence[str], golds: Sequence[str], answer_types: Sequence[str]) -> dict:
    """Overall accuracy plus ``accuracy_<type>`` and ``n_<type>`` for every answer type present."""
    matches = exact_match(predictions, golds)
    result: dict = {"accuracy": sum(matches) / len(matches) if matches else float("nan"), "n": len(matches)}
    for answer_type in sorted(set(answer_types)):
        picked = [m for m, t in zip(matches, answer_types) if t == answer_type]
        result[f"accuracy_{answer_type}"] = sum(picked) / len(picked)
        result[f"n_{answer_type}"] = len(picked)
    return result


def sbert_similarity(predictions: Sequence[str], golds: Sequence[str], *, model_name: str,
                     batch_size: int = 256) -> float:
    """Mean cosine similarity of SBERT embeddings of each prediction and its gold answer."""
    from sentence_transformers import SentenceTransformer

    if len(predictions) != len(golds):
        raise ValueError(f"{len(predictions)} predictions for {len(golds)} gold answers")
    if not predictions:
        return float("nan")
    scorer = SentenceTransformer(resolve_pretrained(model_name))
    # Short answers repeat a lot: embed each distinct string once.
    texts = sorted(set(predictions) | set(golds))
    vectors = scorer.encode(texts, batch_size=batch_size, convert_to_numpy=True, normalize_embeddings=True)
    row = {text: i for i, text in enumerate(texts)}
    pred = vectors[[row[p] for p in predictions]]
    gold = vectors[[row[g] for g in golds]]
    return float(np.mean(np.sum(pred * gold, axis=1)))
