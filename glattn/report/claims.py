"""The seed's six "Success Metrics for Paper", checked from the tracked runs.

1. CBAM improves the metric by more than 2 points over the no-attention baseline;
2. the best fusion strategy beats `original` by more than 1 point;
3. the progressive residual converges faster;
4. the accuracy drop between data sets is below 5 points;
5. the computational overhead of the block is below 20%;
6. every major claim is supported at p < 0.05 (the conjunction of 1-5 after Holm).

Both arms of a comparison are evaluated on the same test images and paired by seed, so
an effect's 95% interval comes from a paired bootstrap over test images (Efron &
Tibshirani 1993; the score is recomputed from the runs' `test_probabilities.csv` and
`split.csv` on every resample), its p-value from a one-sided paired t-test over seeds
against the threshold, with McNemar's (1947) exact test on the per-image correct/incorrect
pairs as a second view (Dietterich 1998), and p-values are Holm (1979) adjusted within
each claim's family. "Best fusion" is chosen on validation and judged on test. The
statistics live in stats.py; experiments/README.md ("Claims") explains each test.
"""

from __future__ import annotations

import logging
import math
import tempfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np
import pandas as pd

from glattn.report import runs, stats, tables
from glattn.report.predictions import (  # noqa: F401 (part of this module's API)
    Predictions,
    RunFiles,
    history_with_fallback,
    read_predictions,
)

log = logging.getLogger(__name__)

SUPPORTED, NOT_SUPPORTED, INCONCLUSIVE = "supported", "not supported", "inconclusive"
ALPHA = 0.05
MIN_PAIRS = 3  # fewer seed pairs: inconclusive (a t-test on 2 pairs has 1 degree of freedom)
METRICS = ("balanced_acc", "acc")  # recomputable per image from the probabilities


@dataclass(frozen=True)
class Criterion:
    number: int
    claim: str
    threshold: float  # display units
    direction: str  # ">": the effect must exceed the threshold; "<": stay below it
    unit: str
    table: int | None  # the paper stage (table<N>_*) whose runs it reads


CRITERIA = {
    1: Criterion(1, "CBAM improves {m} by more than 2 points over no attention", 2, ">", "pp", 2),
    2: Criterion(2, "the best fusion beats `original` by more than 1 point", 1, ">", "pp", 3),
    3: Criterion(3, "the progressive residual converges faster", 0, ">", "epochs", 4),
    4: Criterion(4, "the {m} drop between data sets is below 5 points", 5, "<", "pp", 5),
    5: Criterion(5, "the computational overhead of the block is below 20%", 20, "<", "%", 6),
    6: Criterion(6, "every major claim is supported at p < 0.05", ALPHA, "<", "p", None),
}


# ---------------------------------------------------------------------------- rows
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

    def record(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self) if not f.name.startswith("_")}


@dataclass
class Context:
    uri: str
    metric: str
    files: RunFiles
    n_resamples: int = 2000
    seed: int = 0
    notes: list = field(default_factory=list)

    def rng_seed(self, label: str) -> int:
        """Each row's bootstrap seed: --bootstrap-seed and the row's label (order-free)."""
        return self.seed * 2**32 + zlib.crc32(label.encode())


def _pct(x):
    return 100.0 * x


def _ratio_pct(x):
    return 100.0 * (math.exp(x) - 1.0)


def pairs_by_seed(a: pd.DataFrame, b: pd.DataFrame) -> list[tuple]:
    """[(seed, run a, run b)] for the seeds both arms ran (the latest run per seed)."""

    def latest(frame):
        out = {}
        for _, r in frame.sort_values("start_time").iterrows():
            out[r["seed"] if r["seed"] is not None else r["run_id"]] = r["run_id"]
        return out

    ra, rb = latest(a), latest(b)
    return [(s, ra[s], rb[s]) for s in sorted(ra.keys() & rb.keys(), key=str)]


def accuracy_row(
    ctx: Context,
    crit: Criterion,
    stratum: str,
    comparison: str,
    arms: tuple[str, str],
    pairs: list[tuple],
    splits: tuple[str, str] = ("test", "test"),
    same_images: bool = True,
    n_runs: tuple[int, int] | None = None,
) -> Row:
    """Effect = mean over seed pairs of score(b) - score(a), each recomputed from the runs'
    per-image CSVs; paired bootstrap interval, paired t-test against the threshold."""
    row = _base_row(crit, stratum, comparison, arms, pairs, n_runs, _pct)
    got, used = [], []
    for seed, ra, rb in pairs:
        pa, pb = ctx.files.predictions(ra, splits[0]), ctx.files.predictions(rb, splits[1])
        if pa is not None and pb is not None:
            got.append((seed, pa, pb))
            used.append((seed, ra, rb))
    _set_runs(row, used)
    lacking = len(pairs) - len(got)
    if not got:
        row._reason = (
            f"no seed pair with {splits[0]}_probabilities.csv + split.csv artifacts in both "
            f"arms ({len(pairs)} pair(s) by seed)"
        )
        return row
    label = f"{crit.number}|{stratum}|{comparison}"
    fill_accuracy(row, crit, got, ctx.metric, ctx.n_resamples, ctx.rng_seed(label), same_images)
    if lacking:
        row.note = join_notes(row.note, f"{lacking} seed pair(s) without per-image CSVs left out")
    return row


def fill_accuracy(
    row: Row,
    crit: Criterion,
    got: list[tuple],
    metric: str,
    n_resamples: int,
    seed: int,
    same_images: bool = True,
) -> Row:
    """The statistics of an accuracy row from [(seed, Predictions a, Predictions b)]."""
    outs, dropped = [], 0
    for _, pa, pb in got:
        if same_images:
            keep = np.intersect1d(pa.images, pb.images)
            dropped += pa.images.size + pb.images.size - 2 * keep.size
            outs.append((pa.outcomes(keep), pb.outcomes(keep)))
        else:
            outs.append((pa.outcomes(), pb.outcomes()))
    if dropped:
        row.note = join_notes(row.note, f"{dropped} image(s) scored by only one arm left out")
    row.n_pairs = len(outs)
    row.seeds = " ".join(str(s) for s, _, _ in got)
    iv = stats.paired_bootstrap(outs, metric, n_resamples, seed)
    a_vals = [stats.score(a, metric) for a, _ in outs]
    b_vals = [stats.score(b, metric) for _, b in outs]
    thr = crit.threshold / 100.0
    t = stats.paired_t(a_vals, b_vals, thr, _alternative(crit))
    row.effect, row.low, row.high = _pct(iv.estimate), _pct(iv.low), _pct(iv.high)
    row.interval = (
        f"paired bootstrap over test images, {iv.resamples} resamples"
        if same_images
        else f"bootstrap over each arm's images within seed pairs, {iv.resamples} resamples"
    )
    row.test = f"paired t over seeds (ttest_rel, H1: Δ {crit.direction} {crit.threshold:g} pp)"
    _finish_t(row, t, thr)
    if same_images:
        mc = stats.mcnemar_exact(outs)
        row.mcnemar_p = mc.p_value
        row.mcnemar = f"b right/a wrong {mc.b_only}, a right/b wrong {mc.a_only}"
    else:
        row.mcnemar = "n/a: the arms are scored on different images"
    return row


def paired_values_row(
    crit: Criterion,
    stratum: str,
    comparison: str,
    arms: tuple[str, str],
    pairs: list[tuple],
    values: dict,
    n_runs=None,
    show: Callable = lambda x: x,
    thr: float = 0.0,
    what: str = "",
) -> Row:
    """A per-run scalar (convergence epoch, log latency) per seed pair: effect = mean of
    b - a, paired t interval and paired t-test against the threshold `thr` (test space)."""
    row = _base_row(crit, stratum, comparison, arms, pairs, n_runs, show)
    used = [
        (s, ra, rb)
        for s, ra, rb in pairs
        if not (math.isnan(values.get(ra, math.nan)) or math.isnan(values.get(rb, math.nan)))
    ]
    _set_runs(row, used)
    ok = [(s, values[ra], values[rb]) for s, ra, rb in used]
    row.n_pairs = len(ok)
    row.seeds = " ".join(str(s) for s, _, _ in ok)
    if not ok:
        row._reason = f"no seed pair where both runs have {what}"
        return row
    a, b = [x for _, x, _ in ok], [y for _, _, y in ok]
    t = stats.paired_t(a, b, thr, _alternative(crit))
    row.effect = show(t.mean_diff)
    row.low, row.high = show(t.low), show(t.high)
    row.interval = "paired t interval over seeds" if t.n > 1 else ""
    row.test = f"paired t over seeds (ttest_rel, H1: Δ {crit.direction} {crit.threshold:g})"
    row.mcnemar = f"n/a: {what} is one number per run"
    _finish_t(row, t, thr)
    return row


def _set_runs(row: Row, used: list[tuple]) -> None:
    """The run ids the row's numbers come from, in seed order (for checking by hand)."""
    row.runs_a = " ".join(ra for _, ra, _ in used)
    row.runs_b = " ".join(rb for _, _, rb in used)


def _base_row(crit, stratum, comparison, arms, pairs, n_runs, show) -> Row:
    n_a, n_b = n_runs or (len(pairs), len(pairs))
    return Row(
        crit.number,
        stratum,
        comparison,
        arms[0],
        arms[1],
        n_a,
        n_b,
        threshold=crit.threshold,
        direction=crit.direction,
        unit=crit.unit,
        _show=show,
    )


def _finish_t(row: Row, t: stats.PairedTest, thr: float) -> None:
    row.p = t.p_value
    row._sd, row._thr = t.sd_diff, thr
    sign = 1 if row.direction == ">" else -1
    row._distance = sign * (t.mean_diff - thr)
    if math.isnan(t.p_value):
        row._reason = f"no t-test: {t.reason}"


def _alternative(crit: Criterion) -> str:
    return "greater" if crit.direction == ">" else "less"


# ---------------------------------------------------------------------------- verdicts
def judge(row: Row) -> None:
    """Verdict and reason of a row whose Holm-adjusted p is set."""
    thr, lo, hi, d = row.threshold, row.low, row.high, row.direction
    u = "" if row.unit in ("%", "p") else " "
    unit = f"{u}{row.unit}"
    iv = f"[{lo:.2f}, {hi:.2f}]{unit}"
    beyond = (lo > thr) if d == ">" else (hi < thr)
    short = (hi <= thr) if d == ">" else (lo >= thr)
    side = "above" if d == ">" else "below"
    if row._deterministic:
        if math.isnan(row.effect):
            row.verdict, row.reason = INCONCLUSIVE, row._reason or "no value"
        elif (row.effect > thr) if d == ">" else (row.effect < thr):
            row.verdict = SUPPORTED
            row.reason = f"{row.effect:.2f}{unit} is {side} {thr:g}{unit}; {row.interval}"
        else:
            row.verdict = NOT_SUPPORTED
            row.reason = f"{row.effect:.2f}{unit} is not {side} {thr:g}{unit}; {row.interval}"
        return
    if row.n_pairs == 0 or math.isnan(row.effect):
        row.verdict, row.reason = INCONCLUSIVE, row._reason or "no paired runs"
        return
    if row.n_pairs < MIN_PAIRS:
        row.verdict = INCONCLUSIVE
        row.reason = (
            f"too few runs: {row.n_pairs} seed pair(s), the paired t-test needs at least "
            f"{MIN_PAIRS}"
        )
    elif short:
        row.verdict = NOT_SUPPORTED
        row.reason = f"the whole 95% interval {iv} is on the wrong side of {thr:g}{unit}"
    elif not beyond:
        row.verdict = INCONCLUSIVE
        row.reason = f"the 95% interval {iv} contains the threshold {thr:g}{unit}"
    elif math.isnan(row.p_holm):
        row.verdict = INCONCLUSIVE
        row.reason = f"the 95% interval {iv} clears {thr:g}{unit}, but {row._reason}"
    elif row.p_holm >= ALPHA:
        row.verdict = INCONCLUSIVE
        row.reason = (
            f"the 95% interval {iv} clears {thr:g}{unit}, but the seeds do not agree: "
            f"Holm-adjusted p = {row.p_holm:.3g} >= {ALPHA}"
        )
    else:
        row.verdict = SUPPORTED
        row.reason = (
            f"the 95% interval {iv} is {side} {thr:g}{unit} and the Holm-adjusted "
            f"p = {row.p_holm:.3g} < {ALPHA}"
        )
    if row.verdict == INCONCLUSIVE:
        _power(row)


def _power(row: Row) -> None:
    """What the current seeds could detect (80% power) and what would resolve this one."""
    pw = stats.t_power(row._sd, row.n_pairs, row._distance)
    if math.isnan(pw.mde):
        row.reason += "; no spread to compute power from (fewer than 2 pairs or no variance)"
        return
    sign = 1 if row.direction == ">" else -1
    row.mde = row._show(row._thr + sign * pw.mde)
    row.seeds_needed = pw.seeds_needed
    u = "" if row.unit == "%" else " "
    row.reason += (
        f"; with {row.n_pairs} seeds an effect {row.direction} {row.mde:.2f}{u}{row.unit} "
        "would be detected at 80% power"
    )
    if math.isinf(pw.seeds_needed):
        row.reason += "; the observed effect is on the wrong side, no number of seeds helps"
    elif not math.isnan(pw.seeds_needed):
        row.reason += f"; about {int(pw.seeds_needed)} seeds would resolve the observed one"


def adjust_and_judge(rows: list[Row]) -> None:
    """Holm within each claim's family (its rows that have a p-value), then verdicts."""
    for number in {r.claim for r in rows}:
        family = [r for r in rows if r.claim == number]
        for r, p in zip(family, stats.holm([r.p for r in family])):
            r.p_holm = float(p)
        for r in family:
            judge(r)


def combine(verdicts: list[str]) -> str:
    if not verdicts:
        return INCONCLUSIVE
    if NOT_SUPPORTED in verdicts:
        return NOT_SUPPORTED
    return SUPPORTED if all(v == SUPPORTED for v in verdicts) else INCONCLUSIVE


def headline(rows: list[Row], number: int) -> list[Row]:
    """The rows that decide a claim: its primary pooled rows, else its primary rows."""
    mine = [r for r in rows if r.claim == number and r.primary]
    pooled = [r for r in mine if r.pooled]
    return pooled or mine


def claim6(rows: list[Row]) -> Row:
    crit = CRITERIA[6]
    parts, ps = [], []
    for n in range(1, 6):
        head = headline(rows, n)
        v = combine([r.verdict for r in head])
        parts.append((n, v))
        ps += [r.p_holm for r in head if not math.isnan(r.p_holm)]
    verdict = combine([v for _, v in parts])
    p = max(ps) if ps else math.nan
    listing = ", ".join(f"{n}: {v}" for n, v in parts)
    if verdict == SUPPORTED:
        why = f"criteria 1-5 are all supported after Holm's adjustment ({listing})"
    elif verdict == NOT_SUPPORTED:
        why = f"not every criterion holds ({listing})"
    else:
        why = f"not every criterion is decided ({listing})"
    return Row(
        6,
        "all",
        "criteria 1-5 together",
        test="intersection-union: the largest Holm-adjusted p of the deciding rows",
        p=p,
        p_holm=p,
        threshold=crit.threshold,
        direction="<",
        unit="p",
        verdict=verdict,
        reason=why,
        primary=True,
        pooled=True,
    )


# ---------------------------------------------------------------------------- criteria
def _strata(frame: pd.DataFrame, keys: list[str]):
    """(label, sub-frame) per combination of `keys` that occurs."""
    if frame.empty:
        return
    for levels, sub in tables.groups(frame, keys, tables.Context(), full=False):
        label = ", ".join(
            tables.dataset_label(v) if k == "dataset" else f"{k}={v}" for k, v in zip(keys, levels)
        )
        yield label or "all", sub


def _metric(frame: pd.DataFrame, key: str) -> pd.Series:
    """The runs' logged `metrics.<key>` as floats (NaN where a run lacks it)."""
    col = f"metrics.{key}"
    if col in frame:
        return pd.to_numeric(frame[col], errors="coerce")
    return pd.Series(math.nan, index=frame.index, dtype=float)


def _extra(frame, exclude) -> list[str]:
    return tables.varying(frame, exclude=set(exclude))


def _no_data(crit: Criterion, why: str) -> Row:
    return Row(
        crit.number,
        "all",
        "-",
        threshold=crit.threshold,
        direction=crit.direction,
        unit=crit.unit,
        primary=True,
        pooled=True,
        _reason=why,
    )


def _none_and_cbam(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The finished training runs without attention, and with CBAM and the seed's block."""
    train = tables.trained(frame)
    none = train[train["attention"] == "none"]
    cbam = tables.restrict(
        train[train["attention"] == "cbam"], {"fusion": "original", "residual": "original"}
    )
    return none, cbam


def criterion1(ctx: Context, frame: pd.DataFrame, exp: str) -> list[Row]:
    crit = CRITERIA[1]
    none, cbam = _none_and_cbam(frame)
    if none.empty or cbam.empty:
        return [_no_data(crit, f"{exp!r} has no attention=none and attention=cbam runs")]
    both = pd.concat([none, cbam])
    keys = ["dataset", "backbone"] + _extra(
        both, {"dataset", "backbone", "attention", "fusion", "residual"}
    )
    rows, pooled = [], []
    for label, sub in _strata(both, keys):
        a, b = sub[sub["attention"] == "none"], sub[sub["attention"] == "cbam"]
        pairs = pairs_by_seed(a, b)
        if not pairs:
            continue
        rows.append(
            accuracy_row(
                ctx, crit, label, "cbam − none", ("none", "cbam"), pairs, n_runs=(len(a), len(b))
            )
        )
        pooled += [(f"{label}/{s}", ra, rb) for s, ra, rb in pairs]
    return _with_pooled(ctx, crit, rows, pooled, "cbam − none", ("none", "cbam"))


def _with_pooled(ctx, crit, rows, pooled, comparison, arms) -> list[Row]:
    if not rows:
        return [_no_data(crit, "no seed ran both arms")]
    for r in rows:
        r.primary = True
    if len(rows) > 1:
        p = accuracy_row(ctx, crit, "pooled", comparison, arms, pooled)
        p.primary = p.pooled = True
        rows.append(p)
    else:
        rows[0].pooled = True
    return rows


def _val_means(ctx: Context, frame: pd.DataFrame, factor: str) -> dict[str, float]:
    """{level: mean over seeds of best/val/<metric>} (else recomputed from the runs'
    val_probabilities.csv) — what 'best' is chosen on, never the test split."""
    vals = _metric(frame, f"best/val/{ctx.metric}")
    out = {}
    for level, sub in frame.groupby(factor):
        v = vals.loc[sub.index].dropna().tolist()
        if not v:
            preds = [ctx.files.predictions(r, "val") for r in sub["run_id"]]
            v = [stats.score(p.outcomes(), ctx.metric) for p in preds if p is not None]
        if v:
            out[level] = float(np.mean(v))
    return out


def _test_means(ctx: Context, frame: pd.DataFrame, factor: str) -> dict[str, float]:
    out = {}
    for level, sub in frame.groupby(factor):
        preds = [ctx.files.predictions(r, "test") for r in sub["run_id"]]
        v = [stats.score(p.outcomes(), ctx.metric) for p in preds if p is not None]
        if v:
            out[level] = float(np.mean(v))
    return out


def _argmax(means: dict, factor: str) -> str | None:
    if not means:
        return None
    order = tables.ordered(factor, list(means))
    return max(order, key=lambda k: (means[k], -order.index(k)))


def criterion2(ctx: Context, frame: pd.DataFrame, exp: str) -> list[Row]:
    crit = CRITERIA[2]
    train = tables.restrict(tables.trained(frame), {"attention": "cbam", "residual": "original"})
    if train.empty or train["fusion"].nunique() < 2 or not (train["fusion"] == "original").any():
        return [_no_data(crit, f"{exp!r} has no fusion=original runs and another fusion")]
    keys = ["dataset"] + _extra(train, {"dataset", "fusion", "attention", "residual"})
    rows, pooled_frames = [], []
    for label, sub in _strata(train, keys):
        base = sub[sub["fusion"] == "original"]
        others = sub[sub["fusion"] != "original"]
        if base.empty or others.empty:
            continue
        pooled_frames.append((label, sub))
        best = _argmax(_val_means(ctx, others, "fusion"), "fusion")
        on_test = _argmax(_test_means(ctx, others, "fusion"), "fusion")
        for fusion in tables.ordered("fusion", others["fusion"].unique()):
            arm = others[others["fusion"] == fusion]
            pairs = pairs_by_seed(base, arm)
            if not pairs:
                continue
            name = f"{fusion} (best on validation)" if fusion == best else fusion
            r = accuracy_row(
                ctx,
                crit,
                label,
                f"{fusion} − original",
                ("original", name),
                pairs,
                n_runs=(len(base), len(arm)),
            )
            if fusion == best:
                r.primary = True
                r.note = join_notes(r.note, _selection_note(best, on_test))
            rows.append(r)
        if best is None:
            why = f"no best/val/{ctx.metric} or val_probabilities.csv to choose the best on"
            rows.append(_no_data(crit, why))
            rows[-1].stratum, rows[-1].pooled = label, False
    if not rows:
        return [_no_data(crit, "no seed ran both fusion=original and another fusion")]
    strata_primary = [r for r in rows if r.primary]
    if len(pooled_frames) > 1:
        per = [_val_means(ctx, s[s["fusion"] != "original"], "fusion") for _, s in pooled_frames]
        common = set.intersection(*(set(m) for m in per))
        best = _argmax({f: float(np.mean([m[f] for m in per])) for f in common}, "fusion")
        if best is not None:
            pairs = []
            for label, s in pooled_frames:
                pairs += [
                    (f"{label}/{seed}", ra, rb)
                    for seed, ra, rb in pairs_by_seed(
                        s[s["fusion"] == "original"], s[s["fusion"] == best]
                    )
                ]
            r = accuracy_row(
                ctx,
                crit,
                "pooled",
                f"{best} − original",
                ("original", f"{best} (best on validation)"),
                pairs,
            )
            r.primary = r.pooled = True
            r.note = "best chosen on the mean over strata of the validation means"
            rows.append(r)
    elif len(strata_primary) == 1:
        strata_primary[0].pooled = True
    return rows


def _selection_note(best: str | None, on_test: str | None) -> str:
    note = f"best fusion chosen on validation ({best}), judged on test"
    if on_test and on_test != best:
        note += f"; on test {on_test} scores highest (a test-picked best is biased upwards)"
    return note


def join_notes(*parts) -> str:
    return "; ".join(p for p in parts if p)


def convergence_epochs(ctx: Context, frame: pd.DataFrame, fraction=0.95) -> dict[str, float]:
    """{run_id: first epoch whose val/<metric> reaches `fraction` of the run's best}."""
    hist = ctx.files.history(list(frame["run_id"]), f"val/{ctx.metric}")
    return {r: stats.convergence_epoch(hist.get(r, {}), fraction) for r in frame["run_id"]}


def criterion3(ctx: Context, frame: pd.DataFrame, exp: str) -> list[Row]:
    crit = CRITERIA[3]
    train = tables.restrict(tables.trained(frame), {"attention": "cbam", "fusion": "original"})
    if train.empty or not (train["residual"] == "progressive").any():
        return [_no_data(crit, f"{exp!r} has no residual=progressive runs")]
    if train["residual"].nunique() < 2:
        return [_no_data(crit, f"{exp!r} has residual=progressive runs only")]
    epochs = convergence_epochs(ctx, train)
    keys = ["dataset"] + _extra(train, {"dataset", "residual", "attention", "fusion"})
    rows, pooled = [], []
    what = f"a per-epoch val/{ctx.metric} history"
    for label, sub in _strata(train, keys):
        prog = sub[sub["residual"] == "progressive"]
        if prog.empty:
            continue
        val = _val_means(ctx, sub, "residual")
        best = _argmax(val, "residual")
        for res in tables.ordered("residual", sub["residual"].unique()):
            if res == "progressive":
                continue
            arm = sub[sub["residual"] == res]
            pairs = pairs_by_seed(prog, arm)
            if not pairs:
                continue
            r = paired_values_row(
                crit,
                label,
                f"{res} − progressive (epochs)",
                ("progressive", res),
                pairs,
                epochs,
                (len(prog), len(arm)),
                what=what,
            )
            r.note = f"best residual on validation: {best}" if best else ""
            if res == "original":
                r.primary = True
                pooled += [(f"{label}/{s}", ra, rb) for s, ra, rb in pairs]
            rows.append(r)
    if not rows:
        return [_no_data(crit, "no seed ran residual=progressive and another residual")]
    primary = [r for r in rows if r.primary]
    if len(primary) > 1:
        r = paired_values_row(
            crit,
            "pooled",
            "original − progressive (epochs)",
            ("progressive", "original"),
            pooled,
            epochs,
            what=what,
        )
        r.primary = r.pooled = True
        rows.append(r)
    elif len(primary) == 1:
        primary[0].pooled = True
    elif rows:  # no residual=original: every comparison decides
        for r in rows:
            r.primary = True
    return rows


def criterion4(ctx: Context, frame: pd.DataFrame, exp: str) -> list[Row]:
    crit = CRITERIA[4]
    train = tables.trained(frame)
    evals = frame[frame["task"] == "eval"].copy()
    if evals.empty or train.empty:
        return [_no_data(crit, f"{exp!r} has no task=eval runs of its training runs")]
    evals["source_run_id"] = tables.source_runs(evals, train)
    evals = evals[evals["source_run_id"].isin(train["run_id"])]
    if evals.empty:
        return [_no_data(crit, "no task=eval run has its training run in the experiment")]
    src = train.set_index("run_id")
    keys = ["dataset"] + _extra(train, {"dataset"})
    rows, pooled = [], []
    for label, sub in _strata(train[train["run_id"].isin(evals["source_run_id"])], keys):
        ev_sub = evals[evals["source_run_id"].isin(sub["run_id"])]
        for (eds, esplit), ev in ev_sub.groupby(["eval_dataset", "eval_split"]):
            ev = ev.sort_values("start_time").drop_duplicates("source_run_id", keep="last")
            pairs = [(src.at[s, "seed"], e, s) for e, s in zip(ev["run_id"], ev["source_run_id"])]
            pairs.sort(key=lambda p: str(p[0]))
            target = f"{tables.dataset_label(eds)} {tables.SPLIT_NAMES.get(esplit, esplit)}"
            r = accuracy_row(
                ctx,
                crit,
                f"{label} → {target}",
                "holdout − target",
                (target, "holdout test"),
                pairs,
                ("eval", "test"),
                same_images=False,
            )
            r.primary = True
            rows.append(r)
            pooled += [(f"{label}/{target}/{s}", a, b) for s, a, b in pairs]
    if not rows:
        return [_no_data(crit, "no eval run pairs with its training run")]
    if len(rows) > 1:
        r = accuracy_row(
            ctx,
            crit,
            "pooled",
            "holdout − target",
            ("targets", "holdout test"),
            pooled,
            ("eval", "test"),
            same_images=False,
        )
        r.primary = r.pooled = True
        rows.append(r)
    else:
        rows[0].pooled = True
    return rows


def criterion5(ctx: Context, frame: pd.DataFrame, exp: str) -> list[Row]:
    crit = CRITERIA[5]
    none, cbam = _none_and_cbam(frame)
    if none.empty or cbam.empty:
        return [_no_data(crit, f"{exp!r} has no attention=none and attention=cbam runs")]
    both = pd.concat([none, cbam])
    keys = ["backbone", "dataset"] + _extra(
        both, {"dataset", "backbone", "attention", "fusion", "residual", "loss"}
    )
    flops = _metric(both, "model/gflops")
    lat = np.log(_metric(both, "perf/infer_latency_ms").where(lambda s: s > 0))
    log_lat = dict(zip(both["run_id"], lat))
    thr = math.log(1 + crit.threshold / 100)
    rows, ratios, pooled = [], [], []
    for label, sub in _strata(both, keys):
        a, b = sub[sub["attention"] == "none"], sub[sub["attention"] == "cbam"]
        if a.empty or b.empty:
            continue
        fa, fb = flops.loc[a.index].median(), flops.loc[b.index].median()
        fr = Row(
            5,
            label,
            "FLOPs: cbam / none − 1",
            "none",
            "cbam",
            len(a),
            len(b),
            threshold=crit.threshold,
            direction="<",
            unit="%",
            primary=True,
            interval="none: a FLOP count does not vary between runs",
            test="none (deterministic)",
            _deterministic=True,
        )
        if fa > 0 and not math.isnan(fb):
            fr.effect = fr.low = fr.high = _ratio_pct(math.log(fb / fa))
            ratios.append(math.log(fb / fa))
        else:
            fr._reason = "the runs logged no model/gflops"
        rows.append(fr)
        pairs = pairs_by_seed(a, b)
        r = paired_values_row(
            crit,
            label,
            "latency: cbam / none − 1",
            ("none", "cbam"),
            pairs,
            log_lat,
            (len(a), len(b)),
            _ratio_pct,
            thr,
            what="perf/infer_latency_ms",
        )
        r.interval = "paired t interval of the mean log latency ratio over seeds"
        r.primary = True
        rows.append(r)
        pooled += [(f"{label}/{s}", ra, rb) for s, ra, rb in pairs]
    if not rows:
        return [_no_data(crit, "no backbone has both attention=none and cbam runs")]
    if len(rows) > 2:
        fr = Row(
            5,
            "pooled",
            "FLOPs: geometric mean over strata",
            "none",
            "cbam",
            threshold=crit.threshold,
            direction="<",
            unit="%",
            primary=True,
            pooled=True,
            interval="none: deterministic",
            test="none (deterministic)",
            _deterministic=True,
        )
        if ratios:
            fr.effect = fr.low = fr.high = _ratio_pct(float(np.mean(ratios)))
        rows.append(fr)
        r = paired_values_row(
            crit,
            "pooled",
            "latency: cbam / none − 1",
            ("none", "cbam"),
            pooled,
            log_lat,
            show=_ratio_pct,
            thr=thr,
            what="perf/infer_latency_ms",
        )
        r.interval = "paired t interval of the mean log latency ratio over seeds"
        r.primary = r.pooled = True
        rows.append(r)
    else:
        for r in rows:
            r.pooled = True
    return rows


BUILDERS = {1: criterion1, 2: criterion2, 3: criterion3, 4: criterion4, 5: criterion5}


# ---------------------------------------------------------------------------- the report
@dataclass
class Claims:
    rows: list[Row]
    sources: dict[int, str]  # criterion -> experiment
    metric: str
    n_resamples: int
    seed: int
    notes: list = field(default_factory=list)
    files: list = field(default_factory=list)

    def verdict(self, number: int) -> str:
        return combine([r.verdict for r in headline(self.rows, number)])

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame([r.record() for r in self.rows])


def require_store(uri: str) -> None:
    """A missing SQLite file is an error (MlflowClient would create an empty store)."""
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not Path(uri[len(prefix) :]).is_file():
        raise runs.ReportError(f"no MLflow database at {uri[len(prefix) :]}: pass --tracking-uri")


def claim_sources(uri: str, experiment: str, notes: list) -> dict[int, str]:
    """Criterion -> experiment: `paper` reads each from its stage (table<N>_*)."""
    require_store(uri)
    if experiment != "paper":
        return {n: experiment for n in BUILDERS}
    from glattn.report.report import stage_experiments

    stages = stage_experiments(uri, sorted({c.table for c in CRITERIA.values() if c.table}), [])
    out = {}
    for n, crit in CRITERIA.items():
        if crit.table is None:
            continue
        if crit.table in stages:
            out[n] = stages[crit.table]
        else:
            notes.append(f"criterion {n}: no experiment table{crit.table}_* in the store")
    if not out:
        raise runs.ReportError(f"no table<N>_* experiments at {runs.mask(uri)} for 'paper'")
    return out


def evaluate(
    uri: str,
    experiment: str,
    metric: str = "balanced_acc",
    n_resamples: int = 2000,
    seed: int = 0,
    frames: dict | None = None,
) -> Claims:
    """Rows for criteria 1-6 from the FINISHED job runs (see the module docstring)."""
    if metric not in METRICS:
        raise runs.ReportError(
            f"--metric {metric!r}: the claims recompute the metric per image, so it must be "
            f"one of {list(METRICS)}"
        )
    if n_resamples < 1:
        raise runs.ReportError(f"--resamples {n_resamples}: expected a positive number")
    if n_resamples < 2000:
        log.warning("claims: %d bootstrap resamples (the protocol asks for >= 2000)", n_resamples)
    notes: list[str] = []
    sources = claim_sources(uri, experiment, notes)
    frames = dict(frames or {})
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        ctx = Context(uri, metric, RunFiles(uri, Path(tmp)), n_resamples, seed, notes)
        for n, builder in BUILDERS.items():
            if n not in sources:
                rows.append(_no_data(CRITERIA[n], f"no experiment for criterion {n}"))
                continue
            exp = sources[n]
            if exp not in frames:
                try:
                    frames[exp] = runs.load_runs(uri, exp)
                except runs.ReportError as err:
                    if experiment != "paper":
                        raise
                    notes.append(f"criterion {n}: {err}")
                    rows.append(_no_data(CRITERIA[n], str(err)))
                    continue
            rows += builder(ctx, frames[exp], exp)
    adjust_and_judge(rows)
    rows.append(claim6(rows))
    return Claims(rows, sources, metric, n_resamples, seed, notes)
