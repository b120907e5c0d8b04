"""The paper's Tables 1-6 from the FINISHED job runs of one experiment (see runs.load_runs).

Every metric cell is mean ± sample std (ddof=1) over seeds with n, from one run per seed.
Runs are grouped by their config-group tags (runs.FACTORS); a factor that is not the
table's subject is pinned to its baseline value when it varies (e.g. Table 3 uses
residual=original), and any factor still varying after that becomes an extra row key,
so runs of different configurations are never pooled.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import pandas as pd

from glattn.report import stats
from glattn.report.runs import FACTORS
from glattn.report.table_format import DASH, Cell, Table

METRICS = {
    "balanced_acc": "Balanced acc. (%)",
    "acc": "Accuracy (%)",
    "macro_f1": "Macro-F1 (%)",
    "auc": "AUC (%)",
}

ORDER = {
    "backbone": [
        "resnet18",
        "resnet34",
        "resnet50",
        "resnet101",
        "resnet152",
        "vgg11",
        "vgg13",
        "vgg16",
        "vgg19",
    ],
    "attention": ["none", "global_only", "cbam"],
    "fusion": [
        "original",
        "learnable_gate",
        "weighted_add",
        "channel_attn",
        "spatial_attn",
        "cross_attn",
    ],
    "residual": ["original", "learnable_gate", "progressive", "drop_path"],
    "loss": ["focal", "ce", "class_balanced"],
    "dataset": ["ham10000", "isic2018", "synthetic"],
}

DATASET_NAMES = {"ham10000": "HAM10000", "isic2018": "ISIC 2018", "synthetic": "Synthetic"}
SPLIT_NAMES = {
    "official_test": "official test",
    "official_val": "official val.",
    "holdout": "holdout",
}


def references(group: str, runs: pd.DataFrame) -> dict[str, str]:
    """Tables 3/4's reference column from the registries (glattn.models.references):
    built-ins and registered extensions alike; an extension's module is imported from its
    runs' `<group>._target_` param, so it must be importable here (PYTHONPATH) too."""
    from glattn.models import references as registered

    col = f"params.{group}._target_"
    targets = runs[col].dropna().unique().tolist() if col in runs else []
    return registered(group, targets)


TABLES = {
    1: "table1_backbones",
    2: "table2_cbam",
    3: "table3_fusion",
    4: "table4_residual",
    5: "table5_transfer",
    6: "table6_efficiency",
}
NO_RUNS = "no FINISHED run of this configuration in the experiment"


@dataclass
class Context:
    """What the table builders need besides the runs frame."""

    metric: str = "balanced_acc"
    #: {factor: [levels]} the experiment's sweep asked for (missing ones become dashes).
    expected: dict = field(default_factory=dict)
    #: history(run_ids, key) -> {run_id: {epoch: value}} (runs.metric_history bound to a URI).
    history: Callable | None = None
    convergence_fraction: float = 0.95

    def __post_init__(self):
        if self.metric not in METRICS:
            raise ValueError(f"metric {self.metric!r} not one of {sorted(METRICS)}")


# ---------------------------------------------------------------------------- helpers
def pct(value: float) -> str:
    return f"{100 * value:.2f}"


def summary_cell(
    values: dict,
    scale: Callable[[float], str] = pct,
    note: str | None = None,
    missing: str = NO_RUNS,
) -> Cell:
    """`{seed: value}` -> 'mean ± std (n=k)' (no ± for n=1), or a dash + footnote."""
    s = stats.summarize(values)
    if s.n == 0:
        return Cell.missing(missing)
    text = scale(s.mean) if s.n == 1 else f"{scale(s.mean)} ± {_scale_std(scale, s.std)}"
    return Cell(f"{text} (n={s.n})", s.mean, s.std, s.n, note=note)


def _scale_std(scale, std):
    # the std scales like the mean (same unit factor) but carries no sign
    return scale(std).lstrip("+")


def ordered(factor: str, levels) -> list:
    levels = list(dict.fromkeys(x for x in levels if x is not None))
    known = ORDER.get(factor, [])
    return [x for x in known if x in levels] + sorted(x for x in levels if x not in known)


def levels_of(frame: pd.DataFrame, factor: str, ctx: Context) -> list:
    """Levels present in the runs, plus those the experiment's sweep asked for."""
    present = list(frame[factor].dropna().unique()) if factor in frame else []
    return ordered(factor, present + list(ctx.expected.get(factor, [])))


def restrict(frame: pd.DataFrame, baseline: dict) -> pd.DataFrame:
    """Pin each factor in `baseline` to its value where the factor varies in `frame`."""
    for factor, value in baseline.items():
        if frame[factor].nunique(dropna=True) > 1 and (frame[factor] == value).any():
            frame = frame[frame[factor] == value]
    return frame


def varying(frame: pd.DataFrame, exclude=()) -> list[str]:
    return [f for f in FACTORS if f not in exclude and frame[f].nunique(dropna=True) > 1]


def score(frame: pd.DataFrame, metric: str) -> tuple[pd.Series, pd.Series]:
    """Per-run score: test/<m> (holdout test split), else best/val/<m>; and its source."""
    test = _metric(frame, f"test/{metric}")
    val = _metric(frame, f"best/val/{metric}")
    source = pd.Series(["test"] * len(frame), index=frame.index).where(test.notna(), "val")
    source = source.where(test.notna() | val.notna(), None)
    return test.fillna(val), source


VAL_NOTE = "includes best-epoch validation values (these runs logged no test/{m})"


def by_seed(frame: pd.DataFrame, values: pd.Series) -> tuple[dict, str | None]:
    """{seed: value} for a cell's runs; the latest run wins if a seed occurs twice."""
    out, dup = {}, 0
    for idx in frame.sort_values("start_time").index:
        seed = frame.at[idx, "seed"]
        key = seed if seed is not None else frame.at[idx, "run_id"]
        if key in out:
            dup += 1
        value = values.get(idx, math.nan)
        if value is not None and not (isinstance(value, float) and math.isnan(value)):
            out[key] = float(value)
    note = None
    if dup:
        note = (
            f"{dup} run(s) repeat a seed with a different configuration fingerprint; "
            "the latest run per seed is used"
        )
    return out, note


def metric_cell(frame: pd.DataFrame, ctx: Context) -> Cell:
    values, source = score(frame, ctx.metric)
    seeds, dup_note = by_seed(frame, values)
    notes = [dup_note] if dup_note else []
    if (source[values.notna()] == "val").any():
        notes.append(VAL_NOTE.format(m=ctx.metric))
    asked = ctx.expected.get("seed") or []
    if seeds and len(asked) > len(seeds):
        notes.append(f"fewer seeds than the {len(asked)} the experiment's sweep asks for")
    note = "; ".join(notes) or None
    missing = NO_RUNS if frame.empty else f"runs logged neither test/{ctx.metric} nor best/val"
    return summary_cell(seeds, note=note, missing=missing)


def _metric(frame: pd.DataFrame, key: str) -> pd.Series:
    col = f"metrics.{key}"
    if col in frame:
        return pd.to_numeric(frame[col], errors="coerce")
    return pd.Series([math.nan] * len(frame), index=frame.index, dtype=float)


def constant_cell(frame: pd.DataFrame, key: str, fmt: Callable[[float], str]) -> Cell:
    """A per-configuration constant (parameter count, FLOPs): the median over its runs."""
    vals = _metric(frame, key).dropna()
    if frame.empty:
        return Cell.missing(NO_RUNS)
    if vals.empty:
        return Cell.missing(f"runs did not log {key}")
    v = float(vals.median())
    return Cell(fmt(v), v, 0.0 if len(vals) > 1 else math.nan, len(vals))


def millions(v: float) -> str:
    return f"{v / 1e6:.2f}"


def p_cell(cmp: stats.Comparison) -> Cell:
    if math.isnan(cmp.p_value):
        return Cell.missing(f"no test: {cmp.reason}")
    text = f"{cmp.p_value:.3f}" if cmp.p_value >= 0.001 else f"{cmp.p_value:.1e}"
    return Cell(text, p_value=cmp.p_value, n=min(cmp.n_a, cmp.n_b))


def diff_cell(cmp: stats.Comparison) -> Cell:
    if math.isnan(cmp.diff):
        return Cell.missing(f"no difference: {cmp.reason}")
    return Cell(f"{100 * cmp.diff:+.2f}", cmp.diff, p_value=cmp.p_value)


def dataset_label(ds: str) -> str:
    return DATASET_NAMES.get(ds, ds)


def groups(frame: pd.DataFrame, keys: list[str], ctx: Context, full: bool = True):
    """Yield (levels tuple, sub-frame) over the grid of `keys` (expected x present levels
    when `full`, else only the combinations that occur)."""
    if not keys:
        yield (), frame
        return
    if full:
        import itertools

        grid = itertools.product(*(levels_of(frame, k, ctx) for k in keys))
    else:
        grid = sorted(
            {tuple(r) for r in frame[keys].itertuples(index=False)},
            key=lambda t: tuple(_rank(k, v) for k, v in zip(keys, t)),
        )
    for levels in grid:
        mask = pd.Series(True, index=frame.index)
        for k, v in zip(keys, levels):
            mask &= frame[k] == v
        yield tuple(levels), frame[mask]


def _rank(factor, value):
    order = ORDER.get(factor, [])
    return (order.index(value), "") if value in order else (len(order), str(value))


def caption_stats(ctx: Context) -> str:
    return (
        f"{METRICS[ctx.metric].replace(' (%)', '')} in %, mean ± sample std over seeds "
        f"(n = number of seeds), on the test split (test/{ctx.metric})"
    )


def trained(runs: pd.DataFrame) -> pd.DataFrame:
    return runs[runs["task"] == "train"]


def _extra_keys(frame, subject, baseline):
    """Factors still varying after pinning: extra row keys (only groups where the subject
    itself varies, i.e. that belong to this ablation, are kept by the caller)."""
    return varying(frame, exclude=set(subject) | {"dataset"} | set(baseline))


# ---------------------------------------------------------------------------- tables
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
    )
    for levels, sub in groups(frame, ["backbone"] + extra, ctx):
        row = [Cell(str(v)) for v in levels]
        row.append(constant_cell(sub, "model/params_total", millions))
        per_ds = [sub[sub["dataset"] == d] for d in datasets]
        row += [metric_cell(s, ctx) for s in per_ds]
        for s in per_ds:
            secs, note = by_seed(s, _metric(s, "time/train_total_s"))
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
    )
    for levels, sub in groups(frame, ["dataset", "backbone"] + extra, ctx):
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
        for _, sub in groups(frame, extra, ctx, full=False)
        if asked or sub[subject].nunique() > 1
    ]
    frame = pd.concat(keep) if keep else frame.iloc[:0]
    if frame.empty:
        return None
    datasets = levels_of(frame, "dataset", ctx)
    cols = [k.capitalize() for k in extra] + [subject.capitalize()]
    cols += [f"{dataset_label(d)} {METRICS[ctx.metric]}" for d in datasets]
    cols += [name for name, _ in extra_cols(datasets)] + ["Reference"]
    pinned = ", ".join(f"{k}={v}" for k, v in baseline.items())
    table = Table(
        TABLES[number],
        title,
        f"{pinned}. {caption_stats(ctx)}.",
        cols,
        label_columns=len(extra) + 1,
    )
    grouped = list(groups(frame, extra, ctx, full=False)) if extra else [((), frame)]
    for glevels, gframe in grouped:
        for (level,), sub in groups(gframe, [subject], ctx):
            row = [Cell(str(v)) for v in glevels] + [Cell(level)]
            row += [metric_cell(sub[sub["dataset"] == d], ctx) for d in datasets]
            row += [fn(sub, gframe) for _, fn in extra_cols(datasets)]
            row.append(
                Cell(refs.get(level, ""))
                if level in refs
                else Cell.missing(f"no reference recorded for {subject}={level}")
            )
            table.add_row(row)
    return table


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


def table5(runs: pd.DataFrame, ctx: Context) -> Table | None:
    """Cross-data-set: trained on HAM10000, holdout test vs ISIC 2018 official test."""
    evals = runs[runs["task"] == "eval"].copy()
    train = trained(runs)
    evals["source_run_id"] = source_runs(evals, train)
    used = train["run_id"].isin(evals["source_run_id"])
    sources = train[used | (train["dataset"] == "ham10000")]
    if evals.empty or sources.empty:
        return None
    targets = {("isic2018", "official_test")} | {
        (d, s) for d, s in evals[["eval_dataset", "eval_split"]].itertuples(index=False)
    }
    targets = sorted(targets, key=lambda t: (_rank("dataset", t[0]), str(t[1])))
    keys = ["dataset"] + varying(sources, exclude={"dataset"})
    cols = ["Trained on"] + [k.capitalize() for k in keys[1:]] + ["Holdout test"]
    for d, s in targets:
        target = f"{dataset_label(d)} {SPLIT_NAMES.get(s, s)}"
        cols += [target, f"Drop to {target}", f"p ({target})"]
    table = Table(
        TABLES[5],
        "Table 5: Cross-data-set evaluation",
        f"{caption_stats(ctx)}. Holdout test: the training set's lesion-grouped holdout; "
        f"other columns: eval runs (task=eval, eval/{ctx.metric}) of the same checkpoints. "
        "Drop = holdout − target in percentage points, mean ± std over the paired runs; "
        "p: paired t-test (scipy.stats.ttest_rel) over those pairs.",
        cols,
        label_columns=len(keys),
    )
    for levels, sub in groups(sources, keys, ctx, full=False):
        hold_vals = score(sub, ctx.metric)[0]
        row = [Cell(dataset_label(levels[0]))] + [Cell(str(v)) for v in levels[1:]]
        row.append(metric_cell(sub, ctx))
        for d, s in targets:
            ev = evals[
                (evals["eval_dataset"] == d)
                & (evals["eval_split"] == s)
                & evals["source_run_id"].isin(sub["run_id"])
            ]
            ev = ev.sort_values("start_time").drop_duplicates("source_run_id", keep="last")
            # key both arms by the source run (its seed) so that they pair exactly
            src = sub.set_index("run_id")
            ev_vals = {
                src.at[r, "seed"] if src.at[r, "seed"] is not None else r: v
                for r, v in zip(ev["source_run_id"], _metric(ev, f"eval/{ctx.metric}"))
                if not math.isnan(v)
            }
            hold = {
                src.at[r, "seed"] if src.at[r, "seed"] is not None else r: v
                for r, v in zip(sub["run_id"], hold_vals)
                if not math.isnan(v)
            }
            miss = (
                f"no FINISHED task=eval run on {d}/{s} of these checkpoints"
                if ev.empty
                else f"eval runs logged no eval/{ctx.metric}"
            )
            row.append(summary_cell(ev_vals, missing=miss))
            paired = {k: hold[k] - ev_vals[k] for k in hold.keys() & ev_vals.keys()}
            row.append(
                summary_cell(
                    paired, lambda v: f"{100 * v:+.2f}", missing="no paired holdout/target runs"
                )
            )
            cmp = stats.compare({k: ev_vals[k] for k in paired}, {k: hold[k] for k in paired})
            row.append(p_cell(cmp))
        table.add_row(row)
    return table


def source_runs(evals: pd.DataFrame, train: pd.DataFrame) -> pd.Series:
    """Each eval run's training run: its source_run_id tag, else the training run with the
    same model factors and seed (the latest one, on another data set than the eval's)."""
    model = ["backbone", "attention", "fusion", "residual", "loss", "seed"]
    out = evals["source_run_id"].where(evals["source_run_id"].fillna("").astype(bool), None)
    for idx in evals.index[out.isna()]:
        ev = evals.loc[idx]
        cand = train[
            (train[model] == ev[model]).all(axis=1) & (train["dataset"] != ev["eval_dataset"])
        ]
        if not cand.empty:
            out[idx] = cand.sort_values("start_time").iloc[-1]["run_id"]
    return out


def table6(runs: pd.DataFrame, ctx: Context) -> Table | None:
    """Efficiency: params, FLOPs, throughput, latency, memory; overhead vs attention=none."""
    frame = trained(runs)
    if frame.empty or _metric(frame, "model/gflops").isna().all():
        return None
    keys = ["backbone"] + varying(frame, exclude={"backbone", "dataset", "loss"})
    if "attention" not in keys:
        keys.append("attention")
    if frame["dataset"].nunique() > 1:
        keys.append("dataset")
    cols = [k.capitalize() for k in keys]
    cols += [
        "Params (M)",
        "GFLOPs",
        "Train img/s",
        "Latency (ms)",
        "Peak mem (MB)",
        "Params overhead",
        "FLOPs overhead",
        "Latency overhead",
    ]
    table = Table(
        TABLES[6],
        "Table 6: Efficiency",
        "Parameters and forward GFLOPs (batch 1, at the data set's image size); training "
        "throughput perf/train_img_s (last epoch), inference latency perf/infer_latency_ms "
        "and peak memory perf/peak_mem_mb, mean ± std over seeds. Overheads are relative to "
        "the attention=none run of the same backbone (and data set).",
        cols,
        label_columns=len(keys),
    )
    for levels, sub in groups(frame, keys, ctx, full=False):
        row = [Cell(str(v)) for v in levels]
        params = constant_cell(sub, "model/params_total", millions)
        flops = constant_cell(sub, "model/gflops", lambda v: f"{v:.2f}")
        row += [params, flops]
        for key, fmt in (
            ("perf/train_img_s", "{:.1f}"),
            ("perf/infer_latency_ms", "{:.2f}"),
            ("perf/peak_mem_mb", "{:.0f}"),
        ):
            vals, note = by_seed(sub, _metric(sub, key))
            row.append(summary_cell(vals, fmt.format, note, f"runs did not log {key}"))
        base = frame[frame["attention"] == "none"]
        for k, v in zip(keys, levels):
            if k in ("backbone", "dataset"):
                base = base[base[k] == v]
        base_cells = [
            constant_cell(base, "model/params_total", str),
            constant_cell(base, "model/gflops", str),
        ]
        lat, _ = by_seed(base, _metric(base, "perf/infer_latency_ms"))
        base_lat = stats.summarize(lat)
        mine_lat = row[len(keys) + 3]
        for mine, ref in zip(
            [params, flops, mine_lat], base_cells + [Cell("", base_lat.mean, n=base_lat.n)]
        ):
            if base.empty:
                row.append(Cell.missing("no attention=none baseline run for this backbone"))
            elif math.isnan(mine.mean) or math.isnan(ref.mean) or ref.mean == 0:
                row.append(Cell.missing("the metric is missing for this row or its baseline"))
            else:
                rel = mine.mean / ref.mean - 1
                row.append(Cell(f"{100 * rel:+.1f}%", rel))
        table.add_row(row)
    return table


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


__all__ = ["Context", "build_tables", "tables_for", "TABLES", "METRICS", "DASH"]
