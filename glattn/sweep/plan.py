"""Plan mode: ``python run.py -m experiment=table3_fusion sweep.plan=true``.

Prints the grid without running it: the number of jobs, each job's overrides, whether it
is already done (a FINISHED run with the job's config fingerprint in the experiment, the
same test the job itself makes before training: glattn.tracking.find_finished_run) and an
estimated cost. Creates nothing: no database, no experiment, no run.

Cost heuristic (documented in README.md): for each job still to run, the median
``time/epoch_s`` of FINISHED job runs in the tracking store with the same backbone,
dataset and task, times the job's ``trainer.max_epochs`` (an upper bound: early stopping
may end it sooner); for a reference run without that metric, its wall time. Jobs without
a reference are counted, not guessed.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass

from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import filter_overrides
from omegaconf import OmegaConf, open_dict


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


def _job_config(sweeper, overrides, num):
    cfg = sweeper.hydra_context.config_loader.load_sweep_config(sweeper.config, list(overrides))
    with open_dict(cfg.hydra.job):
        cfg.hydra.job.num = num
        cfg.hydra.job.id = str(num)
    return cfg


def _reference_key(cfg, choices) -> tuple:
    return (choices.get("backbone"), choices.get("dataset"), str(cfg.get("task", "train")))


def build_plan(sweeper, jobs: list[list[str]]) -> tuple[list[JobPlan], dict]:
    from glattn.fit import config_fingerprint
    from glattn.sweep import store

    rerun = bool(OmegaConf.select(sweeper.config, "sweep.rerun", default=False))
    tracked = store.tracking_enabled(sweeper.config)
    client = store.client_for(sweeper.config, create=False) if tracked else None
    plans = []
    previous = HydraConfig.instance().cfg
    try:
        for num, overrides in enumerate(jobs):
            plan = JobPlan(num, list(filter_overrides(overrides)))
            try:
                cfg = _job_config(sweeper, overrides, num)
                HydraConfig.instance().set_config(cfg)  # resolvers read the job's hydra node
                task_cfg = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])
                plan.fingerprint = config_fingerprint(task_cfg)
                plan.key = _reference_key(task_cfg, dict(cfg.hydra.runtime.choices))
                plan.max_epochs = OmegaConf.select(task_cfg, "trainer.max_epochs", default=None)
                if client is not None and not rerun:
                    from glattn.tracking import find_finished_run

                    run = find_finished_run(task_cfg.tracking, plan.fingerprint, str(task_cfg.task))
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


def _fmt_s(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    if seconds < 90:
        return f"{seconds:.0f}s"
    if seconds < 5400:
        return f"{seconds / 60:.1f}m"
    return f"{seconds / 3600:.1f}h"


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
    lines.append(f"  {'#':>3}  {'state':<6} {'est.':>6}  {'fingerprint':<12}  overrides")
    for p in plans:
        state = "done" if p.done_run else ("error" if p.error else "todo")
        est = "-" if p.done_run else _fmt_s(p.est_s)
        fp = p.fingerprint or "?"
        own = " ".join(o for o in p.overrides if o not in common)
        line = f"  {p.num:>3}  {state:<6} {est:>6}  {fp:<12}  {own}"
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
    return "\n".join(lines)


def print_plan(sweeper, jobs: list[list[str]]) -> list:
    plans, info = build_plan(sweeper, jobs)
    cfg = sweeper.config
    sweep_name = OmegaConf.select(cfg, "tracking.experiment", default="sweep")
    print(format_plan(plans, info, str(sweep_name)), flush=True)
    return []
