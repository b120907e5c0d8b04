"""The files through which a sweep and its jobs talk (no shared memory across launchers).

``<sweep dir>/parent_run_id``   written once by the launching process (the sweep callback);
                                 each job nests its MLflow run under it. Without the file
                                 (another sweeper, a launcher's env_set) a job reads
                                 ``GLATTN_PARENT_RUN_ID``; never ``MLFLOW_RUN_ID``, which
                                 would make every job log into one run.
``<job dir>/status.json``       written by each job (`glattn.job.lifecycle`), also when it fails or
                                 is interrupted: {"status": "finished"|"reused"|"skipped"|
                                 "failed"|"killed", "error": str|None, "run_id": str|None,
                                 "fingerprint": str|None}; a reused job (a training FINISHED
                                 in another experiment, glattn.job.reuse) adds "source":
                                 {"run_id", "experiment", "run_name"}.
``<sweep dir>/jobs.json``       written by the glattn sweeper: one entry per launched job
                                 (number, overrides, job dir, Hydra's status and error).

A fused job (``sweep.fuse_seeds=true``, glattn.job.tasks.fused) is member 0's overrides plus
``sweep.fused_seeds=[s0,s1,...]``; `member_overrides` gives each member's own (the unfused
job's), and its status.json lists the members' outcomes under ``members``.

Files go through a temporary file and `os.replace`, so a reader never sees half a file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

PARENT_RUN_FILE = "parent_run_id"
STATUS_FILE = "status.json"
JOBS_FILE = "jobs.json"
PARENT_RUN_ENV = "GLATTN_PARENT_RUN_ID"
STATUSES = ("finished", "reused", "skipped", "failed", "killed")
#: the key a fused job's overrides set: the seeds of its members (glattn.job.tasks.fused)
FUSED_SEEDS_KEY = "sweep.fused_seeds"
#: the sweep's switch (a member's record is its unfused job's: without it)
FUSE_SEEDS_KEY = "sweep.fuse_seeds"


def fused_job_overrides(members: list[list[str]], seeds: list[int]) -> list[str]:
    """One fused job's overrides for ``members`` (job override lists that differ only in
    their ``seed=`` item): member 0's, plus ``sweep.fused_seeds=[...]``."""
    return [*members[0], f"{FUSED_SEEDS_KEY}=[{','.join(str(s) for s in seeds)}]"]


def override_key(item: str) -> str:
    """The key of a command-line override: ``+seed=1`` -> ``seed``."""
    return item.split("=", 1)[0].lstrip("+~")


def fused_seeds(overrides: list[str]) -> list[int] | None:
    """The seeds of a fused job (its ``sweep.fused_seeds=[...]``, as `fused_job_overrides`
    writes it), else None."""
    for item in overrides:
        if override_key(item) == FUSED_SEEDS_KEY and "=" in item:
            values = item.split("=", 1)[1].strip("[]").split(",")
            return [int(s) for s in values if s.strip()]
    return None


def member_overrides(overrides: list[str], seed: int) -> list[str]:
    """A fused job's member ``seed`` as its unfused job: the same overrides in the same
    order, ``seed=<seed>``, without ``sweep.fused_seeds`` and ``sweep.fuse_seeds``."""
    out = []
    for item in overrides:
        key = override_key(item)
        if key in (FUSED_SEEDS_KEY, FUSE_SEEDS_KEY):
            continue
        out.append(f"seed={seed}" if key == "seed" else item)
    return out


def atomic_write_text(path: Path, text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_parent_run_id(sweep_dir: Path, run_id: str) -> Path:
    path = Path(sweep_dir) / PARENT_RUN_FILE
    atomic_write_text(path, run_id + "\n")
    return path


def read_parent_run_id(sweep_dir: Path | str | None = None) -> str | None:
    """The sweep's parent run id, or None outside a tracked sweep.

    Without `sweep_dir`, the current Hydra job's ``hydra.sweep.dir`` is used when the job
    runs in a multirun (and ``$GLATTN_PARENT_RUN_ID`` when that folder has no file).
    """
    env = None
    if sweep_dir is None:
        sweep_dir = current_sweep_dir()
        if sweep_dir is None:
            return None
        env = os.environ.get(PARENT_RUN_ENV) or None
    path = Path(sweep_dir) / PARENT_RUN_FILE
    if not path.is_file():
        return env
    return path.read_text().strip() or env


def current_sweep_dir() -> Path | None:
    """``hydra.sweep.dir`` of the running Hydra job when it is part of a multirun."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized():
        return None
    hc = HydraConfig.get()
    if hc.mode != RunMode.MULTIRUN:
        return None
    return Path(str(hc.sweep.dir))


def write_status(
    job_dir: Path | str,
    status: str,
    error: str | None = None,
    run_id: str | None = None,
    fingerprint: str | None = None,
    members: list[dict] | None = None,
    source: dict | None = None,
) -> Path:
    if status not in STATUSES:
        raise ValueError(f"status.json: status={status!r}; expected one of {STATUSES}")
    path = Path(job_dir) / STATUS_FILE
    record = {"status": status, "error": error, "run_id": run_id}
    if fingerprint is not None:
        record["fingerprint"] = fingerprint
    if members is not None:
        record["members"] = members
    if source is not None:
        record["source"] = source
    atomic_write_text(path, json.dumps(record, indent=2))
    return path


def read_status(job_dir: Path | str) -> dict[str, Any] | None:
    path = Path(job_dir) / STATUS_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        return {"status": "failed", "error": f"{path}: unreadable status file ({e})"}
    if data.get("status") not in STATUSES:
        return {"status": "failed", "error": f"{path}: status={data.get('status')!r}"}
    return data
