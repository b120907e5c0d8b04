"""One MLflow run: created or continued, then params, metrics, tags and artifacts.

Uses the client (no global active-run stack), so several runs can be handled in one process
and a continued run is addressed by id. MLflow limits (mlflow/utils/validation.py): param
values 6000 characters, keys 250, 100 params/tags and 1000 metrics per batch. Params are
immutable, so a continued run logs only the keys it lacks; a metric already logged at a
step is not logged again (a run continued after a kill logs nothing twice).
"""

from __future__ import annotations

import logging
import math
import subprocess
import tempfile
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

from omegaconf import DictConfig

from glattn.secrets import MASK, is_secret_key, mask_text, mask_uri
from glattn.tracking.client import get_experiment_id, make_client
from glattn.tracking.names import (
    CLASS_TAG_PREFIX,
    ERROR_TAG,
    INSTANTIATE_KEYS,
    NOT_PARAMS,
    PARENT_TAG,
)
from glattn.tracking.uris import resolve_uri

log = logging.getLogger(__name__)

MAX_PARAM_VALUE = 6000
MAX_KEY = 250
MAX_TAG_VALUE = 5000
MAX_BATCH = 100
MAX_METRICS_BATCH = 1000


def flatten_config(cfg: DictConfig | Mapping) -> dict[str, str]:
    """The settings of the resolved config as {dotted.key: str(value)}, sorted by key (so a
    config group's settings sit together: ``fusion.init_logit`` after ``dataset.*``); secret
    looking keys masked. Not params: Hydra's ``_target_``/``_partial_`` keys (the class is the
    ``class.<group>`` tag, `class_tags`), ``seed`` (a tag), the launch controls ``sweep.*``
    and ``hydra``; the whole resolved config is the run's ``config.yaml`` artifact."""
    from glattn.config import resolved_config

    container = resolved_config(cfg) if isinstance(cfg, DictConfig) else dict(cfg)
    container = {k: v for k, v in container.items() if k not in NOT_PARAMS}
    flat: dict[str, str] = {}

    def walk(node, prefix):
        if isinstance(node, Mapping):
            if not node and prefix:
                flat[prefix] = "{}"
            for key, value in node.items():
                if key not in INSTANTIATE_KEYS:
                    walk(value, f"{prefix}.{key}" if prefix else str(key))
            return
        if is_secret_key(prefix) and node not in (None, ""):
            value = MASK
        elif isinstance(node, str):
            value = mask_uri(node)
        else:
            value = "None" if node is None else str(node)
        flat[prefix[:MAX_KEY]] = value[:MAX_PARAM_VALUE]

    walk(container, "")
    return dict(sorted(flat.items()))


def class_tags(cfg: DictConfig | Mapping) -> dict[str, str]:
    """``class.<key>``: the ``_target_`` of each config node that has one (``class.fusion``
    = ``glattn.models.fusion.GatedFusion``): which class an option builds, as a tag."""
    from glattn.config import resolved_config

    container = resolved_config(cfg) if isinstance(cfg, DictConfig) else dict(cfg)
    out: dict[str, str] = {}

    def walk(node, prefix):
        if not isinstance(node, Mapping):
            return
        if prefix and isinstance(node.get("_target_"), str):
            out[f"{CLASS_TAG_PREFIX}{prefix}"[:MAX_KEY]] = node["_target_"][:MAX_TAG_VALUE]
        for key, value in node.items():
            walk(value, f"{prefix}.{key}" if prefix else str(key))

    walk({k: v for k, v in container.items() if k != "hydra"}, "")
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


class Tracker:
    """One MLflow run. ``start`` creates or continues it; the rest log into it."""

    enabled = True

    def __init__(self, tracking_cfg: DictConfig):
        self.cfg = tracking_cfg
        self.client = make_client(tracking_cfg.uri)
        self.run_id: str | None = None
        self.experiment_id: str | None = None
        self._params: set[str] = set()
        self._logged: set[tuple[str, int]] = set()

    def ensure_experiment(self) -> str:
        if self.experiment_id is None:
            self.experiment_id = get_experiment_id(self.cfg, self.client)
        return self.experiment_id

    def start(
        self,
        run_name: str,
        tags: Mapping[str, object],
        run_id: str | None = None,
        parent_run_id: str | None = None,
    ) -> bool:
        """Continue ``run_id`` when it exists in this experiment, else create a run.

        Returns True when a new run was created.
        """
        self.ensure_experiment()
        all_tags = {k: str(v)[:MAX_TAG_VALUE] for k, v in tags.items()}
        if parent_run_id:
            all_tags[PARENT_TAG] = parent_run_id
        if run_id is not None:
            try:
                run = self.client.get_run(run_id)
            except Exception:  # not in this tracking store
                run = None
            if run is not None and run.info.experiment_id == self.experiment_id:
                self._continue(run, all_tags)
                return False
            log.info("MLflow run %s is not in experiment %s: new run", run_id, self.cfg.experiment)
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

    def _continue(self, run, tags: Mapping[str, str]) -> None:
        from mlflow.entities import RunTag

        self.run_id = run.info.run_id
        self._params = set(run.data.params)
        self._logged = {
            (key, int(m.step))
            for key in run.data.metrics
            for m in self.client.get_metric_history(self.run_id, key)
        }
        if run.info.status != "RUNNING":
            self.client.update_run(self.run_id, status="RUNNING")
        items = [RunTag(k, v) for k, v in tags.items() if run.data.tags.get(k) != v]
        for i in range(0, len(items), MAX_BATCH):
            self.client.log_batch(self.run_id, tags=items[i : i + MAX_BATCH])
        log.info(
            "continuing MLflow run %s (%s, was %s)",
            self.run_id,
            run.info.run_name,
            run.info.status,
        )

    def log_params(self, params: Mapping[str, str]) -> None:
        """Log the params this run does not have yet (params are immutable in MLflow)."""
        from mlflow.entities import Param

        items = [Param(k, v) for k, v in params.items() if k not in self._params]
        for i in range(0, len(items), MAX_BATCH):
            self.client.log_batch(self.run_id, params=items[i : i + MAX_BATCH])
        self._params |= {p.key for p in items}

    def log_metrics(self, metrics: Mapping[str, float], step: int = 0) -> None:
        """Log finite values; a (key, step) this run already holds is not logged again."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [
            Metric(k, float(v), now, int(step))
            for k, v in metrics.items()
            if v is not None
            and not (isinstance(v, float) and math.isnan(v))
            and (k, int(step)) not in self._logged
        ]
        for i in range(0, len(items), MAX_METRICS_BATCH):
            self.client.log_batch(self.run_id, metrics=items[i : i + MAX_METRICS_BATCH])
        self._logged |= {(m.key, m.step) for m in items}

    def logged_steps(self, key: str) -> set[int]:
        return {step for k, step in self._logged if k == key}

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        if Path(path).exists():
            self.client.log_artifact(self.run_id, str(path), artifact_path)

    def log_artifacts(self, paths: Iterable[Path], artifact_path: str | None = None) -> None:
        for path in paths:
            if path is not None:
                self.log_artifact(path, artifact_path)

    def set_tags(self, tags: Mapping[str, object]) -> None:
        """Set (or overwrite) tags of the run, e.g. the latency measurement's device."""
        from mlflow.entities import RunTag

        items = [RunTag(k, str(v)[:MAX_TAG_VALUE]) for k, v in tags.items()]
        for i in range(0, len(items), MAX_BATCH):
            self.client.log_batch(self.run_id, tags=items[i : i + MAX_BATCH])

    def log_masked_files(self, paths: Iterable[Path], artifact_path: str, secrets=()) -> None:
        """Log text files (the run folder's debug.log, <job>.log, status.json) with every
        secret value and URI password masked (glattn.secrets.mask_text); missing files are
        skipped. The copies are written to a temporary folder: the originals stay."""
        with tempfile.TemporaryDirectory() as tmp:
            for path in (Path(p) for p in paths):
                if not path.is_file():
                    continue
                copy = Path(tmp) / path.name
                copy.write_text(mask_text(path.read_text(errors="replace"), secrets))
                self.client.log_artifact(self.run_id, str(copy), artifact_path)

    def artifact_uri(self) -> str | None:
        """The run's artifact root (``file:///...`` when the artifact store is a folder)."""
        return self.client.get_run(self.run_id).info.artifact_uri if self.run_id else None

    def end(self, status: str = "FINISHED", error: str | None = None) -> None:
        """End the run with ``status``; ``error`` (one line) goes into tag glattn.error."""
        if self.run_id is None:
            return
        if error:
            self.client.set_tag(self.run_id, ERROR_TAG, error[:MAX_TAG_VALUE])
        self.client.set_terminated(self.run_id, status=status)


class NullTracker(Tracker):
    """``tracking=none``: same interface, records nothing."""

    enabled = False

    def __init__(self, tracking_cfg: DictConfig | None = None):
        self.cfg = tracking_cfg
        self.run_id = None
        self.experiment_id = None
        self._params, self._logged = set(), set()

    def ensure_experiment(self) -> str:
        return ""

    def artifact_uri(self) -> str | None:
        return None

    def start(self, run_name, tags, run_id=None, parent_run_id=None) -> bool:
        return True

    def log_params(self, params) -> None:
        pass

    def log_metrics(self, metrics, step: int = 0) -> None:
        pass

    def log_artifact(self, path, artifact_path=None) -> None:
        pass

    def set_tags(self, tags) -> None:
        pass

    def log_masked_files(self, paths, artifact_path, secrets=()) -> None:
        pass

    def end(self, status: str = "FINISHED", error: str | None = None) -> None:
        pass


def make_tracker(tracking_cfg: DictConfig) -> Tracker:
    return Tracker(tracking_cfg) if tracking_cfg.get("enabled", True) else NullTracker()
