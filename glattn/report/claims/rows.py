"""The claims' rows: a criterion (an experiment file's ``report.claims`` entry), one comparison
per `Row`, and a row's statistics from seed pairs of runs: a crossed bootstrap interval (accuracy)
or a paired t interval (per-run scalars), and a one-sided paired t-test against the threshold."""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from glattn.report import stats
from glattn.report.cells import metric_name
from glattn.report.predictions import RunFiles
from glattn.schema import ClaimSchema

SUPPORTED, NOT_SUPPORTED, INCONCLUSIVE = "supported", "not supported", "inconclusive"
ALPHA = 0.05
MIN_PAIRS = 3  # fewer seed pairs: inconclusive (a t-test on 2 pairs has 1 degree of freedom)
METRICS = ("balanced_acc", "acc")  # recomputable per image from the probabilities


@dataclass
class Criterion(ClaimSchema):
    """One claim as its experiment file declares it (its fields: glattn.schema.ClaimSchema),
    with the table that declares it and the function its ``_target_`` names."""

    table: int | None = None  # the table (stage) of the experiment file that declares it
    #: (ctx, criterion, runs, experiment) -> [Row]; None: the conjunction of the others
    build: Callable | None = field(default=None, compare=False)

    def title(self, metric: str) -> str:
        """The claim, naming `metric` (its ``{m}``)."""
        return self.claim.format(m=metric_name(metric).lower())

    def bar(self) -> str:
        """What the effect must clear: '> 2 pp'."""
        return f"{self.direction} {self.threshold:g} {self.unit}"


def conjunction(numbers: list[int]) -> Criterion:
    """The last criterion: every declared claim is supported (an intersection-union test)."""
    claim = f"every major claim is supported at p < {ALPHA:g}"
    return Criterion("", max(numbers, default=0) + 1, claim, ALPHA, "<", "p")


@dataclass
class Row:
    """One comparison of one criterion, in display units (the criterion's `unit`)."""

    claim: int
    stratum: str
    comparison: str
    arm_a: str = ""
    arm_b: str = ""
    n_a: int = 0
    n_b: int = 0
    n_pairs: int = 0
    effect: float = math.nan
    low: float = math.nan
    high: float = math.nan
    interval: str = ""
    test: str = ""
    p: float = math.nan
    p_holm: float = math.nan
    mcnemar_p: float = math.nan
    mcnemar: str = ""
    threshold: float = math.nan
    direction: str = ">"
    unit: str = ""
    verdict: str = INCONCLUSIVE
    reason: str = ""
    mde: float = math.nan
    seeds_needed: float = math.nan
    primary: bool = False
    pooled: bool = False
    note: str = ""
    seeds: str = ""
    runs_a: str = ""
    runs_b: str = ""
    # test space (fractions / epochs / log ratios) for the verdict and power, not written
    _sd: float = field(default=math.nan, repr=False)
    _distance: float = field(default=math.nan, repr=False)
    _show: Callable = field(default=lambda x: x, repr=False)
    _thr: float = field(default=math.nan, repr=False)
    _deterministic: bool = field(default=False, repr=False)
    _reason: str = field(default="", repr=False)  # why no test / no data

    def sign(self) -> int:
        """+1 when the effect must exceed the threshold, -1 when it must stay below it."""
        return 1 if self.direction == ">" else -1


def new_row(crit: Criterion, stratum: str, comparison: str, **values) -> Row:
    """A row of `crit`: its threshold, direction and unit unless `values` set them."""
    own = {"threshold": crit.threshold, "direction": crit.direction, "unit": crit.unit}
    return Row(crit.number, stratum, comparison, **(own | values))


def no_data(crit: Criterion, why: str) -> Row:
    """The one row of a criterion the runs cannot check, with the reason."""
    return new_row(crit, "all", "-", primary=True, pooled=True, _reason=why)


@dataclass
class Context:
    """What every criterion's rows read: the metric, the runs' files, the bootstrap's setup."""

    metric: str
    files: RunFiles
    n_resamples: int
    seed: int

    def rng_seed(self, label: str) -> int:
        """Each row's bootstrap seed: --bootstrap-seed and the row's label (order-free)."""
        return self.seed * 2**32 + zlib.crc32(label.encode())


def pct(x):
    return 100.0 * x


def ratio_pct(x):
    return 100.0 * (math.exp(x) - 1.0)


def accuracy_row(ctx, crit, comparison, arms, stratum, pairs, transfer=False) -> Row:
    """`comparison` of the `arms` (names) in `stratum` over `pairs` ([(seed, run a, run b)]),
    scored from the runs' per-image test CSVs (fill_accuracy); with `transfer`, run a is a
    task=eval run scored on its eval CSV, so the arms are scored on different images."""
    splits = ("eval", "test") if transfer else ("test", "test")
    got, used = [], []
    for seed, ra, rb in pairs:
        pa, pb = ctx.files.predictions(ra, splits[0]), ctx.files.predictions(rb, splits[1])
        if pa is not None and pb is not None:
            got.append((seed, pa, pb))
            used.append((seed, ra, rb))
    row = _base_row(crit, stratum, comparison, arms, pairs, used, pct)
    if not got:
        row._reason = (
            f"no seed pair with {splits[0]}_probabilities.csv + split.csv artifacts in both "
            f"arms ({len(pairs)} pair(s) by seed)"
        )
        return row
    label = f"{crit.number}|{stratum}|{comparison}"
    fill_accuracy(row, crit, got, ctx.metric, ctx.n_resamples, ctx.rng_seed(label), not transfer)
    if lacking := len(pairs) - len(got):
        row.note = join_notes(row.note, f"{lacking} seed pair(s) without per-image CSVs left out")
    return row


def fill_accuracy(row, crit, got, metric, n_resamples, seed, same_images=True) -> Row:
    """An accuracy `row`'s statistics from `got` ([(seed, Predictions a, Predictions b)]):
    mean of score(b) - score(a), crossed bootstrap interval seeded by `seed`, paired t-test."""
    outs, dropped = [], 0
    for _, pa, pb in got:
        keep = np.intersect1d(pa.images, pb.images) if same_images else None  # None: all
        outs.append((pa.outcomes(keep), pb.outcomes(keep)))
        if same_images:
            dropped += pa.images.size + pb.images.size - 2 * keep.size
    if dropped:
        row.note = join_notes(row.note, f"{dropped} image(s) scored by only one arm left out")
    row.n_pairs = len(outs)
    iv = stats.crossed_bootstrap(outs, metric, n_resamples, seed)
    a_vals, b_vals = ([stats.score(o[arm], metric) for o in outs] for arm in (0, 1))
    _t_test(row, a_vals, b_vals, crit.threshold / 100.0, " pp")
    row.effect, row.low, row.high = pct(iv.estimate), pct(iv.low), pct(iv.high)
    if same_images:
        images = "test images (one image draw shared by every seed and both arms)"
        mc = stats.mcnemar_exact(outs)
        row.mcnemar_p = mc.p_value
        row.mcnemar = f"b right/a wrong {mc.b_only}, a right/b wrong {mc.a_only}"
    else:
        images = "each arm's images (one draw per image set, shared by every seed)"
        row.mcnemar = "n/a: the arms are scored on different images"
    row.interval = f"crossed bootstrap: seed pairs x {images}, {iv.resamples} resamples"
    return row


def paired_values_row(
    crit, comparison, arms, stratum, pairs, values, show=lambda x: x, thr=0.0, what=""
) -> Row:
    """A per-run scalar (`values`: {run: epoch, log latency, ...}, named by `what`) per seed
    pair: mean of b - a, paired t interval and test against `thr` (test space; `show`: display)."""
    known = {run for run, value in values.items() if not math.isnan(value)}
    used = [(s, ra, rb) for s, ra, rb in pairs if {ra, rb} <= known]
    row = _base_row(crit, stratum, comparison, arms, pairs, used, show)
    if not used:
        row._reason = f"no seed pair where both runs have {what}"
        return row
    a, b = [values[ra] for _, ra, _ in used], [values[rb] for _, _, rb in used]
    t = _t_test(row, a, b, thr)
    row.effect, row.low, row.high = show(t.mean_diff), show(t.low), show(t.high)
    row.interval = "paired t interval over seeds" if t.n > 1 else ""
    row.mcnemar = f"n/a: {what} is one number per run"
    return row


def _base_row(crit, stratum, comparison, arms, pairs, used, show) -> Row:
    """The row of `pairs` whose numbers come from `used`, listing their seeds and run ids."""
    n = len(pairs)
    row = new_row(crit, stratum, comparison, arm_a=arms[0], arm_b=arms[1], n_a=n, n_b=n)
    row._show, row.n_pairs = show, len(used)
    if used:
        row.seeds, row.runs_a, row.runs_b = (" ".join(map(str, col)) for col in zip(*used))
    return row


def _t_test(row: Row, a: list, b: list, thr: float, unit: str = "") -> stats.PairedTest:
    """The one-sided paired t-test of b - a against `thr` (test space), kept on the row."""
    t = stats.paired_t(a, b, thr, "greater" if row.sign() > 0 else "less")
    row.test = f"paired t over seeds (ttest_rel, H1: Δ {row.direction} {row.threshold:g}{unit})"
    row.p, row._sd, row._thr = t.p_value, t.sd_diff, thr
    row._distance = row.sign() * (t.mean_diff - thr)
    # a reason with a p-value: zero spread, p = 1, the row stays in Holm's family (claims.judge)
    row._reason = f"no t-test: {t.reason}" if math.isnan(t.p_value) else t.reason
    return t


def join_notes(*parts) -> str:
    return "; ".join(p for p in parts if p)
