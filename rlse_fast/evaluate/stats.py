"""Means with 95% Student-t intervals, for one method's scores and for paired differences.

The interval is mean +- t(0.975, n - 1) * sd / sqrt(n) with the sample standard deviation: the
uncertainty of the mean over faces drawn like these (the test set's faces, the seed fixed). Paired
differences (method A - method B on the same faces) cancel the face-to-face spread, which is most of
the spread, so they tell two methods apart with far fewer faces than two separate intervals do.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

# Two-sided 95% quantiles of Student's t for 1..30 degrees of freedom.
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
         2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
         2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)
_Z975 = 1.959964


def t975(df: int) -> float:
    """Upper 97.5% quantile of Student's t with df degrees of freedom (table, then Cornish-Fisher)."""
    if df < 1:
        return math.nan
    if df <= len(_T975):
        return _T975[df - 1]
    z = _Z975
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)


@dataclass(frozen=True)
class Interval:
    mean: float
    half: float
    """Half-width of the 95% interval (NaN with fewer than two values)."""
    n: int

    @property
    def low(self) -> float:
        return self.mean - self.half

    @property
    def high(self) -> float:
        return self.mean + self.half

    def excludes_zero(self) -> bool:
        return not math.isnan(self.half) and (self.low > 0 or self.high < 0)

    def fmt(self, digits: int) -> str:
        if math.isnan(self.mean):
            return "n/a"
        mean = round(self.mean, digits) + 0.0  # no "-0.00"
        if math.isnan(self.half):
            return f"{mean:.{digits}f}"
        return f"{mean:.{digits}f} ± {self.half:.{digits}f}"


def mean_ci(values) -> Interval:
    """Mean and 95% t-interval of the finite values (infinite PSNRs of identical images are dropped)."""
    xs = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    n = len(xs)
    if n == 0:
        return Interval(math.nan, math.nan, 0)
    mean = sum(xs) / n
    if n < 2:
        return Interval(mean, math.nan, n)
    sd = math.sqrt(sum((x - mean) ** 2 for x in xs) / (n - 1))
    return Interval(mean, t975(n - 1) * sd / math.sqrt(n), n)


def paired_ci(a: dict, b: dict) -> Interval:
    """Interval of the mean of a[k] - b[k] over the keys both dicts have."""
    keys = sorted(set(a) & set(b))
    return mean_ci([a[k] - b[k] for k in keys])
