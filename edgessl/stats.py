"""Uncertainty of benchmark numbers: intervals over seeds, aggregates over tasks, paired comparisons.

The statistics follow rliable (Agarwal et al., NeurIPS 2021): the interquartile mean
(IQM) as the aggregate across tasks (here: backbones), percentile confidence intervals
from a *stratified* bootstrap (seeds are resampled within each backbone, so every
resample still covers every backbone), and the probability of improvement, the
Mann-Whitney statistic averaged over tasks. rliable itself is not a dependency: 1.2.0
needs ``arch < 8``, and arch 7.2 fails to import under pandas 3 (``deprecate_kwarg``).
The few lines below use SciPy, and the tests check them against SciPy's own
``bootstrap`` (bit-equal on one stratum) and a hand-computed IQM.

One cell (one method on one backbone) is a few seeds, where a percentile bootstrap
undercovers badly (three seeds have ten distinct resamples); its interval is Student's
t, the textbook interval for the mean of a handful of runs.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

CONFIDENCE = 0.95
BOOTSTRAP_REPS = 5000
BOOTSTRAP_SEED = 0  # a fixed seed: the same study renders the same intervals every time


@dataclass(frozen=True)
class Interval:
    """An estimate with its confidence interval over ``n`` values (``low == high == nan`` when n < 2)."""

    estimate: float
    low: float
    high: float
    n: int

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2

    @property
    def known(self) -> bool:
        """Whether the interval has a width (at least two values)."""
        return not (math.isnan(self.low) or math.isnan(self.high))

    def separates_above(self, other: Interval) -> bool:
        """True when this interval lies wholly above ``other`` (both known)."""
        return self.known and other.known and self.low > other.high

    def overlaps(self, other: Interval) -> bool:
        return not (self.separates_above(other) or other.separates_above(self))

    def format(self, spec: str = ".3f") -> str:
        """``0.412 ± 0.031 (3)``; one value reads ``0.412 (1)``."""
        if not self.known:
            return f"{format(self.estimate, spec)} ({self.n})"
        return f"{format(self.estimate, spec)} ± {format(self.half_width, spec)} ({self.n})"

    def bounds(self, spec: str = ".3f") -> str:
        """``[0.381, 0.443]``, or ``n/a`` without a width."""
        if not self.known:
            return "n/a"
        return f"[{format(self.low, spec)}, {format(self.high, spec)}]"

    def to_dict(self) -> dict[str, float | int | None]:
        return {
            "estimate": self.estimate,
            "low": self.low if self.known else None,
            "high": self.high if self.known else None,
            "n": self.n,
        }


def mean_interval(values: Sequence[float], confidence: float = CONFIDENCE) -> Interval:
    """The mean of ``values`` with Student's t interval (no width for one value)."""
    from scipy import stats

    data = np.asarray(values, dtype=np.float64)
    if data.size == 0:
        raise ValueError("mean_interval of no values")
    mean = float(data.mean())
    if data.size < 2:
        return Interval(mean, math.nan, math.nan, 1)
    half = float(stats.t.ppf((1 + confidence) / 2, data.size - 1) * data.std(ddof=1) / math.sqrt(data.size))
    return Interval(mean, mean - half, mean + half, int(data.size))


def iqm(values: Sequence[float] | np.ndarray) -> float:
    """Interquartile mean: the mean of the middle 50% (``floor(n/4)`` values cut at each end)."""
    from scipy import stats

    return float(stats.trim_mean(np.ravel(np.asarray(values, dtype=np.float64)), 0.25))


Statistic = Callable[[list[np.ndarray]], float]


def stratified_bootstrap(
    groups: Sequence[Sequence[float]],
    statistic: Statistic,
    confidence: float = CONFIDENCE,
    reps: int = BOOTSTRAP_REPS,
    seed: int = BOOTSTRAP_SEED,
) -> tuple[float, float]:
    """Percentile interval of ``statistic(groups)``, each group resampled with replacement on its own.

    With one group and ``statistic`` a mean this is exactly SciPy's
    ``bootstrap(method="percentile")`` with the same generator.
    """
    rng = np.random.default_rng(seed)
    arrays = [np.asarray(group, dtype=np.float64) for group in groups]
    draws = [array[rng.integers(0, array.size, (reps, array.size))] for array in arrays]
    estimates = np.array([statistic([draw[rep] for draw in draws]) for rep in range(reps)])
    alpha = (1 - confidence) / 2
    low, high = np.percentile(estimates, [100 * alpha, 100 * (1 - alpha)])
    return float(low), float(high)


def iqm_interval(scores_by_task: Sequence[Sequence[float]], confidence: float = CONFIDENCE) -> Interval:
    """IQM of every run on every task, with a bootstrap interval stratified by task."""

    def pooled_iqm(groups: list[np.ndarray]) -> float:
        return iqm(np.concatenate(groups))

    tasks = [list(scores) for scores in scores_by_task if len(scores)]
    estimate = pooled_iqm([np.asarray(t) for t in tasks])
    n = sum(len(t) for t in tasks)
    if not resamplable(tasks):
        return Interval(estimate, math.nan, math.nan, n)
    low, high = stratified_bootstrap(tasks, pooled_iqm, confidence)
    return Interval(estimate, low, high, n)


def resamplable(groups: Sequence[Sequence[float]]) -> bool:
    """A stratified bootstrap says something only when every group has two values or more: a group of
    one resamples to itself, and an interval from such groups would be narrower than the truth."""
    return bool(groups) and all(len(group) >= 2 for group in groups)


def probability_greater(x: np.ndarray, y: np.ndarray) -> float:
    """P(X > Y) + P(X = Y) / 2 over all pairs of one task: the Mann-Whitney U over ``len(x) * len(y)``."""
    diff = np.subtract.outer(np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64))
    return float(((diff > 0).sum() + 0.5 * (diff == 0).sum()) / diff.size)


def probability_of_improvement(
    x_by_task: Sequence[Sequence[float]],
    y_by_task: Sequence[Sequence[float]],
    confidence: float = CONFIDENCE,
) -> Interval:
    """rliable's P(X > Y): the per-task Mann-Whitney probability averaged over tasks, with its interval."""
    pairs = [(list(x), list(y)) for x, y in zip(x_by_task, y_by_task, strict=True) if len(x) and len(y)]
    if not pairs:
        raise ValueError("probability_of_improvement needs a task where both have runs")

    def average(groups: list[np.ndarray]) -> float:
        return float(
            np.mean([probability_greater(groups[i], groups[i + 1]) for i in range(0, len(groups), 2)])
        )

    groups = [group for pair in pairs for group in pair]
    estimate = average([np.asarray(g) for g in groups])
    n = sum(min(len(x), len(y)) for x, y in pairs)
    if not resamplable(groups):
        return Interval(estimate, math.nan, math.nan, n)
    low, high = stratified_bootstrap(groups, average, confidence)
    return Interval(estimate, low, high, n)


def paired_difference(
    differences_by_task: Sequence[Sequence[float]], confidence: float = CONFIDENCE
) -> Interval:
    """Mean of paired differences (same task, same seed) with a bootstrap interval stratified by task."""
    tasks = [list(d) for d in differences_by_task if len(d)]
    if not tasks:
        raise ValueError("paired_difference of no pairs")

    def pooled_mean(groups: list[np.ndarray]) -> float:
        return float(np.concatenate(groups).mean())

    estimate = pooled_mean([np.asarray(t) for t in tasks])
    n = sum(len(t) for t in tasks)
    if not resamplable(tasks):
        return Interval(estimate, math.nan, math.nan, n)
    low, high = stratified_bootstrap(tasks, pooled_mean, confidence)
    return Interval(estimate, low, high, n)


def wilson_interval(correct: int, total: int, confidence: float = CONFIDENCE) -> Interval:
    """An accuracy measured on ``total`` test images, with the Wilson score interval of a binomial.

    This is the test-set sampling error of one run (it says nothing about seeds).
    """
    from scipy import stats

    if total <= 0:
        raise ValueError("wilson_interval of no test images")
    z = float(stats.norm.ppf((1 + confidence) / 2))
    p = correct / total
    centre = (p + z * z / (2 * total)) / (1 + z * z / total)
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / (1 + z * z / total)
    # The score interval always holds p and lies in [0, 1]; at p = 0 or 1 rounding can put a bound
    # a hair outside, which matplotlib then refuses as a negative error bar.
    return Interval(p, max(0.0, min(p, centre - half)), min(1.0, max(p, centre + half)), total)
