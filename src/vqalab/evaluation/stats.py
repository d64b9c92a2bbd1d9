"""Whether a test-set figure, or a difference between two models, is real.

A test split of a few hundred questions measures accuracy to within several points, so a single
figure, or a one-point gap between two models, says little without its uncertainty. This module
gives that uncertainty:

- ``bootstrap_interval``: a percentile bootstrap interval of a mean per-question score;
- ``paired_bootstrap_interval``: the same for the difference of two predictors' means on the same
  questions, resampling questions jointly so that what the two share (easy and hard questions)
  cancels out;
- ``mcnemar``: McNemar's test of paired correctness, which looks only at the questions the two
  predictors disagree on;
- ``paired_comparison``: all of the above as one JSON-ready summary for a comparison table.

Pure numpy (and ``scipy.stats.chi2`` for the large-sample p-value); deterministic for a given seed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.stats
from numpy.typing import ArrayLike

# Bound on the number of resampled scores held at once (resamples per chunk x questions): 32 MB of
# indices and as much of scores, so 10,000 resamples of 6,000 questions go in chunks of 666.
_MAX_DRAWS_PER_CHUNK = 4_000_000

# Below this many discordant questions the chi-square approximation is poor; use the exact test.
_EXACT_BELOW = 25


@dataclass(frozen=True)
class McNemarResult:
    """McNemar's test of two predictors' correctness on the same questions.

    ``only_a``: questions predictor a got right and b wrong; ``only_b``: b right and a wrong.
    ``method`` is ``"exact"`` (two-sided binomial test, used when ``only_a + only_b < 25``; then
    ``statistic`` is the binomial count ``min(only_a, only_b)``) or ``"chi2"`` (chi-square with
    continuity correction, 1 degree of freedom; ``statistic`` is the chi-square value).
    """

    only_a: int
    only_b: int
    statistic: float
    p_value: float
    method: str


def bootstrap_interval(values: ArrayLike, *, level: float = 0.95, resamples: int = 10_000,
                       seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of per-question scores.

    ``values`` are per-question scores (booleans for correct/incorrect, or floats); questions are
    resampled with replacement ``resamples`` times and the interval is the central ``level``
    fraction of the resampled means. Deterministic for a given ``seed``.
    """
    scores = _scores(values, "values")
    return _percentile_interval(scores, level=level, resamples=resamples, seed=seed)


def paired_bootstrap_interval(a: ArrayLike, b: ArrayLike, *, level: float = 0.95, resamples: int = 10_000,
                              seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of ``mean(a) - mean(b)`` for two predictors on the same questions.

    ``a`` and ``b`` are per-question scores in the same question order. Each resample draws one set
    of question indices and applies it to both, so the interval reflects only how the two differ,
    not how hard the drawn questions happen to be.
    """
    scores_a, scores_b = _paired_scores(a, b)
    # The mean of per-question differences over a resample equals the difference of the means.
    return _percentile_interval(scores_a - scores_b, level=level, resamples=resamples, seed=seed)


def mcnemar(a_correct: ArrayLike, b_correct: ArrayLike) -> McNemarResult:
    """McNemar's test of whether two predictors are equally accurate on the same questions.

    Only discordant questions count: ``only_a`` (a right, b wrong) and ``only_b`` (b right, a
    wrong). Under the null hypothesis each discordant question is equally likely to go either way.
    With fewer than 25 discordant questions the exact two-sided binomial test is used,
    ``p = min(1, 2 P(X <= min(only_a, only_b)))`` with ``X ~ Binomial(only_a + only_b, 1/2)``;
    otherwise the chi-square ``(|only_a - only_b| - 1)^2 / (only_a + only_b)`` with 1 degree of
    freedom. With no discordant question, ``p_value`` is 1.0 and ``statistic`` 0.0.
    """
    correct_a, correct_b = _paired_scores(a_correct, b_correct, allow_empty=True)
    for name, scores in (("a_correct", correct_a), ("b_correct", correct_b)):
        if not np.isin(scores, (0.0, 1.0)).all():
            raise ValueError(f"{name} must hold correctness (booleans or 0/1), not partial scores")
    only_a = int(np.count_nonzero((correct_a == 1) & (correct_b == 0)))
    only_b = int(np.count_nonzero((correct_b == 1) & (correct_a == 0)))
    discordant = only_a + only_b
    if discordant == 0:
        return McNemarResult(only_a, only_b, statistic=0.0, p_value=1.0, method="exact")
    if discordant < _EXACT_BELOW:
        smaller = min(only_a, only_b)
        tail = sum(math.comb(discordant, k) for k in range(smaller + 1)) / 2**discordant
        return McNemarResult(only_a, only_b, statistic=float(smaller), p_value=min(1.0, 2 * tail), method="exact")
    statistic = (abs(only_a - only_b) - 1) ** 2 / discordant
    p_value = float(scipy.stats.chi2.sf(statistic, df=1))
    return McNemarResult(only_a, only_b, statistic=float(statistic), p_value=p_value, method="chi2")


def paired_comparison(a_correct: ArrayLike, b_correct: ArrayLike, *, level: float = 0.95, resamples: int = 10_000,
                      seed: int = 0, alpha: float = 0.05) -> dict:
    """JSON-ready summary of how predictor a compares with predictor b on the same questions.

    Keys: ``difference`` (accuracy of a minus accuracy of b), ``ci<level%>`` (e.g. ``ci95``: the
    paired bootstrap interval of the difference, as ``[low, high]``), ``mcnemar_p``, ``only_a`` and
    ``only_b`` (discordant counts, see ``mcnemar``), ``n`` (questions) and ``significant``
    (``mcnemar_p < alpha``).
    """
    low, high = paired_bootstrap_interval(a_correct, b_correct, level=level, resamples=resamples, seed=seed)
    test = mcnemar(a_correct, b_correct)
    correct_a, correct_b = _paired_scores(a_correct, b_correct)
    return {
        "difference": float(correct_a.mean() - correct_b.mean()),
        f"ci{round(level * 100)}": [low, high],
        "mcnemar_p": test.p_value,
        "only_a": test.only_a,
        "only_b": test.only_b,
        "n": int(correct_a.size),
        "significant": bool(test.p_value < alpha),
    }


def _scores(values: ArrayLike, name: str, *, allow_empty: bool = False) -> np.ndarray:
    scores = np.asarray(values, dtype=np.float64)
    if scores.ndim != 1:
        raise ValueError(f"{name} must be a one-dimensional sequence of per-question scores, got shape {scores.shape}")
    if scores.size == 0 and not allow_empty:
        raise ValueError(f"{name} is empty: no per-question scores to resample")
    return scores


def _paired_scores(a: ArrayLike, b: ArrayLike, *, allow_empty: bool = False) -> tuple[np.ndarray, np.ndarray]:
    scores_a = _scores(a, "a", allow_empty=allow_empty)
    scores_b = _scores(b, "b", allow_empty=allow_empty)
    if scores_a.size != scores_b.size:
        raise ValueError(f"paired scores must cover the same questions: a has {scores_a.size}, b has {scores_b.size}")
    return scores_a, scores_b


def _percentile_interval(scores: np.ndarray, *, level: float, resamples: int, seed: int) -> tuple[float, float]:
    if not 0 < level < 1:
        raise ValueError(f"level must be between 0 and 1, got {level}")
    if resamples < 1:
        raise ValueError(f"resamples must be positive, got {resamples}")
    rng = np.random.default_rng(seed)
    n = scores.size
    chunk = max(1, _MAX_DRAWS_PER_CHUNK // n)
    means = np.empty(resamples)
    for start in range(0, resamples, chunk):
        stop = min(start + chunk, resamples)
        indices = rng.integers(0, n, size=(stop - start, n))
        means[start:stop] = scores[indices].mean(axis=1)
    tail = (1 - level) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return float(low), float(high)
