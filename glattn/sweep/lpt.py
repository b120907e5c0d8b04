"""Costliest jobs first for a grid: plan mode's costs (glattn.sweep.plan) put in the
longest-processing-time order (glattn.sweep.schedule; Graham 1969), for the glattn sweeper's
batches and the local_gpus launcher's queue."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from glattn.sweep import expand
from glattn.sweep.plan import build_plan
from glattn.sweep.schedule import configured_slots, lpt_order, plan_costs

log = logging.getLogger(__name__)


def lpt_jobs(owner, jobs: Sequence[Sequence[str]]) -> list[int]:
    """The LPT order of `jobs` (override lists) by plan mode's costs. `owner` has the
    sweeper's/launcher's ``hydra_context`` and ``config``. Any failure: the given order."""
    try:
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
    costliest), re-split as before (glattn.sweep.expand.batches). Unchanged when the
    launcher orders its own jobs (local_gpus: ``hydra.launcher.order``) or runs one job at
    a time (the order cannot change that makespan)."""
    jobs = [job for batch in batches for job in batch]
    launcher = getattr(sweeper, "launcher", None)
    if len(jobs) < 2 or hasattr(launcher, "order") or configured_slots(sweeper.config) < 2:
        return batches
    return expand.batches([jobs[i] for i in lpt_jobs(sweeper, jobs)], max_batch_size)
