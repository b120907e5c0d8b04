"""What each launched job did, from Hydra's JobReturns, kept in ``<sweep dir>/jobs.json``."""

from __future__ import annotations

import atexit
import json
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from hydra.core.utils import JobReturn, JobStatus, filter_overrides
from omegaconf import OmegaConf, open_dict

from glattn.job.protocol import JOBS_FILE, atomic_write_text
from glattn.secrets import mask_override, mask_text

log = logging.getLogger(__name__)


def job_dir_for(sweeper, overrides: Sequence[str], num: int) -> str:
    """The job dir Hydra gives job `num` (``hydra.sweep.dir``/``hydra.sweep.subdir``)."""
    from hydra.core.hydra_config import HydraConfig

    cfg = sweeper.hydra_context.config_loader.load_sweep_config(sweeper.config, list(overrides))
    with open_dict(cfg.hydra.job):
        cfg.hydra.job.num = num
        cfg.hydra.job.id = str(num)
    previous = HydraConfig.instance().cfg
    HydraConfig.instance().set_config(cfg)  # ${hydra:...} interpolations read this
    try:
        sub = OmegaConf.select(cfg, "hydra.sweep.subdir")
        return str(Path(str(cfg.hydra.sweep.dir), str(sub)).resolve())
    finally:
        HydraConfig.instance().cfg = previous


def describe(ret: JobReturn) -> tuple[str, str | None]:
    status = ret.status.name if isinstance(ret.status, JobStatus) else str(ret.status)
    if ret.status == JobStatus.FAILED:
        exc = ret._return_value
        return status, mask_text(f"{type(exc).__name__}: {exc}")
    return status, None


class JobLedger:
    def __init__(self, sweeper, sweep_dir: Path) -> None:
        self.sweeper = sweeper
        self.path = Path(sweep_dir) / JOBS_FILE
        self.jobs: list[dict] = []

    def record(self, batch, results: Sequence[JobReturn], start: int) -> None:
        for i, (overrides, ret) in enumerate(zip(batch, results)):
            num = start + i
            status, error = describe(ret)
            if ret.hydra_cfg is not None:
                job_dir = str(ret.hydra_cfg.hydra.runtime.output_dir)
            else:
                job_dir = job_dir_for(self.sweeper, overrides, num)
            self.jobs.append(
                {
                    "num": num,
                    "overrides": [mask_override(o) for o in filter_overrides(overrides)],
                    "job_dir": job_dir,
                    "hydra_status": status,
                    "error": error,
                }
            )
        atomic_write_text(self.path, json.dumps(self.jobs, indent=1))


def all_finished(sweeper, jobs: Sequence[Sequence[str]]) -> bool:
    """True when every job of the grid has a FINISHED run already (and sweep.rerun is off):
    its config fingerprint and task, the same test each job makes before it starts."""
    from hydra.core.hydra_config import HydraConfig

    from glattn.config import config_fingerprint
    from glattn.job.spec import route_debug
    from glattn.tracking import find_finished_run

    if OmegaConf.select(sweeper.config, "sweep.rerun", default=False):
        return False
    previous = HydraConfig.instance().cfg
    try:
        for num, overrides in enumerate(jobs):
            cfg = sweeper.hydra_context.config_loader.load_sweep_config(
                sweeper.config, list(overrides)
            )
            with open_dict(cfg.hydra.job):
                cfg.hydra.job.num, cfg.hydra.job.id = num, str(num)
            HydraConfig.instance().set_config(cfg)
            task_cfg = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])
            fingerprint = config_fingerprint(task_cfg)
            route_debug(task_cfg)  # a debug preset's runs are in <experiment>-debug
            if find_finished_run(task_cfg.tracking, fingerprint, str(task_cfg.task)) is None:
                return False
    except Exception as e:  # noqa: BLE001 - cannot tell: the jobs will find out themselves
        log.debug(f"[glattn sweep] cannot tell whether the grid is done: {e}")
        return False
    finally:
        HydraConfig.instance().cfg = previous
    return True


#: {sweep dir: (its config, whether a stop signal arrived, the handlers before)} of the parent
#: runs this process opened and has not ended yet (`guard_parent`)
_GUARDED: dict[str, tuple] = {}


def guard_parent(config, sweep_dir: Path) -> None:
    """From the moment the parent run is open until the sweep ends it (`release_parent`):
    SIGINT, SIGTERM and SIGHUP raise (KeyboardInterrupt, JobInterrupted) instead of ending the
    process where it stands, and an exit hook ends the parent KILLED (a signal) or FAILED when
    the process exits first (a signal or an error inside Hydra, between its callbacks and the
    sweeper). Main thread only."""
    from glattn.job.lifecycle import STOP_SIGNALS, JobInterrupted

    key = str(sweep_dir)
    if threading.current_thread() is not threading.main_thread() or key in _GUARDED:
        return
    seen: list[int] = []

    def handler(signum, frame):
        seen.append(signum)
        raise KeyboardInterrupt if signum == signal.SIGINT else JobInterrupted(signum)

    stops = (signal.SIGINT, *STOP_SIGNALS)
    _GUARDED[key] = (config, seen, {s: signal.signal(s, handler) for s in stops})
    atexit.register(_end_if_open, key)


def release_parent(sweep_dir: Path) -> None:
    """The parent is ended (or never opened): the signal handlers from before, no exit hook."""
    _, _, previous = _GUARDED.pop(str(sweep_dir), (None, None, {}))
    for signum, before in previous.items():
        signal.signal(signum, before)


def _end_if_open(key: str) -> None:
    if key in _GUARDED:
        config, seen, _ = _GUARDED[key]
        why = "the sweep process exited before the sweep ended its parent run"
        abort_parent(config, Path(key), KeyboardInterrupt(why) if seen else RuntimeError(why))


def abort_parent(config, sweep_dir: Path, error: BaseException) -> None:
    """End the sweep's parent run KILLED (SIGINT/SIGTERM) or FAILED when the sweep itself
    aborts; the next launch of the same grid continues it."""
    from glattn.job.protocol import read_parent_run_id
    from glattn.sweep import store

    release_parent(sweep_dir)
    run_id = read_parent_run_id(sweep_dir)
    if run_id is None or not store.tracking_enabled(config):
        return
    status = "KILLED" if isinstance(error, (KeyboardInterrupt, SystemExit)) else "FAILED"
    try:
        store.end_parent(config, run_id, status, f"{type(error).__name__}: {error}")
        print(f"[glattn sweep] parent run {run_id} ended {status}", file=sys.stderr)
    except Exception as e:  # noqa: BLE001 - never hide the original error
        print(f"[glattn sweep] could not end parent run {run_id}: {e}", file=sys.stderr)
