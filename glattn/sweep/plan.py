"""Plan mode: ``python run.py -m experiment=table3_fusion sweep.plan=true``.

Prints the grid without running it: the number of jobs, each job's overrides, whether it
is already done (a FINISHED run with the job's config fingerprint in the experiment, the
same test the job itself makes before training: glattn.tracking.find_finished_run) and an
estimated cost. Creates nothing: no database, no experiment, no run.

Cost heuristic (documented in docs/sweeps.md; images and compute: glattn.sweep.cost, the one
cost model, shared with glattn.sweep.estimate): for each job still to run, the median
``time/epoch_s`` of FINISHED job runs in the tracking store with the same backbone,
dataset and task, times the job's ``trainer.max_epochs`` (an upper bound: early stopping
may end it sooner); for a reference run without that metric, its wall time. Jobs without
a reference get no time, but every job gets its compute: forward FLOPs of its model (built
on the meta device, counted with torch.utils.flop_counter) x 3 for a training step x
training images x max_epochs (task=eval: forward FLOPs x its evaluation images), so a fresh
store still shows what a grid costs relative to its parts.

Disk: a finished run is expected to keep about 1.2 x its fp32 weights + 5 MB (one copy of
the best weights plus logs and figures), from the parameter
count of the same meta-device model; an evaluation run keeps no weights (5 MB).

A job whose config cannot be composed or resolved is an error: it is listed with its
message, counted in the header, and the plan exits with status 1 (after printing).
With ``$GLATTN_PLAN_SUMMARY`` set to a file, the plan appends one JSON line of totals to it
(the paper driver sums the stages with it).
"""

from __future__ import annotations

import json
import os
import statistics
from collections import defaultdict
from dataclasses import dataclass

from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import filter_overrides
from omegaconf import OmegaConf, open_dict

from glattn.groups import MODEL_GROUPS
from glattn.sweep import cost
from glattn.sweep.schedule import makespan_line  # costliest first vs the given order
from glattn.sweep.units import fmt_bytes as _fmt_bytes
from glattn.sweep.units import fmt_pflop as _fmt_pflop
from glattn.sweep.units import fmt_seconds as _fmt_s


@dataclass
class JobPlan:
    num: int
    overrides: list[str]
    fingerprint: str | None = None
    done_run: str | None = None
    est_s: float | None = None
    key: tuple = ()
    error: str | None = None
    max_epochs: int | None = None
    pflop: float | None = None
    disk_bytes: float | None = None
    batch_size: int | None = None  # trainer.batch_size (jobs_per_gpu=auto's probe target)


def _job_config(sweeper, overrides, num):
    cfg = sweeper.hydra_context.config_loader.load_sweep_config(sweeper.config, list(overrides))
    with open_dict(cfg.hydra.job):
        cfg.hydra.job.num = num
        cfg.hydra.job.id = str(num)
    return cfg


def _reference_key(cfg, choices) -> tuple:
    return (choices.get("backbone"), choices.get("dataset"), str(cfg.get("task", "train")))


def build_plan(sweeper, jobs: list[list[str]]) -> tuple[list[JobPlan], dict]:
    from glattn.config import config_fingerprint
    from glattn.schema import check_keys
    from glattn.sweep import store

    rerun = bool(OmegaConf.select(sweeper.config, "sweep.rerun", default=False))
    tracked = store.tracking_enabled(sweeper.config)
    client = store.client_for(sweeper.config, create=False) if tracked else None
    plans = []
    flops_cache: dict[str, float] = {}
    previous = HydraConfig.instance().cfg
    try:
        for num, overrides in enumerate(jobs):
            plan = JobPlan(num, list(filter_overrides(overrides)))
            try:
                cfg = _job_config(sweeper, overrides, num)
                HydraConfig.instance().set_config(cfg)  # resolvers read the job's hydra node
                task_cfg = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])
                check_keys(task_cfg)  # e.g. +trainer.epochs=3: an error, not a silent no-op
                plan.fingerprint = config_fingerprint(task_cfg)
                plan.key = _reference_key(task_cfg, dict(cfg.hydra.runtime.choices))
                plan.max_epochs = OmegaConf.select(task_cfg, "trainer.max_epochs", default=None)
                plan.batch_size = OmegaConf.select(task_cfg, "trainer.batch_size", default=None)
                plan.pflop, plan.disk_bytes = _compute_cost(task_cfg, flops_cache)
                if client is not None and not rerun:
                    from glattn.job.spec import route_debug
                    from glattn.tracking import find_finished_run

                    route_debug(task_cfg)  # a debug preset's runs are in <experiment>-debug
                    run = find_finished_run(
                        task_cfg.tracking, plan.fingerprint, str(task_cfg.task)
                    )
                    plan.done_run = run.info.run_id if run is not None else None
            except Exception as e:  # noqa: BLE001 - one bad job is shown, not fatal to the plan
                plan.error = f"{type(e).__name__}: {e}"
            plans.append(plan)
    finally:
        HydraConfig.instance().cfg = previous
    refs = _references(client) if client is not None else {}
    for plan in plans:
        if plan.done_run is None and plan.error is None:
            plan.est_s = _estimate(refs.get(plan.key), plan.max_epochs)
    return plans, {"rerun": rerun, "tracked": tracked, "store_exists": client is not None}


#: Expected bytes of a finished run : 1.2 x fp32 weights + 5 MB.
WEIGHTS_FACTOR = 1.2
RUN_OVERHEAD_BYTES = 5e6


def run_disk_bytes(num_params: int | None, task: str = "train") -> float | None:
    """Expected bytes on disk of one finished run (see the module docstring)."""
    if task == "eval":
        return RUN_OVERHEAD_BYTES
    if num_params is None:
        return None
    return WEIGHTS_FACTOR * 4.0 * num_params + RUN_OVERHEAD_BYTES


def _compute_cost(cfg, cache: dict[str, tuple]) -> tuple[float | None, float | None]:
    """(job compute in PFLOP, expected disk bytes), see the module docstring; None where
    it cannot be told."""
    import torch

    from glattn.models import build_model, count_flops

    d = cfg.dataset
    task = str(cfg.get("task", "train"))
    model_cfg = OmegaConf.masked_copy(cfg, [*MODEL_GROUPS, "dataset", "paths"])
    key = OmegaConf.to_yaml(model_cfg, resolve=True)
    if key not in cache:
        with torch.device("meta"):  # shapes only: no memory, no initialisation cost
            model = build_model(model_cfg)
            flops = float(count_flops(model, int(d.image_size)))
            cache[key] = (flops, sum(p.numel() for p in model.parameters()))
    flops, num_params = cache[key]
    disk = run_disk_bytes(num_params, task)
    return cost.job_pflop(flops, d, task, int(cfg.trainer.max_epochs)), disk


def _references(client) -> dict[tuple, list[tuple[float | None, float | None]]]:
    from glattn.sweep import store

    refs: dict[tuple, list] = defaultdict(list)
    for run in store.finished_runs(client):
        tags, metrics = run.data.tags, run.data.metrics
        key = (tags.get("backbone"), tags.get("dataset"), tags.get("task", "train"))
        wall = None
        if run.info.end_time and run.info.start_time:
            wall = (run.info.end_time - run.info.start_time) / 1000.0
        refs[key].append((metrics.get("time/epoch_s"), wall))
    return refs


def _estimate(refs, max_epochs) -> float | None:
    if not refs:
        return None
    per_epoch = [e for e, _ in refs if e is not None]
    if per_epoch and max_epochs:
        return statistics.median(per_epoch) * float(max_epochs)
    walls = [w for _, w in refs if w is not None]
    return statistics.median(walls) if walls else None


def totals(plans: list[JobPlan], name: str) -> dict:
    """The plan's totals (one line of $GLATTN_PLAN_SUMMARY): jobs, done, to run, errors,
    PFLOP and disk bytes of the jobs to run, disk bytes of the whole grid."""
    todo = [p for p in plans if p.done_run is None and p.error is None]
    return {
        "name": name,
        "jobs": len(plans),
        "done": sum(p.done_run is not None for p in plans),
        "todo": len(todo),
        "errors": sum(p.error is not None for p in plans),
        "pflop": sum(p.pflop for p in todo if p.pflop is not None),
        "disk_bytes": sum(p.disk_bytes for p in todo if p.disk_bytes is not None),
        "grid_disk_bytes": sum(p.disk_bytes for p in plans if p.disk_bytes is not None),
    }


def format_plan(plans: list[JobPlan], info: dict, name: str) -> str:
    todo = [p for p in plans if p.done_run is None and p.error is None]
    done = [p for p in plans if p.done_run is not None]
    bad = [p for p in plans if p.error is not None]
    lines = [
        f"[glattn plan] {name}: {len(plans)} jobs: {len(done)} done, {len(todo)} to run"
        + (f", {len(bad)} with errors" if bad else "")
        + (" (sweep.rerun=true: nothing is skipped)" if info["rerun"] else "")
    ]
    if not info["tracked"]:
        lines.append("  tracking disabled: done-ness and costs are unknown")
    elif not info["store_exists"]:
        lines.append("  tracking store does not exist yet: nothing is done")
    # Overrides every job shares (the command line's) are shown once; each row shows its own.
    common = set.intersection(*(set(p.overrides) for p in plans)) if len(plans) > 1 else set()
    if common:
        shared = [o for o in plans[0].overrides if o in common]
        lines.append(f"  every job: {' '.join(shared)}")
    lines.append(
        f"  {'#':>3}  {'state':<6} {'est.':>6} {'PFLOP':>8} {'disk':>8}  {'fingerprint':<12}"
        "  overrides"
    )
    for p in plans:
        state = "done" if p.done_run else ("error" if p.error else "todo")
        est = "-" if p.done_run else _fmt_s(p.est_s)
        fp = p.fingerprint or "?"
        own = " ".join(o for o in p.overrides if o not in common)
        line = (
            f"  {p.num:>3}  {state:<6} {est:>6} {_fmt_pflop(p.pflop):>8} "
            f"{_fmt_bytes(p.disk_bytes):>8}  {fp:<12}  {own}"
        )
        if p.done_run:
            line += f"  (run {p.done_run})"
        if p.error:
            line += f"\n        error: {p.error}"
        lines.append(line)
    known = [p.est_s for p in todo if p.est_s is not None]
    lines.append(
        f"  estimated cost: {_fmt_s(sum(known)) if known else '?'} of job time for "
        f"{len(known)} of {len(todo)} jobs to run (median time/epoch_s x trainer.max_epochs of "
        f"FINISHED runs with the same backbone, dataset and task); "
        f"{len(todo) - len(known)} without a reference"
    )
    flops = [p.pflop for p in todo if p.pflop is not None]
    if flops:
        lines.append(
            f"  compute: {_fmt_pflop(sum(flops))} PFLOP for {len(flops)} of {len(todo)} jobs "
            "to run (3 x forward FLOPs x training images x trainer.max_epochs; an upper bound)"
        )
    sums = totals(plans, name)
    lines.append(
        f"  disk: {_fmt_bytes(sums['disk_bytes'])} for the {len(todo)} jobs to run, "
        f"{_fmt_bytes(sums['grid_disk_bytes'])} for the whole grid (a finished run keeps "
        "~1.2 x its fp32 weights + 5 MB; an eval run 5 MB)"
    )
    if bad:
        lines.append(
            f"  {len(bad)} job(s) with errors (listed above): fix them before running the sweep"
        )
    return "\n".join(lines)


def _packing_line(plans: list[JobPlan], cfg) -> str | None:
    """jobs_per_gpu and the predicted wall time on the local_gpus launcher's GPUs
    (glattn.sweep.packing.plan_line); None on a CPU or another launcher."""
    from glattn.sweep import packing, store

    client = store.client_for(cfg, create=False) if store.tracking_enabled(cfg) else None
    return packing.plan_line(plans, cfg, client)


def print_plan(sweeper, jobs: list[list[str]]) -> list:
    plans, info = build_plan(sweeper, jobs)
    cfg = sweeper.config
    sweep_name = str(OmegaConf.select(cfg, "tracking.experiment", default="sweep"))
    print(format_plan(plans, info, sweep_name), flush=True)
    print(makespan_line(plans, cfg), flush=True)
    packed = _packing_line(plans, cfg)
    if packed:
        print(packed, flush=True)
    summary = os.environ.get("GLATTN_PLAN_SUMMARY")
    if summary:
        with open(summary, "a") as f:
            f.write(json.dumps(totals(plans, sweep_name)) + "\n")
    if any(p.error is not None for p in plans):
        raise SystemExit(1)
    return []
