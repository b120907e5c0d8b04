"""MLflow tracking: experiment, job runs (nested under a sweep's parent run), params,
metrics, tags and artifacts, with the names of CONTRACT.md "MLflow naming".

Uses ``MlflowClient`` (no global active-run stack), so several runs can be handled in one
process and a resumed run is continued by id. MLflow limits (mlflow/utils/validation.py):
param values 6000 characters, keys 250, 100 params/tags and 1000 metrics per batch; params
are immutable, so a resumed run never logs them again.
"""

from __future__ import annotations

import logging
import math
import re
import subprocess
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)

MAX_PARAM_VALUE = 6000
MAX_KEY = 250
MAX_BATCH = 100
MAX_METRICS_BATCH = 1000
SECRET_KEY = re.compile(r"token|key|password|passwd|secret|credential", re.IGNORECASE)
SECRET_URI = re.compile(r"(://[^:/@]+:)[^@]+@")  # user:password@host in URLs
MASK = "****"


# ----------------------------------------------------------------------------- config
def resolve_uri(uri: str | None) -> str | None:
    """A relative ``sqlite:///path`` becomes absolute (jobs may start in other dirs)."""
    if uri is None:
        return None
    uri = str(uri)
    if uri.startswith("sqlite:///"):
        path = Path(uri[len("sqlite:///") :])
        if not path.is_absolute():
            path = Path.cwd() / path
        path.parent.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{path.resolve()}"
    return uri


def mask_uri(uri: str | None) -> str | None:
    return SECRET_URI.sub(rf"\1{MASK}@", uri) if uri else uri


def flatten_config(cfg: DictConfig | Mapping) -> dict[str, str]:
    """Resolved config as {dotted.key: str(value)}; secret-looking keys masked; no hydra."""
    from glattn.fit import resolved_config

    container = resolved_config(cfg) if isinstance(cfg, DictConfig) else dict(cfg)
    container = {k: v for k, v in container.items() if k != "hydra"}
    flat: dict[str, str] = {}

    def walk(node, prefix):
        if isinstance(node, Mapping):
            if not node and prefix:
                flat[prefix] = "{}"
            for key, value in node.items():
                walk(value, f"{prefix}.{key}" if prefix else str(key))
            return
        if SECRET_KEY.search(prefix.rsplit(".", 1)[-1]) and node not in (None, ""):
            value = MASK
        elif isinstance(node, str):
            value = mask_uri(node)
        else:
            value = "None" if node is None else str(node)
        flat[prefix[:MAX_KEY]] = value[:MAX_PARAM_VALUE]

    walk(container, "")
    return flat


def group_choices(cfg: DictConfig) -> dict[str, str]:
    """Config-group choices (hydra.runtime.choices), e.g. {"fusion": "cross_attn", ...}."""
    from hydra.core.hydra_config import HydraConfig

    choices = {}
    if HydraConfig.initialized():
        choices = dict(HydraConfig.get().runtime.choices)
    elif OmegaConf.select(cfg, "hydra.runtime.choices") is not None:
        choices = dict(cfg.hydra.runtime.choices)
    out = {}
    for group in (
        "backbone",
        "glsa",
        "attention",
        "fusion",
        "residual",
        "loss",
        "dataset",
        "optimizer",
        "scheduler",
    ):
        value = choices.get(group)
        if value is None:  # composed without the hydra node: fall back to the config
            node = OmegaConf.select(cfg, group)
            value = (
                OmegaConf.select(node, "name")
                or str(OmegaConf.select(node, "_target_", default="?")).rsplit(".", 1)[-1]
                if isinstance(node, DictConfig)
                else "?"
            )
        out[group] = str(value)
    return out


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            cwd=Path(__file__).resolve().parent,
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


# ----------------------------------------------------------------------------- client
def _client(tracking_cfg: DictConfig):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=resolve_uri(tracking_cfg.uri))


def get_experiment_id(tracking_cfg: DictConfig) -> str:
    """The experiment's id, created (with its artifact location) when missing.

    Sweeps should call this once in the launching process: many jobs creating a fresh
    SQLite database at once race on the schema migration.
    """
    client = _client(tracking_cfg)
    name = str(tracking_cfg.experiment)
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    location = None
    uri = resolve_uri(tracking_cfg.uri) or ""
    if tracking_cfg.get("artifact_location") and not uri.startswith(("http://", "https://")):
        path = Path(str(tracking_cfg.artifact_location)).absolute() / name
        path.mkdir(parents=True, exist_ok=True)
        location = path.as_uri()
    try:
        return client.create_experiment(name, artifact_location=location)
    except Exception:  # created concurrently by another job
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            raise
        return experiment.experiment_id


def find_finished_run(tracking_cfg: DictConfig, fingerprint: str, task: str = "train"):
    """The newest FINISHED job run of ``task`` (train | eval) with this fingerprint, or None."""
    if not tracking_cfg.get("enabled", True):
        return None
    client = _client(tracking_cfg)
    experiment = client.get_experiment_by_name(str(tracking_cfg.experiment))
    if experiment is None:
        return None
    runs = client.search_runs(
        [experiment.experiment_id],
        filter_string=(
            f"tags.fingerprint = '{fingerprint}' and tags.task = '{task}' "
            "and attributes.status = 'FINISHED'"
        ),
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    return runs[0] if runs else None


class Tracker:
    """One MLflow run. ``start`` creates or continues it; the rest log into it."""

    def __init__(self, tracking_cfg: DictConfig):
        self.cfg = tracking_cfg
        self.client = _client(tracking_cfg)
        self.run_id: str | None = None
        self.experiment_id: str | None = None

    @property
    def enabled(self) -> bool:
        return True

    def start(
        self,
        run_name: str,
        tags: Mapping[str, str],
        run_id: str | None = None,
        parent_run_id: str | None = None,
    ) -> bool:
        """Continue ``run_id`` when it exists in this experiment, else create a run.

        Returns True when a new run was created (the caller then logs params).
        """
        self.experiment_id = get_experiment_id(self.cfg)
        if run_id is not None:
            try:
                run = self.client.get_run(run_id)
            except Exception:  # not in this tracking store
                run = None
            if run is not None and run.info.experiment_id == self.experiment_id:
                self.run_id = run_id
                if run.info.status != "RUNNING":
                    self.client.update_run(run_id, status="RUNNING")
                log.info("continuing MLflow run %s (%s)", run_id, run.info.run_name)
                return False
            log.info("MLflow run %s is not in experiment %s: new run", run_id, self.cfg.experiment)
        all_tags = {k: str(v)[:8000] for k, v in tags.items()}
        if parent_run_id:
            all_tags["mlflow.parentRunId"] = parent_run_id
        run = self.client.create_run(self.experiment_id, run_name=run_name, tags=all_tags)
        self.run_id = run.info.run_id
        log.info(
            "MLflow run %s (%s) in experiment %s at %s",
            self.run_id,
            run_name,
            self.cfg.experiment,
            mask_uri(resolve_uri(self.cfg.uri)),
        )
        return True

    def log_params(self, params: Mapping[str, str]) -> None:
        from mlflow.entities import Param

        items = [Param(k, v) for k, v in params.items()]
        for i in range(0, len(items), MAX_BATCH):
            self.client.log_batch(self.run_id, params=items[i : i + MAX_BATCH])

    def set_tags(self, tags: Mapping[str, str]) -> None:
        from mlflow.entities import RunTag

        items = [RunTag(k, str(v)[:8000]) for k, v in tags.items()]
        for i in range(0, len(items), MAX_BATCH):
            self.client.log_batch(self.run_id, tags=items[i : i + MAX_BATCH])

    def log_metrics(self, metrics: Mapping[str, float], step: int = 0) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [
            Metric(k, float(v), now, step)
            for k, v in metrics.items()
            if v is not None and not (isinstance(v, float) and math.isnan(v))
        ]
        for i in range(0, len(items), MAX_METRICS_BATCH):
            self.client.log_batch(self.run_id, metrics=items[i : i + MAX_METRICS_BATCH])

    def logged_steps(self, key: str) -> set[int]:
        return {m.step for m in self.client.get_metric_history(self.run_id, key)}

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        if Path(path).exists():
            self.client.log_artifact(self.run_id, str(path), artifact_path)

    def log_artifacts(self, paths: Iterable[Path], artifact_path: str | None = None) -> None:
        for path in paths:
            self.log_artifact(path, artifact_path)

    def end(self, status: str = "FINISHED") -> None:
        if self.run_id is not None:
            self.client.set_terminated(self.run_id, status=status)


class NullTracker(Tracker):
    """``tracking=none``: same interface, records nothing."""

    def __init__(self, tracking_cfg: DictConfig | None = None):
        self.cfg = tracking_cfg
        self.run_id = None
        self.experiment_id = None

    @property
    def enabled(self) -> bool:
        return False

    def start(self, run_name, tags, run_id=None, parent_run_id=None) -> bool:
        return True

    def log_params(self, params) -> None:
        pass

    def set_tags(self, tags) -> None:
        pass

    def log_metrics(self, metrics, step: int = 0) -> None:
        pass

    def logged_steps(self, key: str) -> set[int]:
        return set()

    def log_artifact(self, path, artifact_path=None) -> None:
        pass

    def end(self, status: str = "FINISHED") -> None:
        pass


def make_tracker(tracking_cfg: DictConfig) -> Tracker:
    return Tracker(tracking_cfg) if tracking_cfg.get("enabled", True) else NullTracker()
