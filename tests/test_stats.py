import dataclasses
import math

import numpy as np
import pytest

from vqalab.evaluation.stats import (McNemarResult, bootstrap_interval, mcnemar, paired_bootstrap_interval,
                                     paired_comparison)


def discordant_pairs(only_a, only_b, both=0, neither=0):
    """Correctness lists of two predictors with the given 2x2 table."""
    a = [True] * only_a + [False] * only_b + [True] * both + [False] * neither
    b = [False] * only_a + [True] * only_b + [True] * both + [False] * neither
    return a, b


def test_mcnemar_exact_hand_computed():
    a, b = discordant_pairs(10, 2, both=30, neither=5)
    result = mcnemar(a, b)
    assert (result.only_a, result.only_b, result.method) == (10, 2, "exact")
    # 2 * (C(12,0) + C(12,1) + C(12,2)) / 2^12
    assert result.p_value == pytest.approx(2 * (1 + 12 + 66) / 4096, rel=1e-12)
    assert result.p_value == pytest.approx(0.03857421875, rel=1e-12)
    assert result.statistic == 2.0


def test_mcnemar_exact_p_capped_at_one():
    a, b = discordant_pairs(3, 3)
    # 2 * P(X <= 3), X ~ Binomial(6, 1/2), is 2 * 42/64 > 1.
    assert mcnemar(a, b).p_value == 1.0


def test_mcnemar_chi2_hand_computed():
    a, b = discordant_pairs(40, 20, both=100, neither=7)
    result = mcnemar(a, b)
    statistic = (abs(40 - 20) - 1) ** 2 / 60
    # Survival function of chi-square with 1 degree of freedom: erfc(sqrt(x / 2)).
    expected_p = math.erfc(math.sqrt(statistic / 2))
    assert result.method == "chi2"
    assert (result.only_a, result.only_b) == (40, 20)
    assert result.statistic == pytest.approx(6.016666666666667, rel=1e-12)
    assert result.p_value == pytest.approx(expected_p, rel=1e-9)
    assert result.p_value == pytest.approx(0.01417, abs=1e-5)


def test_mcnemar_switches_to_chi2_at_25_discordant():
    assert mcnemar(*discordant_pairs(20, 4)).method == "exact"
    assert mcnemar(*discordant_pairs(20, 5)).method == "chi2"


def test_mcnemar_no_discordant_questions():
    a, b = discordant_pairs(0, 0, both=12, neither=8)
    result = mcnemar(a, b)
    assert result == McNemarResult(only_a=0, only_b=0, statistic=0.0, p_value=1.0, method="exact")
    assert mcnemar([], []).p_value == 1.0


def test_mcnemar_symmetric_in_its_arguments():
    for only_a, only_b in [(10, 2), (40, 20), (7, 0)]:
        a, b = discordant_pairs(only_a, only_b, both=5, neither=5)
        forward, backward = mcnemar(a, b), mcnemar(b, a)
        assert forward.p_value == backward.p_value
        assert (forward.only_a, forward.only_b) == (backward.only_b, backward.only_a)


def test_mcnemar_accepts_zero_one_and_rejects_partial_scores():
    assert mcnemar([1, 0, 1], [0, 0, 1]).only_a == 1
    with pytest.raises(ValueError, match="partial"):
        mcnemar([0.5, 1.0], [1.0, 1.0])


def test_mcnemar_result_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        mcnemar([True], [False]).p_value = 0.0


def test_mcnemar_length_mismatch():
    with pytest.raises(ValueError, match="3.*2"):
        mcnemar([True, False, True], [True, False])


def test_bootstrap_of_constant_values_is_that_value():
    assert bootstrap_interval([0.75] * 40) == (0.75, 0.75)
    assert bootstrap_interval([True] * 10) == (1.0, 1.0)


def test_bootstrap_of_half_correct_matches_normal_approximation():
    values = [0] * 50 + [1] * 50
    low, high = bootstrap_interval(values)
    assert low < 0.5 < high
    # Standard error sqrt(0.5 * 0.5 / 100) = 0.05.
    assert low == pytest.approx(0.5 - 1.96 * 0.05, abs=0.02)
    assert high == pytest.approx(0.5 + 1.96 * 0.05, abs=0.02)


def test_bootstrap_level_widens_interval():
    values = [0] * 30 + [1] * 70
    low90, high90 = bootstrap_interval(values, level=0.90)
    low99, high99 = bootstrap_interval(values, level=0.99)
    assert low99 < low90 < 0.7 < high90 < high99


def test_bootstrap_is_deterministic_for_a_seed():
    values = np.random.default_rng(1).random(300)
    assert bootstrap_interval(values, seed=3) == bootstrap_interval(values, seed=3)
    assert bootstrap_interval(values, seed=3) != bootstrap_interval(values, seed=4)
    a, b = values, np.random.default_rng(2).random(300)
    assert paired_bootstrap_interval(a, b, seed=3) == paired_bootstrap_interval(a, b, seed=3)


def test_bootstrap_on_a_full_test_split_brackets_its_mean_at_the_normal_width():
    values = np.random.default_rng(0).random(6000) < 0.6
    low, high = bootstrap_interval(values, resamples=10_000)
    standard_error = (values.mean() * (1 - values.mean()) / len(values)) ** 0.5
    assert low < values.mean() < high
    assert high - low == pytest.approx(2 * 1.96 * standard_error, rel=0.1)


def test_bootstrap_empty_input():
    with pytest.raises(ValueError, match="empty"):
        bootstrap_interval([])
    with pytest.raises(ValueError, match="empty"):
        paired_bootstrap_interval([], [])


def test_bootstrap_rejects_bad_level():
    with pytest.raises(ValueError, match="level"):
        bootstrap_interval([1, 0], level=95)


def test_paired_bootstrap_of_identical_inputs_is_zero():
    values = list(np.random.default_rng(5).random(200) < 0.5)
    assert paired_bootstrap_interval(values, values) == (0.0, 0.0)


def test_paired_bootstrap_of_shifted_inputs_is_the_shift():
    b = np.random.default_rng(6).integers(0, 2, size=200)
    assert paired_bootstrap_interval(b + 1, b) == (1.0, 1.0)


def test_paired_bootstrap_is_narrower_than_unpaired_spread():
    # b is a with 10 answers flipped: the two means are highly correlated, so pairing removes
    # the question-to-question variance that both share.
    a = np.random.default_rng(7).random(400) < 0.5
    b = a.copy()
    b[:10] = ~b[:10]
    low, high = paired_bootstrap_interval(a, b)
    single_low, single_high = bootstrap_interval(a)
    assert high - low < (single_high - single_low) / 2
    assert low <= a.mean() - b.mean() <= high


def test_paired_bootstrap_length_mismatch():
    with pytest.raises(ValueError, match="3.*2"):
        paired_bootstrap_interval([1, 0, 1], [1, 0])


def test_paired_comparison_of_agreeing_predictors():
    values = [True] * 60 + [False] * 40
    summary = paired_comparison(values, values)
    assert summary == {"difference": 0.0, "ci95": [0.0, 0.0], "mcnemar_p": 1.0, "only_a": 0, "only_b": 0,
                       "n": 100, "significant": False}


def test_paired_comparison_of_clearly_different_predictors():
    a = [True] * 100
    b = [True] * 60 + [False] * 40
    summary = paired_comparison(a, b, level=0.9)
    assert summary["difference"] == pytest.approx(0.4)
    assert set(summary) == {"difference", "ci90", "mcnemar_p", "only_a", "only_b", "n", "significant"}
    low, high = summary["ci90"]
    assert 0 < low < 0.4 < high
    assert (summary["only_a"], summary["only_b"], summary["n"]) == (40, 0, 100)
    assert summary["mcnemar_p"] == pytest.approx(math.erfc(math.sqrt(39**2 / 40 / 2)), rel=1e-9)
    assert summary["significant"] is True
