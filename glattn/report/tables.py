"""The paper's Tables 1-4 from the declared run set of one experiment (see runs.load_runs);
Tables 5 and 6 are in tables_eval.py.

Every metric cell is mean ± sample std (ddof=1) over seeds with n, from one run per seed and
configuration (glattn.report.selection). Runs are grouped by their row keys (the factors of
glattn.groups plus ``variant``); a factor that is not the table's subject is pinned to its
baseline value when it varies (e.g. Table 3 uses residual=original), and any row key still
varying after that becomes an extra row key, so runs of different configurations are never
pooled. Tables 3 and 4 carry the paired t-test by seed against ``original``.
"""

from __future__ import annotations

import math

import pandas as pd

from glattn.report import stats
from glattn.report.cells import (
    METRICS,
    NO_RUNS,
    TABLES,
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


def table1(runs: pd.DataFrame, ctx: Context) -> Table | None:
    """Backbones without attention: parameters, metric per data set, training time."""
    frame = trained(runs)
    frame = frame[frame["attention"] == "none"]
    if frame.empty:
        return None
    extra = _extra_keys(frame, ["backbone", "attention"], {})
    datasets = levels_of(frame, "dataset", ctx)
    cols = ["Backbone"] + [k.capitalize() for k in extra] + ["Params (M)"]
    cols += [f"{dataset_label(d)} {METRICS[ctx.metric]}" for d in datasets]
    cols += [f"{dataset_label(d)} train time (min)" for d in datasets]
    table = Table(
        TABLES[1],
        "Table 1: Backbones without attention",
        f"attention=none (plain backbone). {caption_stats(ctx)}; training time "
        "time/train_total_s in minutes.",
        cols,
        label_columns=1 + len(extra),
        best={c: "max" for c in cols if c.endswith(METRICS[ctx.metric])},
    )
    for levels, sub in grid(frame, ["backbone"] + extra, ctx):
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


def table2(runs: pd.DataFrame, ctx: Context) -> Table | None:
    """CBAM vs none per backbone: both arms, the difference and a p-value."""
    frame = trained(runs)
    frame = frame[frame["attention"].isin(["none", "cbam"])]
    if frame.empty or frame["attention"].nunique() < 2:
        return None
    cbam = restrict(
        frame[frame["attention"] == "cbam"], {"fusion": "original", "residual": "original"}
    )
    frame = pd.concat([frame[frame["attention"] == "none"], cbam])
    extra = [k for k in _extra_keys(frame, ["backbone", "attention"], {"fusion", "residual"})]
    cols = ["Data set", "Backbone"] + [k.capitalize() for k in extra]
    cols += ["none", "CBAM", "Δ (CBAM − none)", "p", "Test"]
    table = Table(
        TABLES[2],
        "Table 2: CBAM vs no attention",
        f"{caption_stats(ctx)}. CBAM runs use fusion=original, residual=original. "
        "Δ in percentage points. p: two-sided paired t-test by seed (scipy.stats.ttest_rel) "
        "when both arms ran the same seeds, Welch's unequal-variance t-test "
        "(scipy.stats.ttest_ind, equal_var=False) otherwise; the Test column names it.",
        cols,
        label_columns=2 + len(extra),
        best={"none": "max", "CBAM": "max"},
    )
    for levels, sub in grid(frame, ["dataset", "backbone"] + extra, ctx):
        none, att = sub[sub["attention"] == "none"], sub[sub["attention"] == "cbam"]
        a, _ = by_seed(none, score(none, ctx.metric)[0])
        b, _ = by_seed(att, score(att, ctx.metric)[0])
        cmp = stats.compare(a, b)
        row = [Cell(dataset_label(levels[0]))] + [Cell(str(v)) for v in levels[1:]]
        row += [metric_cell(none, ctx), metric_cell(att, ctx), diff_cell(cmp), p_cell(cmp)]
        row.append(Cell(cmp.test) if cmp.test else Cell.missing(f"no test: {cmp.reason}"))
        table.add_row(row)
    return table


def _subject_table(runs, ctx, subject, baseline, number, title, refs, extra_cols):
    """Tables 3 and 4: rows = levels of `subject`, metric per data set, plus extra columns."""
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
    metric_cols = [f"{dataset_label(d)} {METRICS[ctx.metric]}" for d in datasets]
    cols += metric_cols + [f"{dataset_label(d)} p vs original" for d in datasets]
    cols += [name for name, _ in extra_cols(datasets)] + ["Reference"]
    pinned = ", ".join(f"{k}={v}" for k, v in baseline.items())
    table = Table(
        TABLES[number],
        title,
        f"{pinned}. {caption_stats(ctx)}. p vs original: {PAIRED_NOTE}",
        cols,
        label_columns=len(extra) + 1,
        best={c: "max" for c in metric_cols},
    )
    grouped = list(grid(frame, extra, ctx, full=False)) if extra else [((), frame)]
    for glevels, gframe in grouped:
        for (level,), sub in grid(gframe, [subject], ctx):
            row = [Cell(str(v)) for v in glevels] + [Cell(level)]
            row += [metric_cell(sub[sub["dataset"] == d], ctx) for d in datasets]
            row += [_vs_original(sub, gframe, subject, d, ctx) for d in datasets]
            row += [fn(sub, gframe) for _, fn in extra_cols(datasets)]
            row.append(
                Cell(refs.get(level, ""))
                if level in refs
                else Cell.missing(f"no reference recorded for {subject}={level}")
            )
            table.add_row(row)
    return table


PAIRED_NOTE = (
    "two-sided paired t-test by seed against the original row of the same data set "
    "(scipy.stats.ttest_rel; Welch's t-test when the seeds differ), the claims' test; "
    "p = 1 when the paired differences are all equal"
)


def _vs_original(sub, gframe, subject, dataset, ctx) -> Cell:
    """p of this row's seeds against `original`'s (the claims' paired t-test by seed)."""
    mine = sub[sub["dataset"] == dataset]
    if mine.empty:
        return Cell.missing(NO_RUNS)
    if (mine[subject] == "original").all():
        return Cell("ref")
    base = gframe[(gframe[subject] == "original") & (gframe["dataset"] == dataset)]
    if base.empty:
        return Cell.missing(f"no {subject}=original run to compare with")
    a, _ = by_seed(base, score(base, ctx.metric)[0])
    b, _ = by_seed(mine, score(mine, ctx.metric)[0])
    return p_cell(stats.compare(a, b))


def table3(runs: pd.DataFrame, ctx: Context) -> Table | None:
    """Fusion strategies: metric per data set, extra parameters vs `original`, reference."""

    def extra_params(sub, group):
        base = group[group["fusion"] == "original"]
        mine = constant_cell(sub, "model/params_total", str)
        ref = constant_cell(base, "model/params_total", str)
        if mine.n is None or math.isnan(mine.mean):
            return mine
        if ref.n is None or math.isnan(ref.mean):
            return Cell.missing("no fusion=original run to compare parameters with")
        d = mine.mean - ref.mean
        return Cell(f"{d:+,.0f}", d, n=mine.n)

    return _subject_table(
        runs,
        ctx,
        "fusion",
        {"attention": "cbam", "residual": "original"},
        3,
        "Table 3: Fusion strategies",
        references("fusion", runs),
        lambda datasets: [("Params vs original", extra_params)],
    )


def table4(runs: pd.DataFrame, ctx: Context) -> Table | None:
    """Residual strategies: metric and convergence epoch per data set."""
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
        "residual",
        {"attention": "cbam", "fusion": "original"},
        4,
        "Table 4: Residual strategies",
        references("residual", runs),
        lambda datasets: [(f"{dataset_label(d)} conv. epoch", conv(d)) for d in datasets],
    )
    if t is not None:
        t.caption += (
            f" Convergence epoch: the first epoch whose val/{ctx.metric} reaches "
            f"{frac:.0%} of the run's best, mean ± std over seeds."
        )
    return t


BUILDERS = {1: table1, 2: table2, 3: table3, 4: table4, 5: table5, 6: table6}


def tables_for(experiment: str) -> list[int] | None:
    """Which tables an experiment name asks for: tableN_* -> [N], paper -> all 1-6,
    anything else -> None (all tables whose data exist)."""
    import re

    m = re.match(r"table(\d)(?:_|$)", experiment)
    if m and int(m.group(1)) in BUILDERS:
        return [int(m.group(1))]
    if experiment == "paper":
        return sorted(BUILDERS)
    return None


def build_tables(runs: pd.DataFrame, ctx: Context, which: list[int] | None) -> dict:
    """{number: Table or None}; None where a table has no data in these runs."""
    numbers = which or sorted(BUILDERS)
    return {n: BUILDERS[n](runs, ctx) for n in numbers}


__all__ = [
    "DASH",
    "METRICS",
    "NO_RUNS",
    "SPLIT_NAMES",
    "TABLES",
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
    "summary_cell",
    "tables_for",
    "trained",
    "varying",
]
