"""Costliest jobs first: the longest-processing-time (LPT) order and the makespan arithmetic.

A grid runs on a pool of slots (GPUs x ``jobs_per_gpu`` of ``hydra/launcher=local_gpus``, a
SLURM array's ``array_parallelism``) and each slot takes the next job as soon as it frees:
list scheduling. Its makespan (the time until the last job ends) depends on the order: a
long job started last runs alone at the end. Graham's LPT rule (Graham 1969, "Bounds on
multiprocessing timing anomalies", SIAM J. Appl. Math. 17(2)) starts the longest jobs
first and is within 4/3 - 1/(3m) of the optimum on m slots.

The costs are plan mode's (glattn.sweep.plan): the estimated seconds when every job still
to run has one, else the compute in PFLOP (every job has it); a job already done costs 0
(it is skipped in seconds). Only the ratio of costs matters for the order. This module is
arithmetic on costs and slots; glattn.sweep.lpt applies it to a grid's jobs.
"""

from __future__ import annotations

import heapq
import logging
import os
from collections.abc import Sequence
from typing import Any

from omegaconf import ListConfig, OmegaConf

from glattn.sweep.units import fmt_pflop, fmt_seconds

log = logging.getLogger(__name__)


def lpt_order(costs: Sequence[float | None]) -> list[int]:
    """Indices of `costs` from the largest to the smallest; ties and unknown (None) costs
    keep their given order (unknown ones after every known one)."""
    known = [i for i, c in enumerate(costs) if c is not None]
    unknown = [i for i, c in enumerate(costs) if c is None]
    return sorted(known, key=lambda i: -float(costs[i])) + unknown


def makespan(costs: Sequence[float], slots: int, order: Sequence[int] | None = None) -> float:
    """The time until the last job ends when `slots` slots take the jobs in `order` (default:
    as given), each slot starting the next job the moment it frees (list scheduling)."""
    if slots < 1:
        raise ValueError(f"slots={slots}: expected at least 1")
    order = range(len(costs)) if order is None else order
    free_at = [0.0] * min(slots, max(len(costs), 1))  # a heap of slot finish times
    for i in order:
        start = heapq.heappop(free_at)
        heapq.heappush(free_at, start + float(costs[i]))
    return max(free_at)


def plan_costs(plans) -> tuple[list[float], str]:
    """(cost per job, unit) from glattn.sweep.plan.JobPlan rows: seconds when every job to
    run has an estimate, else PFLOP; done jobs and jobs whose config failed cost 0."""
    todo = [p for p in plans if p.done_run is None and p.error is None]
    use_time = bool(todo) and all(p.est_s is not None for p in todo)
    costs = []
    for p in plans:
        if p.done_run is not None or p.error is not None:
            costs.append(0.0)
        else:
            value = p.est_s if use_time else p.pflop
            costs.append(None if value is None else float(value))
    return costs, ("s" if use_time else "PFLOP")


def visible_gpus() -> list[str]:
    """GPU ids this process may use: CUDA_VISIBLE_DEVICES if set, else every CUDA device."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [g.strip() for g in env.split(",") if g.strip() and g.strip() != "-1"]
    try:
        import torch

        return [str(i) for i in range(torch.cuda.device_count())]
    except Exception:  # noqa: BLE001 - no torch/driver: no GPUs
        return []


def parse_gpus(value: Any) -> list[str] | None:
    """``hydra.launcher.gpus``: null (visible GPUs), [] (CPU), a list of ids or "0,1"."""
    if value is None:
        return None
    if isinstance(value, (ListConfig, list, tuple)):
        return [str(g) for g in value]
    if isinstance(value, (int, str)):
        return [g.strip() for g in str(value).split(",") if g.strip()]
    raise ValueError(
        f"hydra.launcher.gpus={value!r}: expected null (auto), [] (CPU), a list of ids or '0,1'"
    )


def local_slots(gpus: list[str] | None, jobs_per_gpu: int, n_jobs: int | None) -> list:
    """The local_gpus pool: one entry per job that may run at once, a GPU id (``gpus``; None:
    the visible ones) ``jobs_per_gpu`` times spread over the GPUs and capped by ``n_jobs``,
    or None for each of ``n_jobs`` CPU slots (default 1) when there is no GPU."""
    gpus = visible_gpus() if gpus is None else gpus
    if gpus:
        slots = [g for _ in range(jobs_per_gpu) for g in gpus]  # spread over GPUs
        return slots[:n_jobs] if n_jobs else slots
    return [None] * (n_jobs or 1)


def configured_slots(config) -> int:
    """Jobs that run at once under the configured launcher (``config.hydra.launcher``):
    local_gpus: GPUs x jobs_per_gpu (capped by n_jobs; auto counts 1 until the launcher
    decides), or n_jobs CPU jobs; SLURM: array_parallelism; any other launcher: 1."""
    launcher = OmegaConf.select(config, "hydra.launcher", default=None)
    if launcher is None:
        return 1
    target = str(launcher.get("_target_", ""))
    if target.endswith("LocalGpusLauncher"):
        per_gpu = launcher.get("jobs_per_gpu", 1)
        per_gpu = 1 if per_gpu == "auto" else int(per_gpu)
        gpus = parse_gpus(launcher.get("gpus"))
        return len(local_slots(gpus, per_gpu, launcher.get("n_jobs")))
    parallel = launcher.get("array_parallelism")
    return int(parallel) if parallel else 1


def format_makespan(costs: Sequence[float | None], unit: str, slots: int) -> str:
    """Plan mode's line: predicted makespan for `slots` slots, LPT order vs the given one
    (in PFLOP when not every job has a time estimate: slots taken as equally fast)."""
    if not costs or any(c is None for c in costs):
        return f"  makespan on {slots} slot(s): ? (not every job has a cost)"
    given, lpt = makespan(costs, slots), makespan(costs, slots, lpt_order(costs))
    total = sum(costs)
    ratio = f"{lpt / given:.2f}x the given order's" if given > 0 else "-"
    return (
        f"  makespan on {slots} slot(s), costliest first (LPT): {_fmt(lpt, unit)} vs "
        f"{_fmt(given, unit)} in the given order ({ratio}; all jobs in one slot: "
        f"{_fmt(total, unit)})"
    )


def _fmt(value: float, unit: str) -> str:
    return fmt_seconds(value) if unit == "s" else f"{fmt_pflop(value)} PFLOP"


def makespan_line(plans, config) -> str:
    """Plan mode's makespan line for `plans` (glattn.sweep.plan.JobPlan rows) on the slots
    of the configured launcher (`configured_slots`)."""
    costs, unit = plan_costs(plans)
    return format_makespan(costs, unit, configured_slots(config))
