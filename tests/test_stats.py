import dataclasses
import math

import numpy as np
import pytest
import scipy.special
import scipy.stats

from vqalab.evaluation.stats import PairedDifference, mean_interval, paired_difference


def discordant_pairs(only_baseline, only_candidate, both=0, neither=0):
    """Correctness of a baseline and a candidate with the given 2x2 table of right and wrong."""
    baseline = [1] * only_baseline + [0] * only_candidate + [1] * both + [0] * neither
    candidate = [0] * only_baseline + [1] * only_candidate + [1] * both + [0] * neither
    return baseline, candidate


def simulated_comparison(rng, *, questions, seeds, seed_sd, shift=0.0):
    """Right/wrong answers of two settings' training runs (``seeds``: how many a side) to the same,
    freshly drawn, test questions.

    A question's log-odds of being answered right is its difficulty (shared by both settings and
    every run: easy questions stay easy) plus the setting's ``shift`` (0 for the baseline) plus the
    run's own offset (sd ``seed_sd``: a seed that trains a better or worse model overall); which
    borderline questions a run gets right is left to chance. With ``seed_sd=0.1`` and 800 questions
    a run's accuracy is about 24%, two seeds agree on about 80% of the questions and their
    accuracies spread by 1.4 points (sd): close to three seeds of the recipe on the DAQUAR
    development copy (22-24%, sd 0.6-1.2 points on 1,766 questions).
    """
    difficulty = rng.normal(-2.0, 2.5, size=questions)

    def runs(count, setting_shift):
        offsets = rng.normal(0.0, seed_sd, size=(count, 1))
        return (rng.random((count, questions)) < scipy.special.expit(difficulty + setting_shift + offsets)).astype(float)

    return runs(seeds[0], 0.0), runs(seeds[1], shift)


def rejection_rate(p_value_of, *, trials, seeds, seed_sd, shift=0.0, questions=800):
    """The share of ``trials`` simulated comparisons in which ``p_value_of(baseline, candidate)`` is
    below 0.05; deterministic."""
    rng = np.random.default_rng(2026)
    rejected = 0
    for _ in range(trials):
        baseline, candidate = simulated_comparison(rng, questions=questions, seeds=seeds, seed_sd=seed_sd, shift=shift)
        rejected += p_value_of(baseline, candidate) < 0.05
    return rejected / trials


def p_value(baseline, candidate):
    return paired_difference(baseline, candidate).p_value


def p_value_over_questions_only(baseline, candidate):
    """What the project did before: the seeds' correctness averaged per question, then a paired test
    over the questions alone."""
    return paired_difference(baseline.mean(axis=0), candidate.mean(axis=0)).p_value


# Calibration: the share of false alarms is the level, and a real difference is found ------------
@pytest.mark.parametrize("seeds", [(3, 3), (2, 2), (1, 3)])
def test_two_settings_that_differ_only_by_seed_are_called_different_in_about_5_percent(seeds):
    # 1,000 trials: the rate's standard error is 0.7 points, so 3-7% is about three of them around 5%.
    rate = rejection_rate(p_value, trials=1000, seeds=seeds, seed_sd=0.1)
    assert 0.03 <= rate <= 0.07, rate


def test_the_simulated_seeds_matter_so_the_calibration_test_can_fail():
    """The same simulated comparisons, analysed over the questions only (the seeds' answers averaged),
    call the same setting different far more often than 5% (15.5% when measured): the calibration
    test above would fail a method that left the seeds out."""
    assert rejection_rate(p_value_over_questions_only, trials=1000, seeds=(3, 3), seed_sd=0.1) > 0.12


def test_without_an_overall_seed_effect_the_test_stays_at_or_below_its_level():
    """Seeds that differ only in which borderline questions they get right: the seed term estimates
    about 0 and is cut at 0 when negative, so the test errs on the safe side."""
    rate = rejection_rate(p_value, trials=1000, seeds=(3, 3), seed_sd=0.0)
    assert 0.005 <= rate <= 0.07, rate


def test_a_real_difference_of_seven_points_is_found():
    # +0.6 log-odds is about +7 points of accuracy here, five times the seeds' spread (97% when measured).
    assert rejection_rate(p_value, trials=300, seeds=(3, 3), seed_sd=0.1, shift=0.6) >= 0.9


def test_a_difference_of_four_points_is_found_only_sometimes():
    # +0.3 log-odds, about +4 points: with three seeds a side, found in about half the trials (46%).
    rate = rejection_rate(p_value, trials=300, seeds=(3, 3), seed_sd=0.1, shift=0.3)
    assert 0.2 < rate < 0.8, rate


# The interval and the verdict ---------------------------------------------------------------------
def test_interval_and_verdict_never_disagree():
    """Random comparisons of every shape - seeds per side, questions, right/wrong or partial scores,
    levels, effects around the edge of significance: the interval excludes 0 exactly when p < 1 - level."""
    rng = np.random.default_rng(36)
    verdicts = {True: 0, False: 0}
    for _ in range(3000):
        seeds = rng.integers(1, 5, size=2)
        questions = int(rng.integers(2, 400))
        baseline = rng.random((seeds[0], questions)) < rng.uniform(0.1, 0.9)
        candidate = rng.random((seeds[1], questions)) < np.clip(baseline.mean() + rng.normal(0, 0.08), 0, 1)
        if rng.random() < 0.3:  # partial scores, as soft answers give
            baseline, candidate = baseline * rng.random(baseline.shape), candidate * rng.random(candidate.shape)
        result = paired_difference(baseline, candidate, level=rng.choice([0.9, 0.95, 0.99]))
        assert 0.0 <= result.p_value <= 1.0
        assert result.low <= result.difference <= result.high
        excludes_zero = not result.low <= 0.0 <= result.high
        assert result.significant == excludes_zero, result
        verdicts[result.significant] += 1
        # Close to the edge: the two read the same t statistic, so they switch together.
        if abs(result.p_value - (1 - result.level)) < 0.005:
            verdicts["near the edge"] = verdicts.get("near the edge", 0) + 1
    assert verdicts[True] > 300 and verdicts[False] > 300 and verdicts.get("near the edge", 0) > 10, verdicts


def test_one_seed_a_side_is_the_paired_t_test_on_questions_close_to_mcnemar():
    baseline, candidate = discordant_pairs(10, 30, both=100, neither=60)
    result = paired_difference(baseline, candidate)
    n = 200
    difference = (30 - 10) / n
    standard_error = math.sqrt((40 - n * difference**2) / (n - 1) / n)  # sd of the per-question differences / sqrt(n)
    assert result.difference == pytest.approx(0.1)
    assert result.standard_error == pytest.approx(standard_error, rel=1e-12)
    assert result.degrees_of_freedom == n - 1
    assert result.p_value == pytest.approx(2 * scipy.stats.t.sf(difference / standard_error, n - 1), rel=1e-9)
    half_width = scipy.stats.t.ppf(0.975, n - 1) * standard_error
    assert (result.low, result.high) == pytest.approx((difference - half_width, difference + half_width), rel=1e-12)
    # McNemar's chi-square without continuity correction: (30 - 10)^2 / 40 = 10, p = 0.00157.
    assert result.p_value == pytest.approx(scipy.stats.chi2.sf(10, 1), rel=0.15)
    assert not result.seed_variation_counted and (result.baseline_seeds, result.candidate_seeds) == (1, 1)


def test_seed_variation_widens_the_interval_by_the_t_distribution_of_few_seeds():
    """Three seeds a side whose accuracies spread: the interval is wider than one over the questions
    alone, and its degrees of freedom are near the seeds' 4, not the questions' hundreds."""
    rng = np.random.default_rng(3)
    baseline, candidate = simulated_comparison(rng, questions=1500, seeds=(3, 3), seed_sd=0.4)
    result = paired_difference(baseline, candidate)
    questions_only = paired_difference(baseline.mean(axis=0), candidate.mean(axis=0))
    assert result.seed_variation_counted and (result.baseline_seeds, result.candidate_seeds) == (3, 3)
    assert result.difference == pytest.approx(questions_only.difference)
    assert result.high - result.low > 1.5 * (questions_only.high - questions_only.low)
    assert 4 <= result.degrees_of_freedom < 20 and questions_only.degrees_of_freedom == 1499


def test_few_seeds_and_questions_keep_at_least_the_seeds_degrees_and_the_scores_range():
    """One seed against two, on few questions: Satterthwaite's value with the negative interaction
    term alone can fall below 1 degree of freedom and give intervals far wider than a difference of
    right/wrong answers can be; neither happens."""
    rng = np.random.default_rng(12)
    for _ in range(500):
        questions = int(rng.integers(4, 60))
        baseline = (rng.random((1, questions)) < 0.5).astype(float)
        candidate = (rng.random((2, questions)) < rng.uniform(0.2, 0.8, size=(2, 1))).astype(float)
        result = paired_difference(baseline, candidate)
        assert result.degrees_of_freedom >= 1, result
        assert -1.0 <= result.low <= result.difference <= result.high <= 1.0, result
        assert result.significant == (not result.low <= 0.0 <= result.high), result


def test_a_single_seed_side_counts_the_other_sides_seed_spread():
    rng = np.random.default_rng(4)
    baseline, candidate = simulated_comparison(rng, questions=1500, seeds=(1, 3), seed_sd=0.4)
    result = paired_difference(baseline[0], candidate)
    assert result.seed_variation_counted and (result.baseline_seeds, result.candidate_seeds) == (1, 3)
    assert result.standard_error > paired_difference(baseline[0], candidate.mean(axis=0)).standard_error


def test_identical_runs_and_constant_shifts_are_certain():
    answers = (np.random.default_rng(5).random((3, 200)) < 0.5).astype(float)
    same = paired_difference(answers, answers)
    assert (same.difference, same.low, same.high, same.p_value, same.significant) == (0.0, 0.0, 0.0, 1.0, False)
    shifted = paired_difference(answers[0], answers[0] + 1)
    assert (shifted.difference, shifted.low, shifted.high, shifted.p_value, shifted.significant) == (1.0, 1.0, 1.0, 0.0, True)


def test_the_difference_is_candidate_minus_baseline_and_swapping_mirrors_it():
    baseline, candidate = discordant_pairs(5, 25, both=40, neither=30)
    forward, backward = paired_difference(baseline, candidate), paired_difference(candidate, baseline)
    assert forward.difference == pytest.approx(0.2) and backward.difference == pytest.approx(-0.2)
    assert (backward.low, backward.high) == pytest.approx((-forward.high, -forward.low))
    assert backward.p_value == pytest.approx(forward.p_value)


def test_paired_difference_is_frozen_and_reports_its_level():
    result = paired_difference(*discordant_pairs(3, 9, both=20), level=0.9)
    assert result.level == 0.9 and isinstance(result, PairedDifference)
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.p_value = 0.0


def test_paired_difference_refuses_what_it_cannot_pair():
    with pytest.raises(ValueError, match="same questions: the baseline has 3, the candidate 2"):
        paired_difference([1, 0, 1], [1, 0])
    with pytest.raises(ValueError, match="candidate holds 1 runs of 1 questions"):
        paired_difference([1, 0], [0])
    with pytest.raises(ValueError, match="baseline holds a score that is not a finite number"):
        paired_difference([1, float("nan")], [0, 1])
    with pytest.raises(ValueError, match="runs x questions table, got shape"):
        paired_difference(np.zeros((2, 2, 2)), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="level must be between 0 and 1"):
        paired_difference([1, 0], [0, 1], level=95)


# One setting's interval ---------------------------------------------------------------------------
def test_mean_interval_of_one_run_is_the_t_interval_over_questions():
    values = [0] * 50 + [1] * 50
    low, high = mean_interval(values)
    # Standard error sqrt(0.5 * 0.5 / 99) with the unbiased variance, t with 99 degrees of freedom.
    half_width = scipy.stats.t.ppf(0.975, 99) * math.sqrt(100 / 99 * 0.25 / 100)
    assert (low, high) == pytest.approx((0.5 - half_width, 0.5 + half_width), rel=1e-12)


def test_mean_interval_on_a_full_test_split_has_the_normal_width():
    values = np.random.default_rng(0).random(6000) < 0.6
    low, high = mean_interval(values)
    standard_error = (values.mean() * (1 - values.mean()) / len(values)) ** 0.5
    assert low < values.mean() < high
    assert high - low == pytest.approx(2 * 1.96 * standard_error, rel=0.01)


def test_mean_interval_stays_within_the_scores_and_of_constant_scores_is_that_score():
    assert mean_interval([0.75] * 40) == (0.75, 0.75)
    assert mean_interval([1] * 99 + [0])[1] == 1.0  # a t interval would reach past 100%


def test_mean_interval_counts_the_seeds():
    rng = np.random.default_rng(6)
    runs, _ = simulated_comparison(rng, questions=1500, seeds=(3, 1), seed_sd=0.4)
    low, high = mean_interval(runs)
    questions_low, questions_high = mean_interval(runs.mean(axis=0))
    assert low < runs.mean() < high
    assert high - low > 1.5 * (questions_high - questions_low)


def test_mean_interval_level_widens_it():
    values = [0] * 30 + [1] * 70
    low90, high90 = mean_interval(values, level=0.90)
    low99, high99 = mean_interval(values, level=0.99)
    assert low99 < low90 < 0.7 < high90 < high99
