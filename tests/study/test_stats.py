"""Every statistic of edgessl.stats against a second computation: by hand, or by SciPy."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from edgessl.stats import (
    iqm,
    iqm_interval,
    mean_interval,
    paired_difference,
    probability_greater,
    probability_of_improvement,
    stratified_bootstrap,
    wilson_interval,
)

SCORES = [0.31, 0.35, 0.29, 0.40, 0.33, 0.37, 0.36, 0.30]


def test_iqm_is_the_mean_of_the_middle_half_by_hand() -> None:
    ordered = sorted(SCORES)  # 8 values: drop 2 at each end
    assert iqm(SCORES) == pytest.approx(sum(ordered[2:6]) / 4)
    assert iqm([1.0, 2.0, 3.0, 4.0, 100.0]) == pytest.approx((2 + 3 + 4) / 3)  # floor(5/4) = 1 cut each end
    assert iqm([0.5, 0.7]) == pytest.approx(0.6)  # nothing to cut


def test_mean_interval_is_student_t_by_hand() -> None:
    interval = mean_interval([1.0, 2.0, 3.0])
    t = 4.302652729911275  # t(0.975, 2 degrees of freedom), from tables
    assert interval.estimate == 2.0 and interval.n == 3
    assert interval.half_width == pytest.approx(t * 1.0 / math.sqrt(3))
    assert interval.format(".2f") == "2.00 ± 2.48 (3)"
    single = mean_interval([0.4])
    assert not single.known and single.format() == "0.400 (1)"
    assert single.to_dict() == {"estimate": 0.4, "low": None, "high": None, "n": 1}


def test_one_stratum_bootstrap_is_scipys_percentile_bootstrap_bit_for_bit() -> None:
    data = np.array(SCORES)
    ours = stratified_bootstrap([data], lambda groups: float(groups[0].mean()), reps=2000, seed=3)
    theirs = scipy_stats.bootstrap(
        (data,),
        np.mean,
        n_resamples=2000,
        method="percentile",
        rng=np.random.default_rng(3),
        vectorized=False,
    ).confidence_interval
    assert ours == (theirs.low, theirs.high)


def test_stratified_bootstrap_keeps_every_stratum_in_every_resample() -> None:
    # two strata far apart: an unstratified resample could draw only one of them, a stratified one never does
    low_stratum, high_stratum = [0.0, 0.01, 0.02], [1.0, 1.01, 1.02]
    low, high = stratified_bootstrap(
        [low_stratum, high_stratum], lambda groups: float(np.concatenate(groups).mean()), reps=2000
    )
    assert 0.5 < low < 0.51 and 0.51 < high < 0.52


def test_iqm_interval_pools_tasks_and_needs_two_runs_per_task() -> None:
    by_task = [[0.30, 0.34, 0.32], [0.50, 0.55, 0.52]]
    interval = iqm_interval(by_task)
    assert interval.estimate == pytest.approx(iqm(by_task[0] + by_task[1])) and interval.n == 6
    assert interval.low <= interval.estimate <= interval.high and interval.known
    one_each = iqm_interval([[0.3], [0.5]])
    assert not one_each.known and one_each.estimate == pytest.approx(0.4)  # a 1-run task resamples to itself


def test_probability_of_improvement_is_mann_whitney_over_pairs() -> None:
    x, y = np.array([0.4, 0.5, 0.6]), np.array([0.45, 0.5, 0.3])
    u = scipy_stats.mannwhitneyu(x, y, alternative="greater").statistic
    assert probability_greater(x, y) == pytest.approx(u / 9)
    # by hand: 0.4 beats 0.3; 0.5 beats 0.45, 0.3 and ties 0.5; 0.6 beats all three -> (1 + 2.5 + 3) / 9
    assert probability_greater(x, y) == pytest.approx(6.5 / 9)
    two_tasks = probability_of_improvement([x, [0.9, 0.8]], [y, [0.1, 0.2]])
    assert two_tasks.estimate == pytest.approx((6.5 / 9 + 1.0) / 2)
    assert two_tasks.known and 0 <= two_tasks.low <= two_tasks.estimate <= two_tasks.high <= 1


def test_paired_difference_is_the_mean_difference_with_a_bootstrap_interval() -> None:
    diffs = [[0.02, 0.03, 0.01], [0.05, 0.04, 0.06]]
    interval = paired_difference(diffs)
    assert interval.estimate == pytest.approx(np.mean(diffs)) and interval.n == 6
    assert 0 < interval.low < interval.estimate < interval.high  # all positive: the interval excludes 0
    expected = stratified_bootstrap(diffs, lambda groups: float(np.concatenate(groups).mean()))
    assert (interval.low, interval.high) == pytest.approx(expected)


def test_wilson_interval_matches_scipys_binomial_test() -> None:
    interval = wilson_interval(37, 100)
    theirs = scipy_stats.binomtest(37, 100).proportion_ci(confidence_level=0.95, method="wilson")
    assert interval.estimate == 0.37 and (interval.low, interval.high) == pytest.approx(
        (theirs.low, theirs.high)
    )
    assert wilson_interval(0, 10).low == pytest.approx(0.0, abs=1e-12)  # never below zero


@pytest.mark.parametrize("total", [1, 7, 10, 100, 800, 10_000])
def test_wilson_interval_holds_its_estimate_inside_zero_one_at_every_count(total: int) -> None:
    # at 0 and total correct the exact bounds are 0 and 1; rounding must never cross the estimate
    # (the sweep draws estimate - low and high - estimate as error bars, which may not be negative)
    for correct in range(total + 1):
        interval = wilson_interval(correct, total)
        assert 0.0 <= interval.low <= interval.estimate <= interval.high <= 1.0
    assert wilson_interval(total, total).high == 1.0 and wilson_interval(0, total).low == 0.0


def test_intervals_decide_separation_only_when_both_are_known() -> None:
    a, b = mean_interval([0.9, 0.91, 0.92]), mean_interval([0.1, 0.11, 0.12])
    assert a.separates_above(b) and not b.separates_above(a) and not a.overlaps(b)
    assert not mean_interval([0.9]).separates_above(b) and mean_interval([0.9]).overlaps(b)
