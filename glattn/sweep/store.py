"""The sweep's side of MLflow: ONE parent run per grid, ever.

A grid is identified by its experiment and a hash of its jobs (each job's overrides, sorted,
without the settings that cannot change results: ``hydra.*``, ``sweep.*``, ``tracking.*``,
device, workers, resume). Launching the same grid again - after it finished, failed, was
stopped, or after its launcher was killed - finds that parent run in any state and
continues it, so its children all nest under one parent and its end status and summary
cover the whole grid. A grid whose jobs are all FINISHED already and that has no parent
yet gets none (a re-run with nothing to do adds no run). Find-or-create runs under a file
lock, so two launches of one grid at once share one parent.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Sequence
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from glattn.job.protocol import override_key
from glattn.locks import file_lock
from glattn.secrets import mask_override
from glattn.tracking import finished_runs, get_experiment_id, make_client, sqlite_path
from glattn.tracking.names import (
    ABORT_TAG,
    GRID_TAG,
    ROLE_TAG,
    SWEEP_DIR_TAG,
    SWEEP_ROLE,
)

log = logging.getLogger(__name__)

__all__ = [
    "client_for",
    "end_parent",
    "ensure_experiment",
    "finished_runs",
    "grid_id",
    "open_parent",
    "tracking_enabled",
]

#: override keys that do not make another grid
NEUTRAL_PREFIXES = ("hydra.", "hydra/", "sweep.", "tracking.")
NEUTRAL_KEYS = {
    "trainer.device",
    "trainer.num_workers",
    "trainer.resume",
    "trainer.log_every_n_steps",
    "dataset.num_workers",
}


def tracking_enabled(cfg: DictConfig) -> bool:
    return bool(OmegaConf.select(cfg, "tracking.enabled", default=False)) and bool(
        OmegaConf.select(cfg, "tracking.uri", default=None)
    )


def client_for(cfg: DictConfig, create: bool = True):
    """A client for ``cfg.tracking.uri``; None when the SQLite file is absent and `create`
    is false (plan mode must not create anything)."""
    db = sqlite_path(str(cfg.tracking.uri))
    if db is not None and not db.exists() and not create:
        return None
    return make_client(str(cfg.tracking.uri))


def ensure_experiment(cfg: DictConfig) -> str:
    """Experiment id of ``cfg.tracking.experiment``, created (and the SQLite schema with it,
    under its lock) when missing."""
    return get_experiment_id(cfg.tracking)


def grid_id(experiment: str, jobs: Iterable[Sequence[str]]) -> str:
    """sha256[:16] of the experiment and the sorted set of the jobs' sorted overrides."""
    identities = set()
    for overrides in jobs:
        kept = sorted(
            o
            for o in overrides
            if not override_key(o).startswith(NEUTRAL_PREFIXES)
            and override_key(o) not in NEUTRAL_KEYS
        )
        identities.add("\x1f".join(kept))
    blob = "\x1e".join([experiment, *sorted(identities)])
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _grid_lock(cfg: DictConfig, grid: str):
    """The grid's lock, ``<output_dir>/sweeps/.grid-<grid>.lock`` (blocking)."""
    return file_lock(Path(str(cfg.paths.output_dir)).absolute() / "sweeps" / f".grid-{grid}.lock")


def open_parent(
    cfg: DictConfig,
    grid: str,
    sweep_dir: Path,
    overrides: Sequence[str],
    all_done: callable = None,
) -> str | None:
    """The grid's parent run id: the existing one continued (RUNNING again), else a new one;
    None when there is none and ``all_done()`` says every job is FINISHED already."""
    from glattn.tracking.queries import find_parent

    client = client_for(cfg)
    exp_id = ensure_experiment(cfg)
    experiment = str(cfg.tracking.experiment)
    tags = {
        SWEEP_DIR_TAG: str(Path(sweep_dir).resolve()),
        "overrides": " ".join(mask_override(o) for o in overrides)[:5000],
        "launcher": OmegaConf.select(cfg, "hydra.runtime.choices.hydra/launcher", default=None)
        or "basic",
        "experiment_file": str(
            OmegaConf.select(cfg, "hydra.runtime.choices.experiment", default="null")
        ),
    }
    with _grid_lock(cfg, grid):
        parent = find_parent(client, exp_id, grid)
        if parent is not None:
            run_id = parent.info.run_id
            launches = int(parent.data.tags.get("glattn.launches", "1")) + 1
            for key, value in {**tags, "glattn.launches": str(launches)}.items():
                client.set_tag(run_id, key, value)
            client.update_run(run_id, status="RUNNING")
            log.info(
                "[glattn sweep] continuing parent run %s (%s, was %s): same grid, launch %d",
                parent.info.run_name,
                run_id,
                parent.info.status,
                launches,
            )
            return run_id
        if all_done is not None and all_done():
            log.info("[glattn sweep] every job of this grid is FINISHED already: no parent run")
            return None
        name = f"{experiment}/{Path(sweep_dir).name}"
        run = client.create_run(
            exp_id,
            run_name=name,
            tags={ROLE_TAG: SWEEP_ROLE, GRID_TAG: grid, "glattn.launches": "1", **tags},
        )
        log.info("[glattn sweep] parent run %s (%s)", name, run.info.run_id)
        return run.info.run_id


def end_parent(cfg: DictConfig, run_id: str, status: str, error: str | None = None) -> None:
    client = client_for(cfg)
    if error:
        client.set_tag(run_id, ABORT_TAG, error[:5000])
    client.set_terminated(run_id, status)
