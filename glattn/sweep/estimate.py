"""Expected compute of the paper's sweeps: measured training throughput x the grid.

`glattn estimate MEASURED` takes each (backbone, attention)'s perf/train_img_s (mean over
epochs 2..N; the first includes warm-up) from the FINISHED train runs of experiment MEASURED
and costs every job of each experiments/*.yaml grid with glattn.sweep.cost:

    hours = sum over jobs of  max_epochs * n_train(dataset) / img_s(backbone, attention)

an upper bound (early stopping, validation and start-up not counted), valid for the image size
and device the printout names. On ``--gpus G --jobs-per-gpu K|auto`` (glattn.sweep.packing) K
jobs share a GPU at ``--speedup`` x one job's throughput, the G x K slots take the jobs
costliest first; ``auto`` is the launcher's rule for ``--gpu-memory-gib``, ``--cpu-cores`` and
the measured runs' perf/peak_mem_mb.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path

import pandas as pd
from omegaconf import OmegaConf

from glattn.latency import PEAK_MEM_KEY
from glattn.paths import EXPERIMENTS_DIR, config_dir
from glattn.report import runs
from glattn.sweep import cost, expand, packing
from glattn.tracking import queries, uris


def _dataset(name: str, conf: Path | None = None) -> dict:
    """Option `name` of the dataset group, as glattn.sweep.cost reads it (no file: its name)."""
    path = (conf or config_dir()) / "dataset" / f"{name}.yaml"
    node = OmegaConf.to_container(OmegaConf.load(path)) if path.is_file() else {}
    return {**node, "name": name}


def train_images(dataset: str, conf: Path | None = None) -> float:
    """Training images of one epoch of option `dataset` (glattn.sweep.cost)."""
    return cost.train_images(_dataset(dataset, conf)) or 0.0


def _choices(node) -> dict:
    """{config group: option} of a config's defaults list."""
    items = OmegaConf.to_container(node).get("defaults") or []
    return {
        key.split(" ")[-1].lstrip("/"): value
        for item in items
        if isinstance(item, dict)
        for key, value in item.items()
    }


def job_grid(path: Path, conf: Path | None = None) -> tuple[list[dict], int]:
    """(jobs as {factor: level}, max_epochs) of one experiment file; `conf`: the config
    folder (default: glattn.paths.config_dir, so GLATTN_CONFIG_DIR counts)."""
    conf, node = conf or config_dir(), OmegaConf.load(path)
    base = {**_choices(OmegaConf.load(conf / "config.yaml")), **_choices(node)}
    params = OmegaConf.select(node, "hydra.sweeper.params", default=None)
    params = OmegaConf.to_container(params) if params is not None else {}
    epochs = OmegaConf.select(node, "trainer.max_epochs", default=None)
    if epochs is None:
        epochs = OmegaConf.load(conf / "trainer" / "default.yaml").max_epochs
    grid = expand.jobs(expand.arguments(params))
    jobs = [{**base, **{k.lstrip("+~"): v for k, v in (o.split("=", 1) for o in j)}} for j in grid]
    return jobs, int(epochs)


def throughput(frame: pd.DataFrame, history) -> pd.DataFrame:
    """Mean perf/train_img_s of each train run over its epochs 2..N (the first includes
    warm-up; a one-epoch run's only value), with its backbone, attention, image size, device."""
    train = frame[frame["task"] == "train"]
    hist = history(list(train["run_id"]), "perf/train_img_s")

    def after_warmup(run_id) -> float:
        h = pd.Series(hist.get(run_id, {}), dtype=float).sort_index()
        return (h[h.index > 1] if (h.index > 1).any() else h).mean()

    names = {"params.dataset.image_size": "image_size", "params.trainer.device": "device"}
    out = train.rename(columns=names).assign(img_s=train["run_id"].map(after_warmup))
    out = out.reindex(columns=["backbone", "attention", "img_s", "image_size", "device"])
    return out.dropna(subset=["img_s"]).reset_index(drop=True)


def estimate(
    measured: pd.DataFrame,
    experiments: list[Path],
    gpus: int = 1,
    jobs_per_gpu: int = 1,
    gain: float = 1.0,
) -> pd.DataFrame:
    """Hours per experiment file: `hours_upper_bound` (every job alone, one after another)
    and `wall_hours` on `gpus` GPUs with `jobs_per_gpu` sharing each at aggregate speedup
    `gain` (packing.packed_wall_s); `missing` counts jobs with no measured throughput."""
    by_pair = measured.groupby(["backbone", "attention"])["img_s"].mean().to_dict()
    by_backbone = measured.groupby("backbone")["img_s"].mean().to_dict()
    out = []
    for path in experiments:
        jobs, epochs = job_grid(path)
        seconds = []
        for job in jobs:
            rate = by_pair.get((job.get("backbone"), job.get("attention")))
            rate = rate or by_backbone.get(job.get("backbone"))
            seconds.append(cost.train_seconds(_dataset(str(job.get("dataset"))), epochs, rate))
        known = [s for s in seconds if s is not None]
        wall = packing.packed_wall_s(known, gpus, jobs_per_gpu, gain) if known else math.nan
        out.append(
            {
                "experiment": path.stem,
                "jobs": len(jobs),
                "max_epochs": epochs,
                "hours_upper_bound": sum(known) / 3600 if known else math.nan,
                "wall_hours": wall / 3600,
                "jobs_without_measurement": len(jobs) - len(known),
            }
        )
    return pd.DataFrame(out)


def jobs_per_gpu_for(args, frame: pd.DataFrame) -> packing.Decision:
    """`--jobs-per-gpu`: a number as given, or ``auto``: the launcher's rule for
    `--gpu-memory-gib` and `--cpu-cores` with the measured runs' largest perf/peak_mem_mb."""
    if str(args.jobs_per_gpu) != "auto":
        k = int(args.jobs_per_gpu)
        if k < 1:
            raise ValueError(f"--jobs-per-gpu={k}: expected an integer >= 1 or auto")
        return packing.Decision(k, "as given")
    column = f"metrics.{PEAK_MEM_KEY}"
    peaks = pd.to_numeric(frame[column], errors="coerce") if column in frame else pd.Series([])
    peak = peaks.max() * 2**20 * packing.RESERVED_FACTOR if peaks.notna().any() else None
    memory = packing.GpuMemory(args.gpu_memory_gib * 2**30, args.gpu_memory_gib * 2**30)
    source = f"the measured runs' {PEAK_MEM_KEY}"
    return packing.decide(memory, peak, args.cpu_cores, args.gpus, source)


def configure(p: argparse.ArgumentParser) -> None:
    """`glattn estimate`'s arguments."""
    p.description = __doc__
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.add_argument("measured", help="experiment whose runs measured perf/train_img_s")
    p.add_argument("--tracking-uri", default=None)
    p.add_argument("--experiments-dir", type=Path, default=EXPERIMENTS_DIR)
    p.add_argument("--gpus", type=int, default=1, help="GPUs the sweeps run on (default 1)")
    p.add_argument("--jobs-per-gpu", default="1", help="jobs sharing a GPU: N or auto")
    p.add_argument("--gpu-memory-gib", type=float, default=80.0, help="for auto (default 80)")
    p.add_argument("--cpu-cores", type=int, default=os.cpu_count() or 1, help="for auto")
    p.add_argument(
        "--speedup", type=float, default=None, help="aggregate of K jobs / one job (measured)"
    )
    p.set_defaults(run=run)


def sweep_files(folder: Path) -> list[Path]:
    """The experiment files of `folder` that declare a grid (hydra.sweeper.params)."""
    out = []
    for path in sorted(Path(folder).glob("*.yaml")):
        try:
            node = OmegaConf.load(path)
        except Exception:  # noqa: BLE001 - not an experiment file
            continue
        if OmegaConf.select(node, "hydra.sweeper.params", default=None) is not None:
            out.append(path)
    return out


def run(args: argparse.Namespace) -> int:
    uri = args.tracking_uri or uris.default_tracking_uri()
    try:
        frame = runs.load_runs(uri, args.measured)
        measured = throughput(
            frame, lambda ids, k: queries.metric_history(runs.client_for(uri), ids, k)
        )
        if measured.empty:
            raise ValueError(f"no run of {args.measured!r} logged perf/train_img_s")
        decision = jobs_per_gpu_for(args, frame)
        k = decision.jobs_per_gpu
        gain = args.speedup or packing.speedup(k)
        table = estimate(measured, sweep_files(args.experiments_dir), args.gpus, k, gain)
    except (runs.ReportError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    by_source = measured.groupby(["backbone", "attention", "image_size", "device"])["img_s"]
    print("measured training throughput (img/s, mean over epochs 2..N):")
    print(by_source.agg(["mean", "count"]).to_string())
    print("\nexpected training time per sweep (upper bound: every job runs max_epochs):")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.1f}"))
    missing = int(table["jobs_without_measurement"].sum())
    note = f" ({missing} jobs had no measured backbone and are not counted)" if missing else ""
    print(f"total: {table['hours_upper_bound'].sum():.1f} h{note}")
    print(
        "(fusion/residual variants are costed at their (backbone, attention) throughput; "
        "an attention level not measured falls back to the backbone's mean)"
    )
    print(
        f"\non {args.gpus} GPU(s), {k} job(s) per GPU ({decision.reason}); aggregate "
        f"throughput of {k} job(s) {gain:.2f}x one job ("
        + ("--speedup" if args.speedup else "glattn.sweep.packing.MEASURED_SPEEDUP")
        + f"): {table['wall_hours'].sum():.1f} h wall for every sweep, one after another "
        "(each sweep's jobs costliest first; early stopping not counted)"
    )
    return 0
