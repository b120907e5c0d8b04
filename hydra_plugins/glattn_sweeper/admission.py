"""What a sweep checks and holds before it leaves any record, once per sweep folder in the
launching process: the grid's secrets masked in the log lines, ``hydra.job.chdir``, every
job's config (grid.check_grid), the output folder and the tracking store, the device, the
scheduler, then the sweep folder and its lock (guard.hold_sweep_dir).

glattn's sweep callback admits the grid in ``on_multirun_start`` and then opens the parent
run (hydra_plugins.glattn_sweeper.callback); the sweeper admits it when no callback did
(another Hydra app) and finds the callback's admission otherwise; it releases the lock when
its jobs have ended.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from omegaconf import OmegaConf

from glattn.sweep import expand
from glattn.sweep.callbacks import ADMITTED  # not here: Hydra may re-import its plugins
from hydra_plugins.glattn_sweeper import grid, guard


def grid_jobs(params, arguments: Sequence[str], config_loader) -> list[list[str]]:
    """The sweep's jobs: ``hydra.sweeper.params`` then the command line, Hydra's order."""
    return expand.jobs(expand.arguments(params, arguments), config_loader=config_loader)


def _key(config) -> str:
    return str(Path(str(config.hydra.sweep.dir)).resolve())


def admit(owner, jobs: Sequence[Sequence[str]]) -> set[str]:
    """Check the grid and hold its sweep folder (SystemExit with one line on a refusal);
    the grid's secret values. `owner`: the sweeper, or what the callback knows of it
    (``config``, ``hydra_context``, ``task_function``)."""
    config = owner.config
    if _key(config) in ADMITTED:
        return ADMITTED[_key(config)][0]
    secrets = _mask_logs(config, jobs)
    if grid.glattn_task(owner):
        guard.check_chdir(config)
    grid.check_grid(owner, jobs, secrets)  # every job, before any trace
    guard.check_sweep(config)  # one line, before any folder or parent run exists
    guard.check_device(owner, jobs)
    guard.check_scheduler(owner, jobs)
    sweep_dir = Path(str(config.hydra.sweep.dir))
    sweep_dir.mkdir(parents=True, exist_ok=True)
    ADMITTED[_key(config)] = (secrets, guard.hold_sweep_dir(sweep_dir))
    return secrets


def release(config) -> None:
    """Let the sweep folder go (its jobs have ended): another launch may take it."""
    admitted = ADMITTED.pop(_key(config), None)
    if admitted is not None:
        admitted[1].release()


def _mask_logs(config, jobs: Sequence[Sequence[str]]) -> set[str]:
    """Mask the grid's secret values in this process's log lines; returns them."""
    from glattn.config import resolved_config
    from glattn.secrets import install_log_filter, secret_values

    cfg = OmegaConf.masked_copy(config, [k for k in config if k != "hydra"])
    try:
        found = secret_values(resolved_config(cfg))
    except Exception:  # noqa: BLE001 - a value that resolves only inside a job
        found = set()
    found |= secret_values([o for job in jobs for o in job])
    found |= secret_values(list(config.hydra.overrides.task))
    install_log_filter(found)
    return found
