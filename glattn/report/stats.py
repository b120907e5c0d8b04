"""Statistics over seeds: mean +- sample std, n, and two-sample tests (scipy.stats).

Student (1908) paired t-test when the two arms were run on the same seeds (each seed fixes
the split, the initialisation and the data order, so runs pair up by seed); Welch (1947)
unequal-variance t-test otherwise. Both two-sided, via `scipy.stats.ttest_rel` and
`scipy.stats.ttest_ind(equal_var=False)`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from scipy import stats

PAIRED = "paired t"
WELCH = "Welch t"


@dataclass(frozen=True)
class Summary:
    """Mean and sample standard deviation (ddof=1; NaN for n=1) of the seeds of one cell."""

    mean: float
    std: float
    n: int
    seeds: tuple = ()


@dataclass(frozen=True)
class Comparison:
    """b - a: the difference of the means, the test used and its two-sided p-value."""

    diff: float
    p_value: float  # NaN when the test is undefined (see `reason`)
    test: str  # PAIRED | WELCH | "" when no test could be run
    n_a: int
    n_b: int
    reason: str = ""  # why p_value is NaN


def summarize(values: Mapping | list | np.ndarray) -> Summary:
    """Mean +- std over seeds. `values` is {seed: value} or a plain sequence; NaNs dropped."""
    if isinstance(values, Mapping):
        items = sorted((k, float(v)) for k, v in values.items() if not _isnan(v))
        seeds, vals = tuple(k for k, _ in items), np.array([v for _, v in items], float)
    else:
        vals = np.asarray([float(v) for v in values if not _isnan(v)], float)
        seeds = ()
    n = int(vals.size)
    if n == 0:
        return Summary(math.nan, math.nan, 0, seeds)
    std = float(np.std(vals, ddof=1)) if n > 1 else math.nan
    return Summary(float(np.mean(vals)), std, n, seeds)


def compare(a: Mapping, b: Mapping) -> Comparison:
    """Compare arm b against arm a, both {seed: value}.

    Paired t-test when both arms hold exactly the same seeds (>= 2 of them), Welch's
    t-test otherwise (>= 2 values in each arm). `diff` is mean(b) - mean(a).
    """
    a = {k: float(v) for k, v in a.items() if not _isnan(v)}
    b = {k: float(v) for k, v in b.items() if not _isnan(v)}
    n_a, n_b = len(a), len(b)
    if n_a == 0 or n_b == 0:
        return Comparison(math.nan, math.nan, "", n_a, n_b, "an arm has no runs")
    diff = float(np.mean(list(b.values())) - np.mean(list(a.values())))
    if set(a) == set(b) and n_a >= 2:
        seeds = sorted(a)
        x, y = np.array([a[s] for s in seeds]), np.array([b[s] for s in seeds])
        d = y - x
        if np.allclose(d, d[0], rtol=0, atol=0):
            why = "the paired differences are constant"
            return Comparison(diff, math.nan, PAIRED, n_a, n_b, why)
        return Comparison(diff, float(stats.ttest_rel(y, x).pvalue), PAIRED, n_a, n_b)
    if n_a < 2 or n_b < 2:
        return Comparison(diff, math.nan, "", n_a, n_b, "fewer than 2 seeds in an arm")
    x, y = np.array(list(a.values())), np.array(list(b.values()))
    if np.ptp(x) == 0 and np.ptp(y) == 0:
        return Comparison(diff, math.nan, WELCH, n_a, n_b, "both arms have zero variance")
    return Comparison(diff, float(stats.ttest_ind(y, x, equal_var=False).pvalue), WELCH, n_a, n_b)


def convergence_epoch(history: Mapping[int, float] | list, fraction: float = 0.95) -> float:
    """First epoch whose value reaches `fraction` of the run's best value (max over epochs).

    `history` is {epoch: value} or [(epoch, value), ...] (epochs 1-based, as logged).
    Returns NaN for an empty history.
    """
    items = sorted(dict(history).items())
    items = [(int(e), float(v)) for e, v in items if not _isnan(v)]
    if not items:
        return math.nan
    best = max(v for _, v in items)
    threshold = fraction * best
    return float(next(e for e, v in items if v >= threshold))


def _isnan(v) -> bool:
    try:
        return v is None or math.isnan(float(v))
    except (TypeError, ValueError):
        return True
