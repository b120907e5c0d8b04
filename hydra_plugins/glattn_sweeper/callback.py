"""glattn's sweep callback (``hydra.callbacks.glattn_sweep`` in conf/config.yaml): the sweep's
parent run opens in ``on_multirun_start`` and ends in ``on_multirun_end``.

Hydra calls ``on_multirun_start`` before it builds the sweeper, so the callback admits the
grid first (admission.admit: every job's config, the store, the device, the scheduler, the
sweep folder's lock), and only then finds or creates the grid's ONE MLflow parent run
(glattn.sweep.store: the same grid launched again continues it) and writes its id to
``<sweep dir>/parent_run_id``, where every job and the end of the sweep read it. From then
until the sweep ends it, a stop signal raises and an exit hook ends a parent still open
KILLED or FAILED (glattn.sweep.outcomes.guard_parent): a signal or an error inside Hydra,
between its callbacks and the sweeper, never leaves it RUNNING. A refused grid leaves no run
and no folder. ``on_multirun_end`` (glattn.sweep.callbacks.SweepCallback)
prints the summary, ends the parent run and sets the exit status. Plan mode and a paper's
stages open nothing here (each stage is a sweep of its own).
"""

from __future__ import annotations

import copy
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from hydra.core.global_hydra import GlobalHydra
from hydra.types import HydraContext
from omegaconf import DictConfig, OmegaConf

from glattn.sweep.callbacks import SweepCallback, is_plan
from hydra_plugins.glattn_sweeper import admission, guard

SWEEPER = "hydra_plugins.glattn_sweeper.glattn_sweeper.GlattnSweeper"


class GlattnSweepCallback(SweepCallback):
    """The sweep's parent run: opened at the start (after the grid is admitted), ended with
    the summary (SweepCallback)."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        if is_plan(config) or OmegaConf.select(config, "hydra.sweeper._target_") != SWEEPER:
            return  # another sweeper runs the grid as it will, without a parent run
        from glattn import cli

        owner = SimpleNamespace(
            config=config,
            hydra_context=HydraContext(GlobalHydra.instance().config_loader(), None),
            task_function=cli.launched_task(),
        )
        params = OmegaConf.select(config, "hydra.sweeper.params", default=None)
        task = list(config.hydra.overrides.task)
        jobs = admission.grid_jobs(params, task, owner.hydra_context.config_loader)
        admission.admit(owner, jobs)
        open_parent(owner, jobs)


def open_parent(owner, jobs) -> None:
    """Find or create the grid's one parent run; its id goes to <sweep dir>/parent_run_id."""
    from glattn.job import protocol
    from glattn.job.spec import route_debug
    from glattn.sweep import store
    from glattn.sweep.outcomes import all_finished, guard_parent

    if not store.tracking_enabled(owner.config):
        return
    sweep_dir = Path(str(owner.config.hydra.sweep.dir))
    config = copy.deepcopy(owner.config)
    route_debug(config)  # debug=smoke: the parent goes where its jobs go (<exp>-debug)
    experiment = str(config.tracking.experiment)
    try:
        parent = store.open_parent(
            config,
            store.grid_id(experiment, jobs),  # the unfused grid: fused or not, one parent
            sweep_dir,
            list(owner.config.hydra.overrides.task),
            all_done=lambda: all_finished(owner, jobs),
        )
    except Exception as e:  # noqa: BLE001 - any store failure must stop the sweep here
        raise SystemExit(
            guard.say(
                f"cannot open the MLflow parent run in tracking.uri="
                f"{owner.config.tracking.uri!r}, tracking.experiment={experiment!r}: "
                f"{type(e).__name__}: {str(e).strip().splitlines()[-1] if str(e) else ''}"
            )
        ) from None
    if parent is not None:
        protocol.write_parent_run_id(sweep_dir, parent)
        guard_parent(owner.config, sweep_dir)  # until the sweep ends it: never left RUNNING
