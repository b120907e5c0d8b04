"""Table builders: the generic `subject_table` (one row per option of the declared group) and
the layouts of the paper's Tables 1-4, from the declared run set of one experiment (see
runs.load_runs); Tables 5 and 6 are in tables_eval.py. Which builder makes which table, its
number, title, group, baseline, pinned groups and metric columns are the experiment file's
``report:`` block (glattn.report.declared); a builder is ``(runs, ctx, decl) -> Table | None``.

Every metric cell is mean ± sample std (ddof=1) over seeds with n, from one run per seed and
configuration (glattn.report.selection). Runs are grouped by their row keys (the factors of
glattn.groups plus ``variant``); a factor that is not the table's subject is pinned to its
declared value when it varies (``pinned``: Table 3 uses residual=original), and any row key
still varying after that becomes an extra row key, so runs of different configurations are
never pooled. Subject tables carry the paired t-test by seed against the declared baseline.
"""

from __future__ import annotations

import dataclasses
import math

import pandas as pd

from glattn.report import declared, stats
from glattn.report.cells import (
    METRICS,
    NO_RUNS,
    VAL_NOTE,
    Context,
    by_seed,
    caption_stats,
    constant_cell,
    diff_cell,
    grid,
    levels_of,
    metric_cell,
    millions,
    p_cell,
    references,
    score,
    summary_cell,
)
from glattn.report.frames import (
    SPLIT_NAMES,
    dataset_label,
    metric,
    ordered,
    restrict,
    trained,
    varying,
)
from glattn.report.table_format import DASH, Cell, Table
from glattn.report.tables_eval import source_runs, table5, table6

groups = grid  # the name claims and older callers use


def _extra_keys(frame, subject, baseline):
    """Row keys still varying after pinning: extra row keys (only groups where the subject
    itself varies, i.e. that belong to this ablation, are kept by the caller)."""
    return varying(frame, exclude=set(subject) | {"dataset"} | set(baseline))


def table1(runs: pd.DataFrame, ctx: Context, decl) -> Table | None:
    """One row per option of the group (backbones) with the pinned groups held (attention
    none): parameters, metric per data set, training time."""
    spec = decl.spec
    frame = trained(runs)
    for key, value in spec.pinned.items():
        frame = frame[frame[key] == value]
    if frame.empty:
        return None
    extra = _extra_keys(frame, [spec.group, *spec.pinned], {})
    datasets = levels_of(frame, "dataset", ctx)
    cols = [spec.group.capitalize()] + [k.capitalize() for k in extra] + ["Params (M)"]
    cols += [f"{dataset_label(d)} {METRICS[ctx.metric]}" for d in datasets]
    cols += [f"{dataset_label(d)} train time (min)" for d in datasets]
    pinned = ", ".join(f"{k}={v}" for k, v in spec.pinned.items())
    table = Table(
        decl.experiment,
        decl.title,
        f"{pinned} (plain backbone). {caption_stats(ctx)}; training time "
        "time/train_total_s in minutes.",
        cols,
        label_columns=1 + len(extra),
        best={c: "max" for c in cols if c.endswith(METRICS[ctx.metric])},
    )
    for levels, sub in grid(frame, [spec.group] + extra, ctx):
        row = [Cell(str(v)) for v in levels]
        row.append(constant_cell(sub, "model/params_total", millions))
        per_ds = [sub[sub["dataset"] == d] for d in datasets]
        row += [metric_cell(s, ctx) for s in per_ds]
        for s in per_ds:
            secs, note = by_seed(s, metric(s, "time/train_total_s"))
            missing = NO_RUNS if s.empty else "runs did not log time/train_total_s"
            row.append(summary_cell(secs, lambda v: f"{v / 60:.1f}", note, missing))
        table.add_row(row)
    return table


def table2(runs: pd.DataFrame, ctx: Context, decl) -> Table | None:
    """CBAM against the baseline option of the group (attention none) per backbone: both
    arms, the difference and a p-value; the CBAM arm with the pinned groups held."""
    spec = decl.spec
    group, base = spec.group, spec.baseline
    frame = trained(runs)
    frame = frame[frame[group].isin([base, "cbam"])]
    if frame.empty or frame[group].nunique() < 2:
        return None
    cbam = restrict(frame[frame[group] == "cbam"], dict(spec.pinned))
    frame = pd.concat([frame[frame[group] == base], cbam])
    extra = [k for k in _extra_keys(frame, ["backbone", group], set(spec.pinned))]
    cols = ["Data set", "Backbone"] + [k.capitalize() for k in extra]
    cols += [base, "CBAM", f"Δ (CBAM − {base})", "p", "Test"]
    pinned = ", ".join(f"{k}={v}" for k, v in spec.pinned.items())
    table = Table(
        decl.experiment,
        decl.title,
        f"{caption_stats(ctx)}. CBAM runs use {pinned}. "
        "Δ in percentage points. p: two-sided paired t-test by seed (scipy.stats.ttest_rel) "
        "when both arms ran the same seeds, Welch's unequal-variance t-test "
        "(scipy.stats.ttest_ind, equal_var=False) otherwise; the Test column names it.",
        cols,
        label_columns=2 + len(extra),
        best={base: "max", "CBAM": "max"},
    )
    for levels, sub in grid(frame, ["dataset", "backbone"] + extra, ctx):
        none, att = sub[sub[group] == base], sub[sub[group] == "cbam"]
        a, _ = by_seed(none, score(none, ctx.metric)[0])
        b, _ = by_seed(att, score(att, ctx.metric)[0])
        cmp = stats.compare(a, b)
        row = [Cell(dataset_label(levels[0]))] + [Cell(str(v)) for v in levels[1:]]
        row += [metric_cell(none, ctx), metric_cell(att, ctx), diff_cell(cmp), p_cell(cmp)]
        row.append(Cell(cmp.test) if cmp.test else Cell.missing(f"no test: {cmp.reason}"))
        table.add_row(row)
    return table


def subject_table(runs: pd.DataFrame, ctx: Context, decl) -> Table | None:
    """One row per option of the declared group: the metric columns per data set, p against
    the baseline option, the option's reference (any experiment's ``report:`` block)."""
    return _subject_table(runs, ctx, decl, references(decl.spec.group, runs), lambda ds: [])


def _metrics(spec, ctx: Context) -> list[str]:
    """The declared metric columns; --metric, when not among them, replaces them."""
    return list(spec.metrics) if ctx.metric in spec.metrics else [ctx.metric]


def _subject_table(runs, ctx, decl, refs, extra_cols):
    """Rows = options of the group, metric per data set, p vs baseline, extra columns."""
    spec = decl.spec
    subject, baseline, base = spec.group, dict(spec.pinned), spec.baseline
    frame = trained(runs)
    frame = restrict(frame, baseline)
    # One strategy with finished runs is still this table when the experiment's sweep asks
    # for more (its missing rows are dashes); without that, one level is no ablation.
    asked = len(ctx.expected.get(subject, [])) > 1
    if frame.empty or (frame[subject].nunique() < 2 and not asked):
        return None
    extra = _extra_keys(frame, [subject], baseline)
    keep = [
        sub
        for _, sub in grid(frame, extra, ctx, full=False)
        if asked or sub[subject].nunique() > 1
    ]
    frame = pd.concat(keep) if keep else frame.iloc[:0]
    if frame.empty:
        return None
    datasets = levels_of(frame, "dataset", ctx)
    cols = [k.capitalize() for k in extra] + [subject.capitalize()]
    metrics = _metrics(spec, ctx)
    metric_cols = [f"{dataset_label(d)} {METRICS[m]}" for m in metrics for d in datasets]
    p_cols = [f"{dataset_label(d)} p vs {base}" for d in datasets] if base else []
    cols += metric_cols + p_cols
    cols += [name for name, _ in extra_cols(datasets)] + ["Reference"]
    pinned = "".join(f"{k}={v}, " for k, v in baseline.items())[:-2]
    tested = f" p vs {base}: {PAIRED_NOTE.format(base=base)}" if base else ""
    table = Table(
        decl.experiment,
        decl.title,
        f"{pinned}{'. ' if pinned else ''}{caption_stats(ctx)}.{tested}",
        cols,
        label_columns=len(extra) + 1,
        best={c: "max" for c in metric_cols},
    )
    grouped = list(grid(frame, extra, ctx, full=False)) if extra else [((), frame)]
    for glevels, gframe in grouped:
        for (level,), sub in grid(gframe, [subject], ctx):
            row = [Cell(str(v)) for v in glevels] + [Cell(level)]
            for m in metrics:
                mctx = dataclasses.replace(ctx, metric=m)
                row += [metric_cell(sub[sub["dataset"] == d], mctx) for d in datasets]
            if base:
                row += [_vs_baseline(sub, gframe, subject, base, d, ctx) for d in datasets]
            row += [fn(sub, gframe) for _, fn in extra_cols(datasets)]
            row.append(
                Cell(refs.get(level, ""))
                if level in refs
                else Cell.missing(f"no reference recorded for {subject}={level}")
            )
            table.add_row(row)
    return table


PAIRED_NOTE = (
    "two-sided paired t-test by seed against the {base} row of the same data set "
    "(scipy.stats.ttest_rel; Welch's t-test when the seeds differ), the claims' test; "
    "p = 1 when the paired differences are all equal"
)


def _vs_baseline(sub, gframe, subject, baseline, dataset, ctx) -> Cell:
    """p of this row's seeds against the baseline's (the claims' paired t-test by seed)."""
    mine = sub[sub["dataset"] == dataset]
    if mine.empty:
        return Cell.missing(NO_RUNS)
    if (mine[subject] == baseline).all():
        return Cell("ref")
    base = gframe[(gframe[subject] == baseline) & (gframe["dataset"] == dataset)]
    if base.empty:
        return Cell.missing(f"no {subject}={baseline} run to compare with")
    a, _ = by_seed(base, score(base, ctx.metric)[0])
    b, _ = by_seed(mine, score(mine, ctx.metric)[0])
    return p_cell(stats.compare(a, b))


def table3(runs: pd.DataFrame, ctx: Context, decl) -> Table | None:
    """A subject table (fusion strategies) with each option's extra parameters over the
    baseline's."""
    subject, baseline = decl.spec.group, decl.spec.baseline

    def extra_params(sub, group):
        base = group[group[subject] == baseline]
        mine = constant_cell(sub, "model/params_total", str)
        ref = constant_cell(base, "model/params_total", str)
        if mine.n is None or math.isnan(mine.mean):
            return mine
        if ref.n is None or math.isnan(ref.mean):
            return Cell.missing(f"no {subject}={baseline} run to compare parameters with")
        d = mine.mean - ref.mean
        return Cell(f"{d:+,.0f}", d, n=mine.n)

    return _subject_table(
        runs,
        ctx,
        decl,
        references(subject, runs),
        lambda datasets: [(f"Params vs {baseline}", extra_params)],
    )


def table4(runs: pd.DataFrame, ctx: Context, decl) -> Table | None:
    """A subject table (residual strategies) with each option's convergence epoch per data
    set."""
    frac = ctx.convergence_fraction

    def conv(dataset):
        def cell(sub, group):
            sub = sub[sub["dataset"] == dataset]
            if sub.empty:
                return Cell.missing(NO_RUNS)
            if ctx.history is None:
                return Cell.missing("metric history not available")
            key = f"val/{ctx.metric}"
            hist = ctx.history(list(sub["run_id"]), key)
            epochs = pd.Series(
                {
                    i: stats.convergence_epoch(hist.get(r, {}), frac)
                    for i, r in zip(sub.index, sub["run_id"])
                },
                dtype=float,
            )
            seeds, note = by_seed(sub, epochs)
            return summary_cell(
                seeds, lambda v: f"{v:.1f}", note, f"runs logged no per-epoch {key}"
            )

        return cell

    t = _subject_table(
        runs,
        ctx,
        decl,
        references(decl.spec.group, runs),
        lambda datasets: [(f"{dataset_label(d)} conv. epoch", conv(d)) for d in datasets],
    )
    if t is not None:
        t.caption += (
            f" Convergence epoch: the first epoch whose val/{ctx.metric} reaches "
            f"{frac:.0%} of the run's best, mean ± std over seeds."
        )
    return t


def tables_for(experiment: str, catalog: declared.Catalog | None = None) -> list[int] | None:
    """Which tables an experiment name asks for (glattn.report.declared.Catalog.tables_for):
    its declared table, every table of a stages file (paper), else None (all declared)."""
    return (catalog or declared.load()).tables_for(experiment)


def build_tables(
    runs: pd.DataFrame,
    ctx: Context,
    which: list[int] | None,
    catalog: declared.Catalog | None = None,
) -> dict:
    """{number: Table or None} of the declared tables `which` (default: all); None where a
    table has no data in these runs."""
    by_number = (catalog or declared.load()).by_number()
    return {n: by_number[n].build(runs, ctx) for n in which or sorted(by_number)}


__all__ = [
    "DASH",
    "METRICS",
    "NO_RUNS",
    "SPLIT_NAMES",
    "VAL_NOTE",
    "Context",
    "build_tables",
    "by_seed",
    "dataset_label",
    "groups",
    "levels_of",
    "millions",
    "ordered",
    "restrict",
    "score",
    "source_runs",
    "subject_table",
    "table5",
    "table6",
    "summary_cell",
    "tables_for",
    "trained",
    "varying",
]
