"""The paper's checkable criteria (an experiment file's ``report.claims`` names one of them
as its ``_target_``, with its threshold), each one pass of the same pipeline: stratify the run set
(data set, backbone, and every other row key that varies: `frames.varying`, ``variant``
included), pair the two arms of each stratum by seed, build one row per comparison, and pool
the deciding comparisons of all strata into one pooled row when there is more than one.

A criterion supplies only its arms and its row builder (`Arms`); `run_pipeline` does the
rest. The rows' statistics are in rows.py, the verdicts in verdict.py.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from glattn.report import frames, stats
from glattn.report.claims.rows import (
    Context,
    Criterion,
    Row,
    accuracy_row,
    argmax,
    join_notes,
    no_data,
    paired_values_row,
    pairs_by_seed,
    ratio_pct,
    test_means,
    val_means,
)
from glattn.report.tables_eval import LATENCY, OLD_LATENCY, source_runs


@dataclass
class Arms:
    """One comparison inside a stratum: arm a, arm b, the row builder, and the pool key
    (comparisons with the same key are pooled across strata; None: never pooled)."""

    a: pd.DataFrame
    b: pd.DataFrame
    build: Callable[[str, list], Row]  # (stratum label, pairs) -> Row
    pool: str | None = None
    primary: bool = True
    note: str = ""


def run_pipeline(crit, frame, keys, comparisons, pooled_row, why_none) -> list[Row]:
    """stratify -> pair -> row, then pool: `comparisons(label, sub)` yields `Arms`;
    `pooled_row(key, pairs)` builds the pooled row of the comparisons sharing `key`."""
    rows, pools = [], {}
    for label, sub in frames.strata(frame, keys):
        for arms in comparisons(label, sub):
            pairs = pairs_by_seed(arms.a, arms.b)
            if not pairs:
                continue
            row = arms.build(label, pairs)
            row.n_a, row.n_b = len(arms.a), len(arms.b)
            row.primary, row.note = arms.primary, join_notes(row.note, arms.note)
            rows.append(row)
            if arms.pool is not None:
                pools.setdefault(arms.pool, []).append((label, pairs, row))
    if not rows:
        return [no_data(crit, why_none)]
    for key, members in pools.items():
        if len(members) == 1:
            members[0][2].pooled = True
            continue
        pairs = [(f"{label}/{s}", ra, rb) for label, ps, _ in members for s, ra, rb in ps]
        row = pooled_row(key, pairs)
        if row is not None:
            row.primary = row.pooled = True
            rows.append(row)
    if not any(r.primary for r in rows):
        for r in rows:
            r.primary = True
    return rows


def _none_and_cbam(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The training runs without attention, and with CBAM and the reference code's block."""
    train = frames.trained(frame)
    none = train[train["attention"] == "none"]
    cbam = frames.restrict(
        train[train["attention"] == "cbam"], {"fusion": "original", "residual": "original"}
    )
    return none, cbam


def _keys(frame, first, exclude) -> list[str]:
    return list(first) + frames.varying(frame, exclude=set(first) | set(exclude))


def criterion1(ctx: Context, crit: Criterion, frame: pd.DataFrame, exp: str) -> list[Row]:
    """attention=cbam (fusion=original, residual=original) against attention=none, per
    data set and backbone, paired by seed; effect in percentage points."""
    none, cbam = _none_and_cbam(frame)
    if none.empty or cbam.empty:
        return [no_data(crit, f"{exp!r} has no attention=none and attention=cbam runs")]
    both = pd.concat([none, cbam])
    arms = ("none", "cbam")

    def acc(label, pairs):
        return accuracy_row(ctx, crit, label, "cbam − none", arms, pairs)

    def comparisons(label, sub):
        yield Arms(sub[sub["attention"] == "none"], sub[sub["attention"] == "cbam"], acc, "all")

    keys = _keys(both, ["dataset", "backbone"], {"attention", "fusion", "residual"})
    return run_pipeline(
        crit, both, keys, comparisons, lambda k, p: acc("pooled", p), "no seed ran both arms"
    )


def _selection_note(best: str | None, on_test: str | None) -> str:
    note = f"best fusion chosen on validation ({best}), judged on test"
    if on_test and on_test != best:
        note += f"; on test {on_test} scores highest (a test-picked best is biased upwards)"
    return note


def criterion2(ctx: Context, crit: Criterion, frame: pd.DataFrame, exp: str) -> list[Row]:
    """Every fusion against fusion=original (attention=cbam, residual=original). The
    best fusion is chosen on the validation metric (best/val/<metric>, mean over seeds)
    and judged on the test split; all five comparisons form Holm's family."""
    base = {"attention": "cbam", "residual": "original"}
    train = frames.restrict(frames.trained(frame), base)
    if train.empty or train["fusion"].nunique() < 2 or not (train["fusion"] == "original").any():
        return [no_data(crit, f"{exp!r} has no fusion=original runs and another fusion")]
    keys = _keys(train, ["dataset"], {"fusion", "attention", "residual"})
    per_stratum, missing = [], []

    def comparisons(label, sub):
        orig, others = sub[sub["fusion"] == "original"], sub[sub["fusion"] != "original"]
        if orig.empty or others.empty:
            return
        val = val_means(ctx, others, "fusion")
        per_stratum.append(val)
        best, on_test = (
            argmax(val, "fusion"),
            argmax(test_means(ctx, others, "fusion"), "fusion"),
        )
        if best is None:
            missing.append(label)
        for fusion in frames.ordered("fusion", others["fusion"].unique()):
            name = f"{fusion} (best on validation)" if fusion == best else fusion

            def acc(lab, pairs, fusion=fusion, name=name):
                return accuracy_row(
                    ctx, crit, lab, f"{fusion} − original", ("original", name), pairs
                )

            is_best = fusion == best
            note = _selection_note(best, on_test) if is_best else ""
            arm = others[others["fusion"] == fusion]
            yield Arms(orig, arm, acc, "best" if is_best else None, is_best, note)

    def pooled(key, pairs):
        common = set.intersection(*(set(m) for m in per_stratum)) if per_stratum else set()
        best = argmax({f: float(np.mean([m[f] for m in per_stratum])) for f in common}, "fusion")
        if best is None:
            return None
        mine = [p for p in pairs if _is_fusion(train, p[2], best)]
        r = accuracy_row(
            ctx,
            crit,
            "pooled",
            f"{best} − original",
            ("original", f"{best} (best on validation)"),
            mine,
        )
        r.note = "best chosen on the mean over strata of the validation means"
        return r

    rows = run_pipeline(crit, train, keys, comparisons, pooled, "no seed ran both fusions")
    for label in missing:
        why = f"no best/val/{ctx.metric} or val_probabilities.csv to choose the best on"
        rows.append(no_data(crit, why))
        rows[-1].stratum, rows[-1].pooled = label, False
    return rows


def _is_fusion(frame, run_id, fusion) -> bool:
    return bool((frame.loc[frame["run_id"] == run_id, "fusion"] == fusion).any())


def convergence_epochs(ctx: Context, frame: pd.DataFrame, fraction=0.95) -> dict[str, float]:
    """{run_id: first epoch whose val/<metric> reaches `fraction` of the run's best}."""
    hist = ctx.files.history(list(frame["run_id"]), f"val/{ctx.metric}")
    return {r: stats.convergence_epoch(hist.get(r, {}), fraction) for r in frame["run_id"]}


def criterion3(ctx: Context, crit: Criterion, frame: pd.DataFrame, exp: str) -> list[Row]:
    """Convergence epoch: the first epoch whose val/<metric> reaches 95% of the run's
    own best. Effect = epochs(other residual) − epochs(progressive): positive means
    progressive converges faster. One number per run, so the interval is the paired t
    interval."""
    base = {"attention": "cbam", "fusion": "original"}
    train = frames.restrict(frames.trained(frame), base)
    if train.empty or not (train["residual"] == "progressive").any():
        return [no_data(crit, f"{exp!r} has no residual=progressive runs")]
    if train["residual"].nunique() < 2:
        return [no_data(crit, f"{exp!r} has residual=progressive runs only")]
    epochs = convergence_epochs(ctx, train)
    what = f"a per-epoch val/{ctx.metric} history"
    has_original = (train["residual"] == "original").any()

    def row_of(res):
        def build(label, pairs):
            return paired_values_row(
                crit,
                label,
                f"{res} − progressive (epochs)",
                ("progressive", res),
                pairs,
                epochs,
                what=what,
            )

        return build

    def comparisons(label, sub):
        prog = sub[sub["residual"] == "progressive"]
        if prog.empty:
            return
        best = argmax(val_means(ctx, sub, "residual"), "residual")
        for res in frames.ordered("residual", sub["residual"].unique()):
            if res == "progressive":
                continue
            deciding = res == "original" or not has_original
            note = f"best residual on validation: {best}" if best else ""
            arm = sub[sub["residual"] == res]
            yield Arms(prog, arm, row_of(res), res if deciding else None, deciding, note)

    keys = _keys(train, ["dataset"], {"residual", "attention", "fusion"})
    return run_pipeline(
        crit,
        train,
        keys,
        comparisons,
        lambda res, pairs: row_of(res)("pooled", pairs),
        "no seed ran residual=progressive and another residual",
    )


def criterion4(ctx: Context, crit: Criterion, frame: pd.DataFrame, exp: str) -> list[Row]:
    """Drop = holdout test score of the training run − score of its task=eval run on the
    other data set, paired by the source run's seed. The two arms are scored on
    different images, so the bootstrap resamples each arm's image set on its own (one
    draw per set, shared by every seed)."""
    train = frames.trained(frame)
    evals = frame[frame["task"] == "eval"].copy()
    if evals.empty or train.empty:
        return [no_data(crit, f"{exp!r} has no task=eval runs of its training runs")]
    evals["source_run_id"] = source_runs(evals, train)
    evals = evals[evals["source_run_id"].isin(train["run_id"])]
    if evals.empty:
        return [no_data(crit, "no task=eval run has its training run in the experiment")]
    # arm a: the eval runs, keyed by their source run's seed; arm b: the training runs
    evals["seed"] = evals["source_run_id"].map(train.set_index("run_id")["seed"])
    sources = train[train["run_id"].isin(evals["source_run_id"])]

    def acc(target):
        def build(label, pairs):
            return accuracy_row(
                ctx,
                crit,
                f"{label} → {target}" if target != "targets" else label,
                "holdout − target",
                (target, "holdout test"),
                pairs,
                ("eval", "test"),
                same_images=False,
            )

        return build

    def comparisons(label, sub):
        ev_sub = evals[evals["source_run_id"].isin(sub["run_id"])]
        for (eds, esplit), ev in ev_sub.groupby(["eval_dataset", "eval_split"]):
            ev = ev.sort_values("start_time").drop_duplicates("source_run_id", keep="last")
            target = f"{frames.dataset_label(eds)} {frames.SPLIT_NAMES.get(esplit, esplit)}"
            src = sub[sub["run_id"].isin(ev["source_run_id"])]
            yield Arms(ev, src, acc(target), "all")

    keys = _keys(sources, ["dataset"], set())
    return run_pipeline(
        crit,
        sources,
        keys,
        comparisons,
        lambda k, pairs: acc("targets")("pooled", pairs),
        "no eval run pairs with its training run",
    )


def _flops_row(crit, label, a, b, flops) -> tuple[Row, float]:
    row = Row(
        crit.number,
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
        pooled=label == "pooled",
        interval="none: a FLOP count does not vary between runs",
        test="none (deterministic)",
        _deterministic=True,
    )
    fa, fb = flops.loc[a.index].median(), flops.loc[b.index].median()
    ratio = math.log(fb / fa) if fa > 0 and not math.isnan(fb) else math.nan
    if math.isnan(ratio):
        row._reason = "the runs logged no model/gflops"
    else:
        row.effect = row.low = row.high = ratio_pct(ratio)
    return row, ratio


def criterion5(ctx: Context, crit: Criterion, frame: pd.DataFrame, exp: str) -> list[Row]:
    """Overhead of attention=cbam over attention=none of the same backbone: FLOPs
    (model/gflops, deterministic) and measured inference latency (perf/infer_latency_ms,
    paired by seed, tested on the log ratio against log 1.2)."""
    none, cbam = _none_and_cbam(frame)
    if none.empty or cbam.empty:
        return [no_data(crit, f"{exp!r} has no attention=none and attention=cbam runs")]
    both = pd.concat([none, cbam])
    key = LATENCY if frames.metric(both, LATENCY).notna().any() else OLD_LATENCY
    lat = np.log(frames.metric(both, key).where(lambda s: s > 0))
    log_lat = dict(zip(both["run_id"], lat))
    thr = math.log(1 + crit.threshold / 100)
    flops = frames.metric(both, "model/gflops")
    flop_rows, ratios = [], []

    def latency(label, pairs):
        r = paired_values_row(
            crit,
            label,
            "latency: cbam / none − 1",
            ("none", "cbam"),
            pairs,
            log_lat,
            show=ratio_pct,
            thr=thr,
            what=key,
        )
        r.interval = f"paired t interval of the mean log latency ratio over seeds ({key})"
        return r

    def comparisons(label, sub):
        a, b = sub[sub["attention"] == "none"], sub[sub["attention"] == "cbam"]
        if a.empty or b.empty:
            return
        row, ratio = _flops_row(crit, label, a, b, flops)
        flop_rows.append(row)
        ratios.append(ratio)
        yield Arms(a, b, latency, "latency")

    keys = _keys(both, ["backbone", "dataset"], {"attention", "fusion", "residual", "loss"})
    rows = run_pipeline(
        crit,
        both,
        keys,
        comparisons,
        lambda k, p: latency("pooled", p),
        "no backbone has both arms",
    )
    if len(flop_rows) > 1:
        pooled, _ = _flops_row(crit, "pooled", none.iloc[:0], cbam.iloc[:0], flops)
        pooled.comparison = "FLOPs: geometric mean over strata"
        ok = [r for r in ratios if not math.isnan(r)]
        if ok:
            pooled.effect = pooled.low = pooled.high = ratio_pct(float(np.mean(ok)))
        flop_rows.append(pooled)
    elif flop_rows:
        flop_rows[0].pooled = True
    return flop_rows + [r for r in rows if r.comparison != "-"] or rows
