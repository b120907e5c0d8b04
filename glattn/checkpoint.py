"""Checkpoints: where they live, atomic save, safe load, the per-fingerprint lock, and
loading a trained model.

``{paths.output_dir}/checkpoints/{config fingerprint}/{last,best}.pt``: the folder depends
on the resolved config only (never on the clock), so the same command started again, or a
requeued SLURM job, finds its own last checkpoint. Files are written to
``.<name>.<pid>.tmp`` and renamed (``os.replace`` is atomic on POSIX): a process killed at
any moment leaves the previous or the new file, never a torn one; the temporary files such
a kill leaves are removed when the next run of the fingerprint starts (it holds the lock).

A checkpoint is a dict of tensors and plain values (``torch.load(weights_only=True)``):
``model`` (state_dict), the training state ``optimizer``, ``scheduler``, ``scaler``,
``rng``, ``loader_rng``, ``stateful`` (any object the loop registers, e.g. an augmentation
generator), the loop ``state`` (epoch, best, history), and the record ``config`` (resolved,
secrets masked), ``fingerprint``, ``mlflow_run_id``, ``choices``, ``train_counts``.
``TRAINING_STATE`` names what only resuming needs: ``best.pt`` never holds it (`slim`).

A FINISHED run keeps one copy of its weights (docs/training.md, "Disk use"): ``best.pt``
(weights, the resolved config, the loop state and the final ``metrics``) becomes the run's
MLflow artifact ``checkpoints/best.pt``; the local ``best.pt`` is then deleted when the
artifact store is a local folder, and ``last.pt`` (the resumable state) unless
``trainer.keep_last=true``.
`load_model` loads a trained model from a file, an MLflow run id or a ``runs:/`` URI.
"""

from __future__ import annotations

import logging
import os
import pickle
import re
import time
import zipfile
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from glattn.config import ConfigError, config_fingerprint
from glattn.errors import UserError
from glattn.locks import Timeout, file_lock, holder
from glattn.tracking.uris import default_tracking_uri  # the one definition

log = logging.getLogger(__name__)

LOCK_FILE = ".lock"
TRAINING_STATE = ("optimizer", "scheduler", "scaler", "rng", "loader_rng", "stateful")
#: The MLflow artifact path of a run's best checkpoint.
BEST_ARTIFACT = "checkpoints/best.pt"
_RUN_ID = re.compile(r"[0-9a-f]{32}")


class CheckpointError(UserError, ValueError):
    """A checkpoint file cannot be used; the message names the file and what to do."""


class RunLockedError(UserError, RuntimeError):
    """Another process trains (or evaluates) the same config fingerprint right now."""


def checkpoint_dir(cfg: DictConfig, fingerprint: str | None = None) -> Path:
    fingerprint = fingerprint or config_fingerprint(cfg)
    return Path(cfg.paths.output_dir).absolute() / "checkpoints" / fingerprint


def atomic_save(obj, path: Path) -> None:
    """torch.save to a temporary file in the same folder, then rename over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def remove_stale_tmp(folder: Path) -> list[Path]:
    """Delete the ``.*.tmp`` files an earlier, killed process left in ``folder`` (call it
    while holding the folder's lock: no live writer then)."""
    stale = sorted(Path(folder).glob(".*.tmp")) if Path(folder).is_dir() else []
    for path in stale:
        path.unlink(missing_ok=True)
        log.info("removed %s, left by an interrupted save", path)
    return stale


#: the first bytes of a file torch.save writes: a zip archive (torch >= 1.6), or the legacy
#: format, a pickle (protocol 2+) whose first object is torch's magic number
ZIP_MAGIC = b"PK\x03\x04"
LEGACY_MAGIC = (0x1950A86A20F9469CFC6C).to_bytes(10, "little")


def _kind_of_file(path: Path) -> str:
    """``zip`` | ``legacy`` | ``empty`` | ``other``, from the file's first bytes."""
    with open(path, "rb") as f:
        head = f.read(64)
    if not head:
        return "empty"
    if head.startswith(ZIP_MAGIC):
        return "zip"
    if head[:1] == b"\x80" and LEGACY_MAGIC in head:
        return "legacy"
    return "other"


def _safe_load_reason(exc: BaseException) -> str:
    """The one line of torch's refusal that names the object (``Unsupported global: GLOBAL
    x.Y``), without torch's advice to retry with weights_only=False."""
    for line in str(exc).splitlines():
        line = line.strip()
        if "Unsupported" in line or "WeightsUnpickler error:" in line and line[-1:] != ":":
            reason = line.split("WeightsUnpickler error:", 1)[-1].strip()
            return reason.split(" was not an allowed global")[0]
    return type(exc).__name__


def load_checkpoint(path: str | Path, fix: str | None = None) -> dict:
    """``torch.load(path, weights_only=True)`` with one clear error naming the file and what
    is true of it: no such file, not a PyTorch checkpoint at all, truncated or corrupt, or a
    checkpoint holding objects a safe load refuses (only then is ``weights_only`` named; a
    file glattn did not write is never to be loaded with ``weights_only=False``).

    ``fix``: what the user should do when it cannot be read (default: delete the file or
    start fresh with ``trainer.resume=false``).
    """
    path = Path(path)
    fix = fix or f"delete {path} or start fresh with trainer.resume=false"
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    kind = _kind_of_file(path)
    if kind == "empty":
        raise CheckpointError(f"checkpoint {path} is empty (0 bytes): truncated; {fix}")
    if kind == "other":
        raise CheckpointError(
            f"not a PyTorch checkpoint: {path} ({path.stat().st_size} bytes) is neither a "
            f"torch.save zip archive nor torch's legacy format; {fix}"
        )
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:  # a readable pickle, with an object refused
        if kind == "zip" and not zipfile.is_zipfile(path):
            raise CheckpointError(f"checkpoint {path} is corrupt or truncated; {fix}") from None
        raise CheckpointError(
            f"checkpoint {path} holds objects that a safe load (weights_only=True) refuses "
            f"({_safe_load_reason(exc)}): glattn did not write it, and glattn loads only "
            f"tensors and plain values. Re-save its state_dict with torch.save from the code "
            f"that made it, or {fix}"
        ) from None
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError, KeyError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"checkpoint {path} is corrupt or truncated ({type(exc).__name__}: {first}); {fix}"
        ) from None
    return _with_weights(ckpt, path, fix)


def _with_weights(ckpt, path: Path, fix: str):
    """A finished run's best.pt whose weights are its MLflow model (``weights``, written by
    glattn.tracking.models.slim_record: the one copy) gets them back as ``model``."""
    if not isinstance(ckpt, dict) or "model" in ckpt or not isinstance(ckpt.get("weights"), dict):
        return ckpt
    from glattn.tracking.models import load_weights

    try:
        ckpt["model"] = load_weights(ckpt["weights"])
    except Exception as exc:  # a missing store, a deleted model, a refused archive
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"checkpoint {path}: its weights are the MLflow model "
            f"{ckpt['weights'].get('model_uri')}, which cannot be read ({first}); {fix}"
        ) from None
    return ckpt


def slim(ckpt: dict) -> dict:
    """The checkpoint without the state only resuming needs (optimizer, RNG, ...)."""
    return {k: v for k, v in ckpt.items() if k not in TRAINING_STATE}


def is_run_ref(ref) -> bool:
    """An MLflow reference rather than a file: a ``runs:/`` URI or a bare 32-hex run id."""
    text = str(ref)
    return text.startswith("runs:/") or bool(_RUN_ID.fullmatch(text))


def resolve_checkpoint(ref, tracking_uri: str | None = None) -> Path:
    """A local file for ``ref``: a path as it is; a run id or ``runs:/<id>[/<path>]`` (default
    path ``checkpoints/best.pt``) the artifact itself when the artifact store is a local
    folder (no copy), else downloaded to a temporary folder. One error naming what is missing.
    """
    if not is_run_ref(ref):
        path = Path(str(ref))
        if not path.is_file():
            raise CheckpointError(f"checkpoint {path} does not exist")
        return path
    text = str(ref)
    run_id, _, artifact = (
        text[len("runs:/") :].partition("/")
        if text.startswith("runs:/")
        else (
            text,
            "",
            "",
        )
    )
    artifact = artifact.strip("/") or BEST_ARTIFACT
    from glattn.tracking import make_client, mask_uri

    uri = tracking_uri or default_tracking_uri()
    client = make_client(uri)
    try:
        run = client.get_run(run_id)
    except Exception as exc:
        raise CheckpointError(
            f"{text}: no MLflow run {run_id} in {mask_uri(uri)} ({type(exc).__name__}); give "
            "the tracking store (tracking.uri= / MLFLOW_TRACKING_URI) or a checkpoint file"
        ) from None
    try:
        if run.info.artifact_uri.startswith("file:"):
            from mlflow.store.artifact.local_artifact_repo import LocalArtifactRepository

            local = LocalArtifactRepository(run.info.artifact_uri).download_artifacts(artifact)
        else:
            import tempfile

            import mlflow.artifacts

            local = mlflow.artifacts.download_artifacts(
                run_id=run_id,
                artifact_path=artifact,
                dst_path=tempfile.mkdtemp(prefix="glattn-ckpt-"),
                tracking_uri=uri,
            )
    except Exception as exc:
        local, error = None, f"{type(exc).__name__}: {exc}"
    if local is None or not Path(local).is_file():
        raise CheckpointError(
            f"{text}: MLflow run {run_id} ({run.info.run_name}) has no artifact {artifact}"
            + (f" ({error})" if local is None else "")
        )
    return Path(local)


def load_model(ref, tracking_uri: str | None = None, num_classes: int | None = None):
    """A trained model (eval mode, CPU) from a checkpoint file, an MLflow run id or a
    ``runs:/`` URI, loaded with ``weights_only=True``. ``model.config`` is the resolved
    training config and ``model.checkpoint`` the rest of the record (metrics, choices, ...).
    """
    ckpt = load_checkpoint(resolve_checkpoint(ref, tracking_uri))
    model, train_cfg = load_trained_model(ckpt, num_classes)
    model.config = train_cfg
    model.checkpoint = {k: v for k, v in ckpt.items() if k != "model"}
    return model.eval()


def best_path(ckpt_dir: Path) -> Path:
    best = Path(ckpt_dir) / "best.pt"
    return best if best.is_file() else Path(ckpt_dir) / "last.pt"


def load_trained_model(ckpt: dict, num_classes: int | None = None):
    """Rebuild the model of a checkpoint from its own resolved config and load weights."""
    from glattn.models import build_model

    train_cfg = OmegaConf.create(ckpt["config"])
    if num_classes is not None and int(train_cfg.dataset.num_classes) != num_classes:
        raise ConfigError(
            f"dataset.num_classes={num_classes} but the checkpoint was trained with "
            f"{train_cfg.dataset.num_classes} classes"
        )
    model = build_model(train_cfg)
    model.load_state_dict(ckpt["model"])
    return model, train_cfg


class CheckpointLock:
    """An exclusive lock on ``<folder>/.lock`` (`glattn.locks.file_lock`): one process per
    fingerprint.

    A second process says who it waits for (the holder's ``pid N@host since <time>``) and
    waits ``wait_s`` seconds for the holder before raising RunLockedError. The kernel drops
    the lock when the holder dies (SIGKILL included). flock is local to one machine (and
    NFS >= 4 on Linux); across nodes the tracking store's run lookup still finds the same run.
    """

    def __init__(self, folder: Path, wait_s: float = 30.0, poll_s: float = 0.5) -> None:
        self.path = Path(folder) / LOCK_FILE
        self.wait_s, self.poll_s = wait_s, poll_s
        self._lock = None

    def holder(self) -> str:
        return holder(self.path)

    def acquire(self) -> CheckpointLock:
        lock = file_lock(self.path)
        deadline = time.monotonic() + self.wait_s
        try:
            lock.acquire(blocking=False)
        except Timeout:
            log.warning("waiting for %s (held by %s)", self.path, self.holder())
            try:
                left = max(0.0, deadline - time.monotonic())
                lock.acquire(timeout=left, poll_interval=self.poll_s)
            except Timeout:
                raise RunLockedError(
                    f"{self.path.parent} is in use by {self.holder()}: the same config "
                    "(fingerprint) is running there. Wait for it to end, or stop that "
                    "process; two processes never train one fingerprint at once"
                ) from None
        self._lock = lock
        return self

    def release(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def __enter__(self) -> CheckpointLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
