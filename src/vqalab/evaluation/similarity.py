"""SBERT similarity: how close a predicted answer is to the gold one in meaning, not only in letters.

The mean cosine similarity between sentence embeddings (sentence-transformers) of each predicted
answer and its gold answer; the blind baseline embeds its questions with the same scorer.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from vqalab.pretrained import resolve_pretrained


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
