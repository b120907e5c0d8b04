"""Costliest jobs first: the longest-processing-time (LPT) order and the makespan arithmetic.

A grid runs on a pool of slots (GPUs x ``jobs_per_gpu`` of ``hydra/launcher=local_gpus``, a
SLURM array's ``array_parallelism``) and each slot takes the next job as soon as it frees:
list scheduling. Its makespan (the time until the last job ends) depends on the order: a
long job started last runs alone at the end. Graham's LPT rule (Graham 1969, "Bounds on
multiprocessing timing anomalies", SIAM J. Appl. Math. 17(2)) starts the longest jobs
first and is within 4/3 - 1/(3m) of the optimum on m slots.

The costs are plan mode's (glattn.sweep.plan): the estimated seconds when every job still
to run has one, else the compute in PFLOP (every job has it); a job already done costs 0
(it is skipped in seconds). Only the ratio of costs matters for the order.
"""

from __future__ import annotations

import heapq
import logging
from collections.abc import Sequence

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


def configured_slots(config) -> int:
    """Jobs that run at once under the configured launcher (``config.hydra.launcher``):
    local_gpus: GPUs x jobs_per_gpu (capped by n_jobs), or n_jobs CPU jobs; SLURM:
    array_parallelism; any other launcher: 1."""
    from omegaconf import OmegaConf

    launcher = OmegaConf.select(config, "hydra.launcher", default=None)
    if launcher is None:
        return 1
    target = str(launcher.get("_target_", ""))
    if target.endswith("LocalGpusLauncher"):
        from hydra_plugins.glattn_local_gpus.local_gpus_launcher import LocalGpusLauncher

        return len(
            LocalGpusLauncher(
                gpus=launcher.get("gpus"),
                jobs_per_gpu=launcher.get("jobs_per_gpu", 1),
                n_jobs=launcher.get("n_jobs"),
            ).slots()
        )
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
    if unit == "s":
        from glattn.sweep.plan import _fmt_s

        return _fmt_s(value)
    from glattn.sweep.plan import _fmt_pflop

    return f"{_fmt_pflop(value)} PFLOP"


def lpt_jobs(owner, jobs: Sequence[Sequence[str]]) -> list[int]:
    """The LPT order of `jobs` (override lists) by plan mode's costs. `owner` has the
    sweeper's/launcher's ``hydra_context`` and ``config``. Any failure: the given order."""
    try:
        from glattn.sweep.plan import build_plan

        plans, _ = build_plan(owner, [list(j) for j in jobs])
        costs, unit = plan_costs(plans)
    except Exception as e:  # noqa: BLE001 - ordering is an optimisation, never a failure
        log.warning("costliest-first order unavailable (%s: %s): given order", type(e).__name__, e)
        return list(range(len(jobs)))
    order = lpt_order(costs)
    if order != list(range(len(jobs))):
        log.info("starting the costliest jobs first (plan-mode cost in %s)", unit)
    return order


def lpt_batches(sweeper, batches: list[list[list[str]]], max_batch_size: int | None):
    """The sweeper's batches with the jobs in LPT order (job numbers follow it: #0 is the
    costliest), re-split as BasicSweeper splits them. Unchanged when the launcher orders
    its own jobs (local_gpus: ``hydra.launcher.order``) or runs one job at a time (the
    order cannot change that makespan)."""
    jobs = [job for batch in batches for job in batch]
    launcher = getattr(sweeper, "launcher", None)
    if len(jobs) < 2 or hasattr(launcher, "order") or configured_slots(sweeper.config) < 2:
        return batches
    ordered = [jobs[i] for i in lpt_jobs(sweeper, jobs)]
    size = max_batch_size or len(ordered)
    return [ordered[k : k + size] for k in range(0, len(ordered), size)]


def makespan_line(plans, config) -> str:
    """Plan mode's makespan line for `plans` (glattn.sweep.plan.JobPlan rows) on the slots
    of the configured launcher (`configured_slots`)."""
    costs, unit = plan_costs(plans)
    return format_makespan(costs, unit, configured_slots(config))
