"""Whether a test-set figure, or a difference between two settings, is real.

A figure measured on a test split varies for two reasons: the test questions are a sample (another
sample of the same size would give another figure), and training is random (another seed gives
another model). Bouthillier et al. (2021, "Accounting for variance in machine learning
benchmarks") show across tasks that the sampling of the data and the randomness of training
(initialisation, data order) both move results markedly, and that comparisons leaving a source out
call improvements that are not there; on the DAQUAR development copy three seeds of one setting
spread by 0.2-1.2 points, as much as the test questions' sampling error. An interval or test over
the questions alone then calls two seeds of one setting different far more often than its level
says. Here both are counted, with one model of where the variation comes from and one statistic
for the interval and the test.

The model. Each run (a seed) gives per-question scores ``x[s, q]`` (1/0 for right/wrong, or a
partial score). As in a two-way random-effects analysis of variance, a score is a question effect
(how hard question q is), a seed effect (how good run s is overall) and a seed-by-question
interaction (which questions run s happens to get right). The variance of a setting's mean score
over ``m`` seeds and ``n`` questions is then

    Var(mean) = var_question / n + var_seed / m + var_interaction / (n m),

estimated without bias from three mean squares of the runs x questions table: the variance over
questions of the seeds' averaged scores (it holds var_question + var_interaction / m), the
variance over seeds of the runs' mean scores (var_seed + var_interaction / n) and the residual
mean square (var_interaction). The seed term is their difference, ``var_seed = S2_seeds -
MS_residual / n``, set to 0 where sampling makes it negative (the usual truncation of a variance
component). For a difference of two settings on the same questions, the question term is the
variance of the per-question differences (so what the two share - easy and hard questions -
cancels out, as in a paired test), and the seed term is the seed variance pooled over both sides
(weights ``m - 1``) times ``1/m_a + 1/m_b``: with two or three seeds a side, a variance from one
side alone has one or two degrees of freedom, and a change under review rarely changes how much
its seeds spread. A side of one seed contributes no estimate but counts in ``1/m``.

The reference distribution is Student's t with Satterthwaite's degrees of freedom for that
combination of mean squares (the negative residual term included; never fewer than the seed term's
own, Gaylor and Hopper's bound): with three seeds a side the
seed term has 4 degrees of freedom, so where seeds dominate the critical value is t(4) = 2.78, not
1.96. The interval is ``difference +/- t * standard error`` and the p-value ``2 P(T > |difference
| / standard error)`` from the same t and degrees of freedom, so the interval excludes 0 exactly
when p < 1 - level. With one seed a side nothing estimates the seed term: the method is the paired
t test on the questions (the same as McNemar's test without continuity correction up to terms of
order 1/n, for right/wrong scores), and ``seed_variation_counted`` is False so that tables say so.

Why this and not the alternatives, measured on simulated runs (tests/test_stats.py holds the
calibration check; docs/comparing.md the figures):

- the question bootstrap with McNemar's test on the seeds' majority answer (this project before):
  it ignores the seed effect, and its interval and test read different data, so they disagreed;
- a two-level (hierarchical) bootstrap over seeds, then questions (Saravanan et al. 2020): with two
  or three seeds the seed level has a handful of distinct resamples, its variance is short by
  (m - 1)/m and a percentile interval has no small-sample widening, so it is too narrow where
  seeds dominate, while it counts the interaction twice and is too wide where they do not;
- a permutation test over seeds: three seeds a side allow 20 splits, so p never falls below 0.1;
- the probability of outperforming of Bouthillier et al., or almost stochastic dominance (Dror et
  al. 2019): both need tens of runs a side to estimate a distribution of scores.

Pure numpy and scipy; deterministic.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.stats
from numpy.typing import ArrayLike

from vqalab.evaluation.metrics import exact_match


@dataclass(frozen=True)
class PairedDifference:
    """How a candidate setting's mean score differs from a baseline's on the same test questions.

    ``difference``: candidate minus baseline (seeds averaged); ``low``/``high``: its interval at
    ``level``; ``p_value``: the two-sided test of no difference from the same t statistic, so
    ``significant`` (p < 1 - level) holds exactly when the interval excludes 0. ``baseline_seeds``
    and ``candidate_seeds``: runs on each side; with one each, only the questions' sampling is
    counted (``seed_variation_counted`` is False).
    """

    difference: float
    low: float
    high: float
    p_value: float
    level: float
    standard_error: float
    degrees_of_freedom: float
    questions: int
    baseline_seeds: int
    candidate_seeds: int

    @property
    def seed_variation_counted(self) -> bool:
        return max(self.baseline_seeds, self.candidate_seeds) > 1

    @property
    def significant(self) -> bool:
        return self.p_value < 1 - self.level


@dataclass(frozen=True)
class _SeedSpread:
    """One setting's runs x questions table summarised by what the seed term needs."""

    runs: int
    run_mean_variance: float  # variance over runs of each run's mean score (0 for one run)
    residual: float  # residual mean square of the two-way table: the seed-by-question interaction

    @property
    def degrees_of_freedom(self) -> int:
        return self.runs - 1


def paired_difference(baseline: ArrayLike, candidate: ArrayLike, *, level: float = 0.95) -> PairedDifference:
    """Whether ``candidate`` scores higher than ``baseline`` on the same questions, counting the test
    questions' sampling and the training seeds' variation (see the module docstring).

    Each argument is one run's per-question scores (a sequence) or several runs' (one row per seed,
    a runs x questions array); columns are the same questions in the same order on both sides.
    """
    _check_level(level)
    baseline_runs = _runs(baseline, "baseline")
    candidate_runs = _runs(candidate, "candidate")
    if baseline_runs.shape[1] != candidate_runs.shape[1]:
        raise ValueError(f"paired scores must cover the same questions: the baseline has {baseline_runs.shape[1]}, "
                         f"the candidate {candidate_runs.shape[1]}")
    per_question = candidate_runs.mean(axis=0) - baseline_runs.mean(axis=0)
    difference = float(per_question.mean())
    standard_error, dof = _standard_error(per_question, [_spread(baseline_runs), _spread(candidate_runs)])
    if standard_error == 0:
        # Every question moved by the same amount and the seeds agree: nothing is uncertain.
        p_value, half_width = (1.0 if difference == 0 else 0.0), 0.0
    else:
        p_value = float(2 * scipy.stats.t.sf(abs(difference) / standard_error, dof))
        half_width = float(scipy.stats.t.ppf(0.5 + level / 2, dof)) * standard_error
    # No difference can exceed the scores' range; that range holds 0, so clipping to it keeps the
    # interval and the p-value agreeing.
    widest = float(max(baseline_runs.max(), candidate_runs.max()) - min(baseline_runs.min(), candidate_runs.min()))
    return PairedDifference(difference=difference, low=max(-widest, difference - half_width),
                            high=min(widest, difference + half_width),
                            p_value=p_value, level=level, standard_error=standard_error, degrees_of_freedom=dof,
                            questions=per_question.size, baseline_seeds=baseline_runs.shape[0],
                            candidate_seeds=candidate_runs.shape[0])


def mean_interval(runs: ArrayLike, *, level: float = 0.95) -> tuple[float, float]:
    """Interval of one setting's mean score over its seeds and the test questions (one run's
    per-question scores, or a runs x questions array), with the variance model of
    ``paired_difference``; clipped to the range of the scores, which the mean cannot leave."""
    _check_level(level)
    table = _runs(runs, "runs")
    per_question = table.mean(axis=0)
    mean = float(per_question.mean())
    standard_error, dof = _standard_error(per_question, [_spread(table)])
    if standard_error == 0:
        return mean, mean
    half_width = float(scipy.stats.t.ppf(0.5 + level / 2, dof)) * standard_error
    return max(float(table.min()), mean - half_width), min(float(table.max()), mean + half_width)


def _standard_error(per_question: np.ndarray, sides: list[_SeedSpread]) -> tuple[float, float]:
    """The standard error of ``per_question.mean()`` and its Satterthwaite degrees of freedom.

    ``per_question``: the seeds' averaged scores (or their difference between two settings) per
    question; ``sides``: each setting's seed spread. Variance = question term + seed term, the seed
    term ``(S2_seeds - MS_residual / n) * sum(1/m)`` pooled over the sides with more than one run.
    """
    questions = per_question.size
    question_term = float(per_question.var(ddof=1)) / questions
    seed_dof = sum(side.degrees_of_freedom for side in sides)
    if seed_dof == 0:
        return math.sqrt(question_term), float(questions - 1)
    run_mean_variance = sum(side.degrees_of_freedom * side.run_mean_variance for side in sides) / seed_dof
    residual = sum(side.degrees_of_freedom * side.residual for side in sides) / seed_dof
    inverse_runs = sum(1 / side.runs for side in sides)
    seeds_part = inverse_runs * run_mean_variance
    interaction_part = inverse_runs * residual / questions
    variance = question_term + max(0.0, seeds_part - interaction_part)
    if variance == 0:
        return 0.0, float(questions - 1)
    # Satterthwaite: each mean square's share of the variance over its degrees of freedom. A seed term
    # truncated at 0 still counts here: its estimate was uncertain, which is what the degrees say.
    spread = (question_term**2 / (questions - 1) + seeds_part**2 / seed_dof
              + interaction_part**2 / (seed_dof * (questions - 1)))
    # The negative interaction term (and a truncated seed term) can take Satterthwaite's value below
    # what any of its mean squares has, to df < 1 and intervals wider than the scores' range; no
    # combination is less certain than its least certain part (Gaylor and Hopper's bound).
    return math.sqrt(variance), max(variance**2 / spread, float(min(seed_dof, questions - 1)))


def _spread(table: np.ndarray) -> _SeedSpread:
    runs, questions = table.shape
    if runs == 1:
        return _SeedSpread(runs=1, run_mean_variance=0.0, residual=0.0)
    run_means = table.mean(axis=1, keepdims=True)
    residuals = table - run_means - table.mean(axis=0) + table.mean()
    return _SeedSpread(runs=runs, run_mean_variance=float(run_means.var(ddof=1)),
                       residual=float((residuals**2).sum()) / ((runs - 1) * (questions - 1)))


def _runs(scores: ArrayLike, name: str) -> np.ndarray:
    table = np.asarray(scores, dtype=np.float64)
    if table.ndim == 1:
        table = table[np.newaxis, :]
    if table.ndim != 2:
        raise ValueError(f"{name} must be one run's per-question scores or a runs x questions table, "
                         f"got shape {table.shape}")
    if table.shape[0] == 0 or table.shape[1] < 2:
        raise ValueError(f"{name} holds {table.shape[0]} runs of {table.shape[1]} questions: an interval needs at "
                         f"least one run of two questions")
    if not np.isfinite(table).all():
        raise ValueError(f"{name} holds a score that is not a finite number (NaN or infinite)")
    return table


def _check_level(level: float) -> None:
    if not 0 < level < 1:
        raise ValueError(f"level must be between 0 and 1 (e.g. 0.95), got {level}")


def image_gain_test(answers: Sequence[str], blind_answers: Sequence[str], golds: Sequence[str]) -> PairedDifference:
    """Whether the model (``answers``) beats the blind baseline (``blind_answers``) on the same
    questions: ``paired_difference`` of one run's exact matches, which counts the questions'
    sampling only (``vqalab compare`` over several seeds counts the seeds too)."""
    return paired_difference(exact_match(blind_answers, golds), exact_match(answers, golds))
