"""Tables 5 (cross-data-set evaluation) and 6 (efficiency: each run's latency and memory
measurement, glattn.latency; a reused run's are those of the run that trained it).
"""

from __future__ import annotations

import math

import pandas as pd

from glattn import latency
from glattn.report import cells, frames, stats
from glattn.report.cells import NO_RUNS, Context, constant_cell, metric_cell, summary_cell
from glattn.report.frames import SPLIT_NAMES, dataset_label, metric, rank, trained, varying
from glattn.report.provenance import measured_by_source, reused
from glattn.report.table_format import Cell, Table


def table5(runs: pd.DataFrame, ctx: Context, decl) -> Table | None:
    """Cross-data-set: trained on HAM10000, holdout test vs ISIC 2018 official test."""
    evals, train = eval_runs(runs)
    used = train["run_id"].isin(evals["source_run_id"])
    sources = train[used | (train["dataset"] == "ham10000")]
    if evals.empty or sources.empty:
        return None
    targets = {("isic2018", "official_test")}
    targets |= set(evals[["eval_dataset", "eval_split"]].itertuples(index=False, name=None))
    targets = sorted(targets, key=lambda t: (rank("dataset", t[0]), str(t[1])))
    keys = ["dataset"] + varying(sources, exclude={"dataset"})
    cols = ["Trained on"] + [k.capitalize() for k in keys[1:]] + ["Holdout test"]
    for d, s in targets:
        target = f"{dataset_label(d)} {SPLIT_NAMES.get(s, s)}"
        cols += [target, f"Drop to {target}", f"p ({target})"]
    caption = (
        f"{cells.caption_stats(ctx)}. Holdout test: the training set's lesion-grouped holdout; "
        f"other columns: eval runs (task=eval, eval/{ctx.metric}) of the same checkpoints. "
        "Drop = holdout − target in percentage points, mean ± std over the paired runs; "
        "p: paired t-test (scipy.stats.ttest_rel) over those pairs."
    )
    table = Table(decl.experiment, decl.title, caption, cols, label_columns=len(keys))
    for levels, sub in ctx.grid(sources, keys, full=False):
        # both arms keyed by the source run's seed (its id without one), so that they pair exactly
        key = frames.seed_key(sub)
        key_of = dict(zip(sub["run_id"], key))
        hold = cells.score(sub, ctx.metric).set_axis(key).dropna().to_dict()
        row = [Cell(dataset_label(levels[0]))] + [Cell(str(v)) for v in levels[1:]]
        row.append(metric_cell(sub, ctx))
        for d, s in targets:
            ev = evals[(evals["eval_dataset"] == d) & (evals["eval_split"] == s)]
            ev = ev[ev["source_run_id"].isin(sub["run_id"])]
            ev_vals = metric(ev, f"eval/{ctx.metric}").set_axis(ev["source_run_id"].map(key_of))
            ev_vals = ev_vals.dropna().to_dict()
            miss = f"eval runs logged no eval/{ctx.metric}"
            if ev.empty:
                miss = f"no FINISHED task=eval run on {d}/{s} of these checkpoints"
            paired = {k: hold[k] - ev_vals[k] for k in hold.keys() & ev_vals.keys()}
            cmp = stats.compare({k: ev_vals[k] for k in paired}, {k: hold[k] for k in paired})
            row.append(summary_cell(ev_vals, missing=miss))
            row.append(summary_cell(paired, cells.points, missing="no paired holdout/target runs"))
            row.append(cells.p_cell(cmp))
        table.add_row(row)
    return table


def eval_runs(runs: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(task=eval runs with their training run's id, the latest per training run and target;
    the training runs)."""
    train, evals = trained(runs), runs[runs["task"] == "eval"].copy()
    evals["source_run_id"] = source_runs(evals, train)
    target = ["source_run_id", "eval_dataset", "eval_split"]
    return evals.sort_values("start_time").drop_duplicates(target, keep="last"), train


def source_runs(evals: pd.DataFrame, train: pd.DataFrame) -> pd.Series:
    """Each eval run's training run: its source_run_id tag, else the training run with the
    same model factors and seed (the latest one, on another data set than the eval's)."""
    model = ["backbone", "attention", "fusion", "residual", "loss", "seed"]
    out = evals["source_run_id"].where(evals["source_run_id"].fillna("").astype(bool), None)
    train = train.sort_values("start_time")
    for idx, ev in evals[out.isna()].iterrows():
        same = (train[model] == ev[model]).all(axis=1) & (train["dataset"] != ev["eval_dataset"])
        out[idx] = train.loc[same, "run_id"].iloc[-1] if same.any() else None
    return out


LATENCY, OLD_LATENCY = latency.LATENCY_KEY, latency.INFER_LATENCY_KEY  # old: during training
MEMORY = {latency.MEM_GPU_KEY: "GPU peak alloc. (MB)", latency.MEM_RSS_KEY: "CPU max RSS (MB)"}
OLD_MEMORY = latency.PEAK_MEM_KEY  # the training process's: no CPU/GPU label
#: what a run measured of its training process (a reused run's come from its source)
MEASURED = ("perf/train_img_s", OLD_MEMORY, *latency.KEYS)


def _latency_cell(sub: pd.DataFrame) -> Cell:
    """Median latency over seeds (each run: median of repeats), flagged when the spread is high."""
    key = LATENCY if metric(sub, LATENCY).notna().any() else OLD_LATENCY
    cell = cells.logged_cell(sub, key, "{:.2f}".format, f"runs did not log {LATENCY}")
    if cell.n is None:
        return cell
    iqr = (metric(sub, latency.LATENCY_IQR_KEY) / metric(sub, LATENCY)).max()
    seed_spread = cell.std / cell.mean if cell.n > 1 and cell.mean > 0 else 0.0
    notes = [cell.note] if cell.note else []
    if key == OLD_LATENCY:
        notes.append(f"{OLD_LATENCY}: timed during training, not a dedicated measurement")
    if max(seed_spread, 0.0 if math.isnan(iqr) else iqr) > latency.SPREAD_LIMIT:
        cell.text += " (!)"
        notes.append(
            f"spread above {latency.SPREAD_LIMIT:.0%} of the median (seeds' std or a run's "
            "interquartile range): the machine was busy; measure on an idle machine or a GPU"
        )
    cell.note = "; ".join(notes) or None
    return cell


def _costs(sub: pd.DataFrame) -> list[Cell]:
    """Parameters, GFLOPs and latency of one configuration's runs."""
    return [
        constant_cell(sub, "model/params_total", cells.millions),
        constant_cell(sub, "model/gflops", "{:.2f}".format),
        _latency_cell(sub),
    ]


def _overhead(mine: Cell, ref: Cell) -> Cell:
    """`mine` relative to the baseline's `ref`, in percent."""
    if math.isnan(mine.mean) or math.isnan(ref.mean) or ref.mean == 0:
        return Cell.missing("the metric is missing for this row or its baseline")
    rel = mine.mean / ref.mean - 1
    return Cell(f"{100 * rel:+.1f}%", rel)


def table6(runs: pd.DataFrame, ctx: Context, decl) -> Table | None:
    """Efficiency: params, FLOPs, throughput, latency, memory; overhead vs attention=none."""
    frame = trained(runs)
    if metric(frame, "model/gflops").isna().all():  # also when there are no runs
        return None
    frame = measured_by_source(frame, MEASURED, ctx.history)
    keys = ["backbone"] + varying(frame, exclude={"backbone", "dataset", "loss"})
    if "attention" not in keys:
        keys.append("attention")
    if frame["dataset"].nunique() > 1:
        keys.append("dataset")
    memory = [(k, name) for k, name in MEMORY.items() if metric(frame, k).notna().any()]
    memory = memory or [(OLD_MEMORY, "Peak mem (MB, unlabelled: old runs)")]
    batch = metric(frame, latency.LATENCY_BATCH_KEY).dropna().unique()
    setting = "latency perf/infer_latency_ms from the training epochs (older runs)"
    if len(batch):
        devices = frames.col(frame, f"tags.{latency.DEVICE_TAG}").dropna().unique()
        setting = (
            "latency: dedicated measurement (glattn.latency: warm-up, repeats, median per run), "
            f"batch {', '.join(f'{b:g}' for b in batch)}, device {', '.join(devices) or '?'}"
        )
    cols = [k.capitalize() for k in keys] + ["Params (M)", "GFLOPs", "Train img/s", "Latency (ms)"]
    cols += [name for _, name in memory]
    cols += ["Params overhead", "FLOPs overhead", "Latency overhead"]
    caption = (
        "Parameters and forward GFLOPs (batch 1, at the data set's image size); training "
        f"throughput perf/train_img_s (last epoch); {setting}; memory: CPU max RSS "
        "of the process, GPU peak allocated; mean ± std over seeds. Overheads are relative "
        "to the attention=none run of the same backbone (and data set). (!): spread above "
        f"{latency.SPREAD_LIMIT:.0%} of the median."
    )
    if n_reused := int(reused(frame).sum()):
        caption += f" {n_reused} reused run(s): throughput, latency and memory of the runs that "
        caption += "trained them (NOTES.md)."
    best = {"Params (M)": "min", "GFLOPs": "min", "Latency (ms)": "min", "Train img/s": "max"}
    table = Table(decl.experiment, decl.title, caption, cols, best=best, label_columns=len(keys))
    for levels, sub in ctx.grid(frame, keys, full=False):
        mine = _costs(sub)
        row = [Cell(str(v)) for v in levels] + mine[:2]
        row += [cells.logged_cell(sub, "perf/train_img_s", "{:.1f}".format, NO_RUNS), mine[2]]
        row += [cells.logged_cell(sub, key, "{:.0f}".format) for key, _ in memory]
        pin = {k: v for k, v in zip(keys, levels) if k in ("backbone", "dataset")}
        base = frames.select(frame[frame["attention"] == "none"], pin, pin.values())
        if base.empty:
            row += [Cell.missing("no attention=none baseline run for this backbone") for _ in mine]
        else:
            row += [_overhead(m, r) for m, r in zip(mine, _costs(base))]
        table.add_row(row)
    return table
