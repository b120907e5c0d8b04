"""Table builders ``(runs, ctx, decl) -> Table | None`` that the experiment files' ``report:``
blocks name: `subject_table` and Tables 1-4 (5, 6: tables_eval). Factors other than the subject
are pinned as declared; a row key still varying becomes an extra row key (never pooled)."""

from __future__ import annotations

import dataclasses
import math
from functools import partial

import pandas as pd

from glattn.report import cells, stats
from glattn.report.cells import METRICS, NO_RUNS, Context, metric_cell
from glattn.report.frames import dataset_label, restrict, select, trained, varying
from glattn.report.table_format import Cell, Table


def _extra_keys(frame: pd.DataFrame, spec, *more: str) -> list[str]:
    """Row keys still varying besides the group, its pinned factors and the data set."""
    return varying(frame, exclude={spec.group, *spec.pinned, "dataset", *more})


def _pinned(spec) -> str:
    return ", ".join(f"{k}={v}" for k, v in spec.pinned.items())


def table1(runs: pd.DataFrame, ctx: Context, decl) -> Table | None:
    """Per option of the group (backbones), pinned groups held: params, metric, training time."""
    spec = decl.spec
    frame = select(trained(runs), spec.pinned, spec.pinned.values())
    if frame.empty:
        return None
    keys = [spec.group] + _extra_keys(frame, spec)
    datasets = ctx.levels(frame, "dataset")
    scores = [f"{dataset_label(d)} {METRICS[ctx.metric]}" for d in datasets]
    cols = [k.capitalize() for k in keys] + ["Params (M)", *scores]
    cols += [f"{dataset_label(d)} train time (min)" for d in datasets]
    caption = f"{_pinned(spec)} (plain backbone). {cells.caption_stats(ctx)}; training time "
    caption += "time/train_total_s in minutes."
    best = dict.fromkeys(scores, "max")
    table = Table(decl.experiment, decl.title, caption, cols, best=best, label_columns=len(keys))
    for levels, sub in ctx.grid(frame, keys):
        per_ds = [sub[sub["dataset"] == d] for d in datasets]
        row = [Cell(str(v)) for v in levels]
        row.append(cells.constant_cell(sub, "model/params_total", cells.millions))
        row += [metric_cell(s, ctx) for s in per_ds]
        row += [
            cells.logged_cell(s, "time/train_total_s", lambda v: f"{v / 60:.1f}") for s in per_ds
        ]
        table.add_row(row)
    return table


def table2(runs: pd.DataFrame, ctx: Context, decl) -> Table | None:
    """CBAM (pinned groups held) against the group's baseline per backbone: both, Δ and p."""
    spec = decl.spec
    group, base = spec.group, spec.baseline
    frame = trained(runs)
    cbam = restrict(frame[frame[group] == "cbam"], spec.pinned)
    frame = pd.concat([frame[frame[group] == base], cbam])
    if frame[group].nunique() < 2:
        return None
    keys = ["dataset", "backbone"] + _extra_keys(frame, spec, "backbone")
    cols = ["Data set", "Backbone"] + [k.capitalize() for k in keys[2:]]
    cols += [base, "CBAM", f"Δ (CBAM − {base})", "p", "Test"]
    caption = (
        f"{cells.caption_stats(ctx)}. CBAM runs use {_pinned(spec)}. "
        "Δ in percentage points. p: two-sided paired t-test by seed (scipy.stats.ttest_rel) "
        "when both arms ran the same seeds, Welch's unequal-variance t-test "
        "(scipy.stats.ttest_ind, equal_var=False) otherwise; the Test column names it."
    )
    best = {base: "max", "CBAM": "max"}
    table = Table(decl.experiment, decl.title, caption, cols, best=best, label_columns=len(keys))
    for levels, sub in ctx.grid(frame, keys):
        none, att = sub[sub[group] == base], sub[sub[group] == "cbam"]
        cmp = cells.compare(none, att, ctx.metric)
        row = [Cell(dataset_label(levels[0]))] + [Cell(str(v)) for v in levels[1:]]
        row += [metric_cell(none, ctx), metric_cell(att, ctx)]
        row += [cells.diff_cell(cmp), cells.p_cell(cmp)]
        row.append(Cell(cmp.test) if cmp.test else Cell.missing(f"no test: {cmp.reason}"))
        table.add_row(row)
    return table


def subject_table(runs: pd.DataFrame, ctx: Context, decl, extra_cols=lambda datasets: []):
    """One row per option of the declared group: the metric columns per data set, p against
    the baseline option, `extra_cols(datasets)` ([(name, (sub, group frame) -> Cell)]) and the
    option's reference (from the runs' tags)."""
    spec = decl.spec
    subject, base = spec.group, spec.baseline
    frame = restrict(trained(runs), spec.pinned)
    extra = _extra_keys(frame, spec)
    # one option is still a table when the sweep asks for more (the missing rows are dashes)
    asked = len(ctx.expected.get(subject, [])) > 1
    keep = [s for _, s in ctx.grid(frame, extra, full=False) if asked or s[subject].nunique() > 1]
    if frame.empty or not keep:
        return None
    frame = pd.concat(keep)
    datasets = ctx.levels(frame, "dataset")
    # --metric, when not among the declared metric columns, replaces them
    metrics = list(spec.metrics) if ctx.metric in spec.metrics else [ctx.metric]
    metric_cols = [f"{dataset_label(d)} {METRICS[m]}" for m in metrics for d in datasets]
    p_cols = [f"{dataset_label(d)} p vs {base}" for d in datasets] if base else []
    added = extra_cols(datasets)
    labels = [*extra, subject]
    cols = [k.capitalize() for k in labels] + metric_cols + p_cols
    cols += [name for name, _ in added] + ["Reference"]
    caption = ". ".join(filter(None, [_pinned(spec), cells.caption_stats(ctx)])) + "."
    if base:
        caption += (
            f" p vs {base}: two-sided paired t-test by seed against the {base} row of the same "
            "data set (scipy.stats.ttest_rel; Welch's t-test when the seeds differ), the claims' "
            "test; p = 1 when the paired differences are all equal"
        )
    best = dict.fromkeys(metric_cols, "max")
    table = Table(decl.experiment, decl.title, caption, cols, best=best, label_columns=len(labels))
    refs = cells.references(subject, runs)
    contexts = [dataclasses.replace(ctx, metric=m) for m in metrics]
    for glevels, gframe in ctx.grid(frame, extra, full=False):
        for (level,), sub in ctx.grid(gframe, [subject]):
            row = [Cell(str(v)) for v in glevels] + [Cell(level)]
            row += [metric_cell(sub[sub["dataset"] == d], c) for c in contexts for d in datasets]
            if base:
                row += [_vs_baseline(sub, gframe, spec, d, ctx) for d in datasets]
            row += [cell(sub, gframe) for _, cell in added]
            no_ref = f"no reference recorded for {subject}={level}"
            row.append(Cell(refs[level]) if level in refs else Cell.missing(no_ref))
            table.add_row(row)
    return table


def _vs_baseline(sub, gframe, spec, dataset, ctx) -> Cell:
    """p of this row's seeds against the baseline's (the claims' paired t-test by seed)."""
    subject, baseline = spec.group, spec.baseline
    mine = sub[sub["dataset"] == dataset]
    if mine.empty:
        return Cell.missing(NO_RUNS)
    if (mine[subject] == baseline).all():
        return Cell("ref")
    base = gframe[(gframe[subject] == baseline) & (gframe["dataset"] == dataset)]
    if base.empty:
        return Cell.missing(f"no {subject}={baseline} run to compare with")
    return cells.p_cell(cells.compare(base, mine, ctx.metric))


def table3(runs: pd.DataFrame, ctx: Context, decl) -> Table | None:
    """A subject table (fusion) with each option's parameters over the baseline's."""
    subject, baseline = decl.spec.group, decl.spec.baseline

    def extra_params(sub, group):
        mine = cells.constant_cell(sub, "model/params_total", str)
        ref = cells.constant_cell(group[group[subject] == baseline], "model/params_total", str)
        if math.isnan(mine.mean):
            return mine
        if math.isnan(ref.mean):
            return Cell.missing(f"no {subject}={baseline} run to compare parameters with")
        d = mine.mean - ref.mean
        return Cell(f"{d:+,.0f}", d, n=mine.n)

    return subject_table(runs, ctx, decl, lambda ds: [(f"Params vs {baseline}", extra_params)])


def table4(runs: pd.DataFrame, ctx: Context, decl) -> Table | None:
    """A subject table (residual) with each option's convergence epoch per data set."""

    def epochs(ds):
        return [(f"{dataset_label(d)} conv. epoch", partial(_convergence, ctx, d)) for d in ds]

    t = subject_table(runs, ctx, decl, epochs)
    if t is not None:
        t.caption += (
            f" Convergence epoch: the first epoch whose val/{ctx.metric} reaches "
            f"{ctx.convergence_fraction:.0%} of the run's best, mean ± std over seeds."
        )
    return t


def _convergence(ctx: Context, dataset: str, sub: pd.DataFrame, group) -> Cell:
    """Table 4's convergence epoch of one data set's runs, over seeds."""
    sub = sub[sub["dataset"] == dataset]
    if sub.empty:
        return Cell.missing(NO_RUNS)
    if ctx.history is None:
        return Cell.missing("metric history not available")
    key = f"val/{ctx.metric}"
    hist = ctx.history(list(sub["run_id"]), key)
    fraction = ctx.convergence_fraction
    epochs = [stats.convergence_epoch(hist.get(r, {}), fraction) for r in sub["run_id"]]
    seeds, note = cells.by_seed(sub, pd.Series(epochs, sub.index, float))
    return cells.summary_cell(seeds, "{:.1f}".format, note, f"runs logged no per-epoch {key}")
