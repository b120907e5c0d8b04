"""Statistics over seeds and test images: summaries, two-sample tests, and the claims'
interval, test and adjustment.

Student (1908) paired t-test when the two arms were run on the same seeds (each seed fixes
the initialisation and the data order, so runs pair up by seed); Welch (1947)
unequal-variance t-test otherwise. Both two-sided, via `scipy.stats.ttest_rel` and
`scipy.stats.ttest_ind(equal_var=False)`.

The claims' interval is a bootstrap crossed over seeds and test images
(`crossed_bootstrap`: the seeds share the test images, so each resample draws the seed pairs
and, independently, one resample of the images shared by every seed and both arms; the
pigeonhole bootstrap of Owen 2007). docs/report-statistics.md says why a nested resample
would be about sqrt(k) too narrow for k seeds, with its references and the known-answer
rates. The p-value is the seed-level paired t-test against the threshold; Holm (1979)
adjusts within a claim's family.
"""

from __future__ import annotations

import functools
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
    """Mean +- std over seeds. `values` is {seed: value} (summed in seed order, so that the
    sums are reproducible) or a plain sequence; NaNs dropped."""
    if isinstance(values, Mapping):
        values = [v for _, v in sorted(values.items())]
    vals = np.asarray([float(v) for v in values if not _isnan(v)], float)
    n = int(vals.size)
    mean = float(np.mean(vals)) if n else math.nan
    return Summary(mean, float(np.std(vals, ddof=1)) if n > 1 else math.nan, n)


def compare(a: Mapping, b: Mapping) -> Comparison:
    """Arm b against arm a, both {seed: value}: paired t-test when both hold the same seeds
    (>= 2), Welch's t-test otherwise (>= 2 values each); `diff` is mean(b) - mean(a)."""
    a = {k: float(v) for k, v in a.items() if not _isnan(v)}
    b = {k: float(v) for k, v in b.items() if not _isnan(v)}
    n_a, n_b = len(a), len(b)
    if n_a == 0 or n_b == 0:
        return Comparison(math.nan, math.nan, "", n_a, n_b, "an arm has no runs")
    diff = float(np.mean(list(b.values())) - np.mean(list(a.values())))
    if set(a) == set(b) and n_a >= 2:
        seeds = sorted(a)
        t = paired_t([a[s] for s in seeds], [b[s] for s in seeds], alternative="two-sided")
        why = t.reason.removesuffix(": p = 1")  # zero spread: nothing to reject with
        return Comparison(diff, t.p_value, PAIRED, n_a, n_b, why)
    if n_a < 2 or n_b < 2:
        return Comparison(diff, math.nan, "", n_a, n_b, "fewer than 2 seeds in an arm")
    x, y = np.array(list(a.values())), np.array(list(b.values()))
    if np.ptp(x) == 0 and np.ptp(y) == 0:
        return Comparison(diff, 1.0, WELCH, n_a, n_b, "both arms have zero variance")
    return Comparison(diff, float(stats.ttest_ind(y, x, equal_var=False).pvalue), WELCH, n_a, n_b)


def _no_spread(d: np.ndarray) -> bool:
    """All paired differences equal up to float rounding (0.45 - 0.40 vs 0.55 - 0.50): a
    t-test on them would divide by a rounding error and report a spurious tiny p."""
    return bool(np.ptp(d) <= 1e-9 * max(1.0, float(np.abs(d).max())))


def convergence_epoch(history: Mapping[int, float] | list, fraction: float = 0.95) -> float:
    """First epoch whose value reaches `fraction` of the run's best (max over epochs), from
    {epoch: value} or [(epoch, value), ...] (1-based, as logged); NaN for an empty history."""
    items = [(int(e), float(v)) for e, v in sorted(dict(history).items()) if not _isnan(v)]
    if not items:
        return math.nan
    best = max(v for _, v in items)
    return float(next(e for e, v in items if v >= fraction * best))


def _isnan(v) -> bool:
    try:
        return v is None or math.isnan(float(v))
    except (TypeError, ValueError):
        return True


# ---------------------------------------------------------------------------- per image
# The claims: the crossed bootstrap, the paired t-test, McNemar's (1947) exact test as a
# second view (Dietterich 1998), Holm's adjustment and the t-test's power (statsmodels).


@dataclass(frozen=True)
class Outcomes:
    """One run on one split, per image: class index, correct or not, score weight. `key`
    names the image set (the same images in the same order): one bootstrap draw per set."""

    labels: np.ndarray  # (n,) int class index
    correct: np.ndarray  # (n,) bool: row argmax == label (a tied maximum is wrong)
    weights: np.ndarray  # (n,) float >= 0 (ISIC: 0 for an image the scorer ignores)
    key: str
    num_classes: int


def score(o: Outcomes, metric: str = "balanced_acc", counts: np.ndarray | None = None):
    """Balanced accuracy (mean over the present classes of the weighted recall) or accuracy
    of `o`. `counts` ((R, n): how often each image occurs in each of R resamples) gives
    (R,) scores of the resamples; None scores all images once and returns a float."""
    if metric not in ("balanced_acc", "acc"):
        raise ValueError(f"per-image metric {metric!r}: expected balanced_acc or acc")
    if counts is None:
        return float(score(o, metric, np.ones((1, o.labels.size)))[0])
    w = np.asarray(o.weights, float)
    hit = w * o.correct
    if metric == "acc":
        return (counts @ hit) / (counts @ w)
    onehot = np.eye(o.num_classes)[o.labels]  # (n, C)
    total = counts @ (w[:, None] * onehot)  # (R, C) weighted images per class
    right = counts @ (hit[:, None] * onehot)
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = np.where(total > 0, right / total, 0.0)
    return recall.sum(axis=1) / np.maximum((total > 0).sum(axis=1), 1)


def resample_counts(rng: np.random.Generator, n: int, n_resamples: int) -> np.ndarray:
    """(R, n) multiplicities of n images drawn n times with replacement, R times."""
    dtype = np.int32 if n_resamples * n < 2**31 else np.int64
    idx = rng.integers(0, n, size=(n_resamples, n), dtype=dtype)
    idx += (np.arange(n_resamples, dtype=dtype) * n)[:, None]  # resample r -> r*n + image
    counts = np.bincount(idx.ravel(), minlength=n_resamples * n)
    return counts.reshape(n_resamples, n).astype(float)


@dataclass(frozen=True)
class Interval:
    estimate: float  # mean over pairs of score(b) - score(a) on all images
    low: float
    high: float
    resamples: int


def crossed_bootstrap(
    pairs: list[tuple[Outcomes, Outcomes]],
    metric: str = "balanced_acc",
    n_resamples: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
) -> Interval:
    """Percentile interval of mean_s [score(b_s) - score(a_s)] over seed pairs s: each
    resample draws k seed pairs with replacement and one resample of each image set
    (`Outcomes.key`) shared by every seed and both arms; arms on different image sets (a
    transfer drop) get one independent draw per set. One pair: the image-level bootstrap."""
    if not pairs:
        raise ValueError("crossed_bootstrap: no pairs")
    if n_resamples < 1:
        raise ValueError(f"n_resamples={n_resamples}: expected >= 1")
    rng = np.random.default_rng(seed)
    sizes: dict[str, int] = {}
    for a, b in pairs:
        for o in (a, b):
            if sizes.setdefault(o.key, o.labels.size) != o.labels.size:
                raise ValueError(f"image set {o.key!r} has two different sizes")
    k = len(pairs)
    drawn = rng.integers(0, k, size=(n_resamples, k))  # (R, k) the seed pair of each slot
    counts = {key: resample_counts(rng, n, n_resamples) for key, n in sizes.items()}
    diffs = np.stack(  # (k, R): each pair on the resample's one draw of its image set(s)
        [score(b, metric, counts[b.key]) - score(a, metric, counts[a.key]) for a, b in pairs]
    )
    total = diffs[drawn, np.arange(n_resamples)[:, None]].mean(axis=1)  # (R,)
    estimate = float(np.mean([score(b, metric) - score(a, metric) for a, b in pairs]))
    tail = 100 * (1 - confidence) / 2
    low, high = np.nanpercentile(total, [tail, 100 - tail])
    return Interval(estimate, float(low), float(high), n_resamples)


@dataclass(frozen=True)
class PairedTest:
    """Paired t-test of b against a + threshold over seeds (scipy.stats.ttest_rel)."""

    mean_diff: float  # mean of b - a
    sd_diff: float  # sample std (ddof=1) of b - a; NaN for one pair
    n: int
    p_value: float  # one-sided, H1: mean(b - a) > threshold ('greater') or < ('less')
    low: float  # two-sided t confidence interval of mean(b - a)
    high: float
    reason: str = ""  # why p_value is NaN


def paired_t(a, b, threshold: float = 0.0, alternative: str = "greater", confidence=0.95):
    """`scipy.stats.ttest_rel(b, a + threshold, alternative=...)`: does the mean paired
    difference b - a exceed (greater) or stay below (less) `threshold`?"""
    a, b = np.asarray(a, float), np.asarray(b, float)
    d = b - a
    n = int(d.size)
    mean = float(d.mean()) if n else math.nan
    sd = float(d.std(ddof=1)) if n > 1 else math.nan
    if n < 2:
        return PairedTest(mean, sd, n, math.nan, math.nan, math.nan, "fewer than 2 seed pairs")
    if _no_spread(d):  # zero spread: p = 1 keeps the row in Holm's family, never rejects
        why = "the paired differences are all equal (zero spread): p = 1"
        return PairedTest(mean, sd, n, 1.0, mean, mean, why)
    res = stats.ttest_rel(b, a + threshold, alternative=alternative)
    ci = stats.ttest_rel(b, a).confidence_interval(confidence)
    return PairedTest(mean, sd, n, float(res.pvalue), float(ci.low), float(ci.high))


@dataclass(frozen=True)
class McNemar:
    b_only: int  # images b gets right and a wrong (summed over seed pairs)
    a_only: int
    p_value: float  # exact two-sided binomial test on the discordant pairs


def mcnemar_exact(pairs: list[tuple[Outcomes, Outcomes]]) -> McNemar:
    """McNemar's exact test: `scipy.stats.binomtest(b_only, b_only + a_only, 0.5)` on the
    discordant correct/incorrect pairs of images both arms scored (weight > 0), summed over
    the seed pairs. p = 1 when no image is discordant."""
    b_only = a_only = 0
    for a, b in pairs:
        if a.key != b.key:
            raise ValueError("McNemar's test needs both arms on the same images")
        scored = (a.weights > 0) & (b.weights > 0)
        b_only += int((b.correct & ~a.correct & scored).sum())
        a_only += int((a.correct & ~b.correct & scored).sum())
    n = b_only + a_only
    p = float(stats.binomtest(b_only, n, 0.5).pvalue) if n else 1.0
    return McNemar(b_only, a_only, p)


def holm(p_values) -> np.ndarray:
    """Holm (1979) step-down adjusted p-values (statsmodels multipletests, method='holm');
    NaNs stay NaN and are not counted as tests."""
    p = np.asarray(p_values, float)
    out = np.full(p.shape, math.nan)
    ok = ~np.isnan(p)
    if ok.sum() == 1:  # a family of one: nothing to adjust (and multipletests runs gc)
        out[ok] = p[ok]
    elif ok.any():
        from statsmodels.stats.multitest import multipletests

        out[ok] = multipletests(p[ok], alpha=0.05, method="holm")[1]
    return out


@dataclass(frozen=True)
class Power:
    mde: float  # smallest |mean difference - threshold| detectable at `power` with n pairs
    seeds_needed: float  # pairs needed to detect the observed |mean - threshold|; inf: never


@functools.lru_cache(maxsize=64)
def _detectable(n: int, alpha: float, power: float) -> float:
    """Standardised effect a one-sided paired t-test on n pairs detects at `power`."""
    from statsmodels.stats.power import TTestPower

    try:
        return float(
            TTestPower().solve_power(nobs=n, alpha=alpha, power=power, alternative="larger")
        )
    except Exception:  # the root finder failed (tiny n): no number to give
        return math.nan


def t_power(sd: float, n: int, observed: float, alpha=0.05, power=0.8) -> Power:
    """One-sided paired t-test power (statsmodels TTestPower) from the observed spread `sd`
    of the paired differences: the detectable distance from the threshold with `n` pairs,
    and how many pairs would detect the `observed` distance (NaN when sd is unknown)."""
    from statsmodels.stats.power import TTestPower

    if not (sd > 0) or n < 2:
        return Power(math.nan, math.nan)
    needed = math.inf
    if observed > 0:
        try:
            n_needed = TTestPower().solve_power(
                effect_size=observed / sd, alpha=alpha, power=power, alternative="larger"
            )
            needed = float(max(2, math.ceil(n_needed)))
        except Exception:  # the root finder failed: no number to give
            needed = math.nan
    return Power(_detectable(n, alpha, power) * sd, needed)
