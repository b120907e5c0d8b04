"""The paper's checkable criteria (the ``_target_`` of an experiment file's ``report.claims``
entry), each one pass of `run_pipeline`: stratify the run set, pair the arms of each stratum by
seed, one row per comparison (`Arms`), then pool the deciding comparisons across strata."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import numpy as np
import pandas as pd

from glattn.report import frames, stats
from glattn.report.claims.rows import (
    Context,
    Criterion,
    Row,
    accuracy_row,
    join_notes,
    new_row,
    no_data,
    paired_values_row,
    ratio_pct,
)
from glattn.report.tables_eval import LATENCY, OLD_LATENCY, eval_runs

BLOCK = {"attention", "fusion", "residual"}  # the attention block's factors


@dataclass
class Arms:
    """One comparison inside a stratum; comparisons sharing a pool key decide the criterion
    and are pooled across strata (None: a secondary comparison)."""

    a: pd.DataFrame
    b: pd.DataFrame
    build: Callable[[str, list], Row]  # (stratum label, pairs) -> Row
    pool: str | None = None
    note: str = ""


def pairs_by_seed(a: pd.DataFrame, b: pd.DataFrame) -> list[tuple]:
    """[(seed, run a, run b)] for the seeds both arms ran (of two runs, the later)."""

    def latest(frame):  # {seed, else the run id: run id}
        frame = frame.sort_values("start_time")
        return dict(zip(frames.seed_key(frame), frame["run_id"]))

    ra, rb = latest(a), latest(b)
    return [(s, ra[s], rb[s]) for s in sorted(ra.keys() & rb.keys(), key=str)]


def means(ctx: Context, frame: pd.DataFrame, factor: str, split: str) -> dict[str, float]:
    """{level: mean over seeds of the `split` score}: best/val/<metric> where logged (val),
    else recomputed from the runs' <split>_probabilities.csv."""
    out, logged = {}, f"best/val/{ctx.metric}"
    for level, sub in frame.groupby(factor):
        v = frames.metric(sub, logged).dropna().tolist() if split == "val" else []
        if not v:
            preds = [ctx.files.predictions(r, split) for r in sub["run_id"]]
            v = [stats.score(p.outcomes(), ctx.metric) for p in preds if p is not None]
        if v:
            out[level] = float(np.mean(v))
    return out


def argmax(means: dict, factor: str) -> str | None:
    """The level of the highest mean, the first in display order on a tie."""
    return max(frames.ordered(factor, list(means)), key=means.get, default=None)


def run_pipeline(
    crit, frame, first, comparisons, why_none, pooled_row=None, exclude=BLOCK
) -> list[Row]:
    """stratify (by `first`, then the other factors that vary but `exclude`'s) -> pair -> row,
    then pool: `comparisons(label, sub)` yields `Arms`; `pooled_row(pairs)` builds a pool's row
    (default: its builder's, labelled 'pooled')."""
    keys = list(first) + frames.varying(frame, exclude=set(first) | set(exclude))
    rows, pools = [], {}
    for label, sub in frames.strata(frame, keys):
        for arms in comparisons(label, sub):
            pairs = pairs_by_seed(arms.a, arms.b)
            if not pairs:
                continue
            row = arms.build(label, pairs)
            row.n_a, row.n_b = len(arms.a), len(arms.b)
            row.primary, row.note = arms.pool is not None, join_notes(row.note, arms.note)
            rows.append(row)
            if arms.pool is not None:
                pools.setdefault(arms.pool, []).append((label, pairs, row, arms.build))
    if not rows:
        return [no_data(crit, why_none)]
    for members in pools.values():
        if len(members) == 1:
            members[0][2].pooled = True
            continue
        pairs = [(f"{label}/{s}", ra, rb) for label, ps, _, _ in members for s, ra, rb in ps]
        row = pooled_row(pairs) if pooled_row else members[0][3]("pooled", pairs)
        if row is not None:
            row.primary = row.pooled = True
            rows.append(row)
    if not any(r.primary for r in rows):
        for r in rows:
            r.primary = True
    return rows


def _none_and_cbam(frame: pd.DataFrame) -> pd.DataFrame | None:
    """The training runs without attention and with CBAM's reference block; None if either
    is missing."""
    train = frames.trained(frame)
    none = train[train["attention"] == "none"]
    cbam = frames.restrict(
        train[train["attention"] == "cbam"], {"fusion": "original", "residual": "original"}
    )
    return None if none.empty or cbam.empty else pd.concat([none, cbam])


def criterion1(ctx: Context, crit: Criterion, frame: pd.DataFrame, exp: str) -> list[Row]:
    """attention=cbam (fusion=original, residual=original) against attention=none, per
    data set and backbone, paired by seed; effect in percentage points."""
    both = _none_and_cbam(frame)
    if both is None:
        return [no_data(crit, f"{exp!r} has no attention=none and attention=cbam runs")]
    acc = partial(accuracy_row, ctx, crit, "cbam − none", ("none", "cbam"))

    def comparisons(label, sub):
        yield Arms(sub[sub["attention"] == "none"], sub[sub["attention"] == "cbam"], acc, "all")

    return run_pipeline(crit, both, ["dataset", "backbone"], comparisons, "no seed ran both arms")


def criterion2(ctx: Context, crit: Criterion, frame: pd.DataFrame, exp: str) -> list[Row]:
    """Every fusion against fusion=original (attention=cbam, residual=original). The
    best fusion is chosen on the validation metric (best/val/<metric>, mean over seeds)
    and judged on the test split; all five comparisons form Holm's family."""
    train = frames.restrict(frames.trained(frame), {"attention": "cbam", "residual": "original"})
    if train["fusion"].nunique() < 2 or not (train["fusion"] == "original").any():
        return [no_data(crit, f"{exp!r} has no fusion=original runs and another fusion")]
    per_stratum, missing = [], []

    def acc(fusion, best):
        name = f"{fusion} (best on validation)" if fusion == best else fusion
        return partial(accuracy_row, ctx, crit, f"{fusion} − original", ("original", name))

    def comparisons(label, sub):
        orig, others = sub[sub["fusion"] == "original"], sub[sub["fusion"] != "original"]
        if orig.empty or others.empty:
            return
        val = means(ctx, others, "fusion", "val")
        per_stratum.append(val)
        best = argmax(val, "fusion")
        on_test = argmax(means(ctx, others, "fusion", "test"), "fusion")
        if best is None:
            missing.append(label)
        note = f"best fusion chosen on validation ({best}), judged on test"
        if on_test and on_test != best:
            note += f"; on test {on_test} scores highest (a test-picked best is biased upwards)"
        for fusion in frames.ordered("fusion", others["fusion"].unique()):
            arm = others[others["fusion"] == fusion]
            pool, selection = ("best", note) if fusion == best else (None, "")
            yield Arms(orig, arm, acc(fusion, best), pool, selection)

    def pooled(pairs):
        common = set.intersection(*map(set, per_stratum))  # a pool has members: not empty
        best = argmax({f: float(np.mean([m[f] for m in per_stratum])) for f in common}, "fusion")
        if best is None:
            return None
        best_runs = set(train.loc[train["fusion"] == best, "run_id"])
        row = acc(best, best)("pooled", [p for p in pairs if p[2] in best_runs])
        row.note = "best chosen on the mean over strata of the validation means"
        return row

    rows = run_pipeline(crit, train, ["dataset"], comparisons, "no seed ran both fusions", pooled)
    why = f"no best/val/{ctx.metric} or val_probabilities.csv to choose the best on"
    return rows + [new_row(crit, label, "-", primary=True, _reason=why) for label in missing]


def criterion3(ctx: Context, crit: Criterion, frame: pd.DataFrame, exp: str) -> list[Row]:
    """Convergence epoch: the first epoch whose val/<metric> reaches 95% of the run's
    own best. Effect = epochs(other residual) − epochs(progressive): positive means
    progressive converges faster. One number per run, so the interval is the paired t
    interval."""
    train = frames.restrict(frames.trained(frame), {"attention": "cbam", "fusion": "original"})
    if not (train["residual"] == "progressive").any():
        return [no_data(crit, f"{exp!r} has no residual=progressive runs")]
    if train["residual"].nunique() < 2:
        return [no_data(crit, f"{exp!r} has residual=progressive runs only")]
    what = f"a per-epoch val/{ctx.metric} history"
    hist = ctx.files.history(list(train["run_id"]), f"val/{ctx.metric}")
    epochs = {r: stats.convergence_epoch(hist.get(r, {}), 0.95) for r in train["run_id"]}
    has_original = (train["residual"] == "original").any()

    def comparisons(label, sub):
        prog = sub[sub["residual"] == "progressive"]
        if prog.empty:
            return
        best = argmax(means(ctx, sub, "residual", "val"), "residual")
        note = f"best residual on validation: {best}" if best else ""
        for res in frames.ordered("residual", set(sub["residual"]) - {"progressive"}):
            deciding = res == "original" or not has_original
            comparison, arms = f"{res} − progressive (epochs)", ("progressive", res)
            build = partial(paired_values_row, crit, comparison, arms, values=epochs, what=what)
            yield Arms(prog, sub[sub["residual"] == res], build, res if deciding else None, note)

    why = "no seed ran residual=progressive and another residual"
    return run_pipeline(crit, train, ["dataset"], comparisons, why)


def criterion4(ctx: Context, crit: Criterion, frame: pd.DataFrame, exp: str) -> list[Row]:
    """Drop = holdout test score of the training run − score of its task=eval run on the
    other data set, paired by the source run's seed. The two arms are scored on
    different images, so the bootstrap resamples each arm's image set on its own (one
    draw per set, shared by every seed)."""
    evals, train = eval_runs(frame)
    if evals.empty or train.empty:
        return [no_data(crit, f"{exp!r} has no task=eval runs of its training runs")]
    evals = evals[evals["source_run_id"].isin(train["run_id"])]
    if evals.empty:
        return [no_data(crit, "no task=eval run has its training run in the experiment")]
    # arm a: the eval runs, keyed by their source run's seed; arm b: the training runs
    evals["seed"] = evals["source_run_id"].map(train.set_index("run_id")["seed"])
    sources = train[train["run_id"].isin(evals["source_run_id"])]

    def acc(target, label, pairs):
        stratum = f"{label} → {target}" if target != "targets" else label
        arms = (target, "holdout test")
        return accuracy_row(ctx, crit, "holdout − target", arms, stratum, pairs, transfer=True)

    def comparisons(label, sub):
        ev_sub = evals[evals["source_run_id"].isin(sub["run_id"])]
        for (eds, esplit), ev in ev_sub.groupby(["eval_dataset", "eval_split"]):
            target = f"{frames.dataset_label(eds)} {frames.SPLIT_NAMES.get(esplit, esplit)}"
            src = sub[sub["run_id"].isin(ev["source_run_id"])]
            yield Arms(ev, src, partial(acc, target), "all")

    why, pooled = "no eval run pairs with its training run", partial(acc, "targets", "pooled")
    return run_pipeline(crit, sources, ["dataset"], comparisons, why, pooled, exclude=())


def _flops_row(crit, label, ratio, n_a=0, n_b=0) -> Row:
    """A stratum's (or the pooled) FLOPs row of the log ratio `ratio`: deterministic, no test."""
    pooled = label == "pooled"
    comparison = "FLOPs: geometric mean over strata" if pooled else "FLOPs: cbam / none − 1"
    row = new_row(crit, label, comparison, arm_a="none", arm_b="cbam", n_a=n_a, n_b=n_b)
    row.primary, row.pooled, row._deterministic = True, pooled, True
    row.interval = "none: a FLOP count does not vary between runs"
    row.test = "none (deterministic)"
    row.effect = row.low = row.high = ratio_pct(ratio)
    if math.isnan(ratio):
        row._reason = "the runs logged no model/gflops"
    return row


def criterion5(ctx: Context, crit: Criterion, frame: pd.DataFrame, exp: str) -> list[Row]:
    """Overhead of attention=cbam over attention=none of the same backbone: FLOPs
    (model/gflops, deterministic) and measured inference latency (perf/infer_latency_ms,
    paired by seed, tested on the log ratio against log 1.2)."""
    both = _none_and_cbam(frame)
    if both is None:
        return [no_data(crit, f"{exp!r} has no attention=none and attention=cbam runs")]
    key = LATENCY if frames.metric(both, LATENCY).notna().any() else OLD_LATENCY
    log_lat = dict(zip(both["run_id"], np.log(frames.metric(both, key).where(lambda s: s > 0))))
    thr = math.log(1 + crit.threshold / 100)
    flops = frames.metric(both, "model/gflops")
    flop_rows, ratios = [], []

    def latency(label, pairs):
        comparison, arms = "latency: cbam / none − 1", ("none", "cbam")
        r = paired_values_row(crit, comparison, arms, label, pairs, log_lat, ratio_pct, thr, key)
        r.interval = f"paired t interval of the mean log latency ratio over seeds ({key})"
        return r

    def comparisons(label, sub):
        a, b = sub[sub["attention"] == "none"], sub[sub["attention"] == "cbam"]
        if a.empty or b.empty:
            return
        fa, fb = flops.loc[a.index].median(), flops.loc[b.index].median()
        ratios.append(math.log(fb / fa) if fa > 0 and not math.isnan(fb) else math.nan)
        flop_rows.append(_flops_row(crit, label, ratios[-1], len(a), len(b)))
        yield Arms(a, b, latency, "latency")

    first, why = ["backbone", "dataset"], "no backbone has both arms"
    rows = run_pipeline(crit, both, first, comparisons, why, exclude=BLOCK | {"loss"})
    if len(flop_rows) > 1:  # the mean log ratio of the strata that have one
        flop_rows.append(_flops_row(crit, "pooled", float(pd.Series(ratios, dtype=float).mean())))
    elif flop_rows:
        flop_rows[0].pooled = True
    return flop_rows + [r for r in rows if r.comparison != "-"] or rows
