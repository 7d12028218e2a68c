"""The interval a pilot gate judges a rate by: Wilson's score interval.

A rate passes its gate only when the interval, with the sample there is, says so: a minimum
(open_rate: {min: 0.15}) passes when the interval's lower bound is at or above it, a maximum
(unsubscribe_rate: {max: 0.005}) when its upper bound is at or below it. A lucky point estimate
on a small sample does not pass: 3 opens of 10 (30%) has a lower bound of 10.8% at 95%. Wilson's
interval (not the normal approximation) because gates judge rates near 0 on small samples, where
the normal interval goes below 0 and is far too narrow; with 0 events of n its upper bound is
z²/(n + z²), so a maximum of 0.5% needs ~765 delivered messages with no unsubscribe at all.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

CONFIDENCE = 0.95  # two-sided: each bound is exceeded by chance 2.5% of the time


def z_for(confidence: float = CONFIDENCE) -> float:
    """The standard normal quantile of a two-sided interval at `confidence` (1.959964 at 0.95)."""
    return NormalDist().inv_cdf(0.5 + confidence / 2)


def wilson_interval(successes: int, n: int, z: float | None = None) -> tuple[float, float]:
    """(lower, upper) of the Wilson score interval of successes/n; (0, 1) when n is 0."""
    if n <= 0:
        return 0.0, 1.0
    z = z_for() if z is None else z
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class RateVerdict:
    """One gate rule judged: the rate, the bound it was judged on, and whether it passed."""

    metric: str
    direction: str  # min or max
    threshold: float
    successes: int
    sample: int
    value: float | None  # successes / sample (None when the sample is 0)
    bound: float  # lower bound for a min, upper for a max
    passed: bool

    def describe(self) -> str:
        value = "-" if self.value is None else f"{self.value:.2%}"
        side = "lower" if self.direction == "min" else "upper"
        verdict = "passes" if self.passed else "fails"
        return (
            f"{self.metric} {value} ({self.successes} of {self.sample}), {side} bound {self.bound:.2%} "
            f"{verdict} {self.direction} {self.threshold:.2%}"
        )


def judge(metric: str, direction: str, threshold: float, successes: int, sample: int) -> RateVerdict:
    """The rule of docs/launches.md: min passes when lower >= threshold, max when upper <= threshold."""
    lower, upper = wilson_interval(successes, sample)
    bound = lower if direction == "min" else upper
    passed = sample > 0 and (bound >= threshold if direction == "min" else bound <= threshold)
    value = successes / sample if sample else None
    return RateVerdict(metric, direction, threshold, successes, sample, value, bound, passed)
