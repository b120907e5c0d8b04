"""The sweep's side of MLflow: database, experiment and parent run, created once.

MLflow field notes (DESIGN.md section 4): many jobs creating a fresh SQLite database at
once race on the schema migration, so the launching process creates the database and the
experiment before any job starts; nested runs across processes use
``mlflow.start_run(parent_run_id=...)`` with the id passed through a file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

SWEEP_ROLE = "sweep"
JOB_ROLE = "job"
ROLE_TAG = "glattn.role"


def tracking_enabled(cfg: DictConfig) -> bool:
    return bool(OmegaConf.select(cfg, "tracking.enabled", default=False)) and bool(
        OmegaConf.select(cfg, "tracking.uri", default=None)
    )


def sqlite_path(uri: str) -> Path | None:
    prefix = "sqlite:///"
    if not uri.startswith(prefix):
        return None
    path = Path(uri[len(prefix) :])
    return path if path.is_absolute() else Path.cwd() / path


def client_for(cfg: DictConfig, create: bool = True):
    """An MlflowClient for ``cfg.tracking.uri``; None when the SQLite file is absent and
    `create` is false (plan mode must not create anything)."""
    from mlflow.tracking import MlflowClient

    from glattn.tracking import resolve_uri

    db = sqlite_path(str(cfg.tracking.uri))
    if db is not None and not db.exists() and not create:
        return None
    return MlflowClient(tracking_uri=resolve_uri(str(cfg.tracking.uri)))


def ensure_experiment(cfg: DictConfig) -> str:
    """Experiment id of ``cfg.tracking.experiment`` (created with glattn.tracking's artifact
    location), in the launching process: this also creates the SQLite schema once."""
    from glattn.tracking import get_experiment_id

    return get_experiment_id(cfg.tracking)


def create_parent_run(client, experiment_id: str, run_name: str, tags: dict[str, Any]) -> str:
    tags = {ROLE_TAG: SWEEP_ROLE, **{k: str(v)[:5000] for k, v in tags.items()}}
    run = client.create_run(experiment_id, run_name=run_name, tags=tags)
    return run.info.run_id


def finished_runs(client) -> list:
    """FINISHED job runs of every experiment of the store (for "done?" and cost estimates)."""
    exps = [e.experiment_id for e in client.search_experiments()]
    if not exps:
        return []
    return client.search_runs(
        exps,
        filter_string=f"attributes.status = 'FINISHED' and tags.`{ROLE_TAG}` = '{JOB_ROLE}'",
        max_results=50000,
    )


def env_flag(name: str) -> bool:
    return os.environ.get(name, "").lower() in ("1", "true", "yes")
