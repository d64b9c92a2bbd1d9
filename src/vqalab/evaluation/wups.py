"""WUPS (Malinowski and Fritz, 2014): answer similarity in WordNet, as DAQUAR is scored.

Equal to the original ``calculate_wups.py`` on DAQUAR; WordNet is read offline
(``vqalab.evaluation.wordnet``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from vqalab.data.normalize import normalize_answer


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
