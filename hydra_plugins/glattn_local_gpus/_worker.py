"""Runs one local_gpus job in its own process:
``python -m ... _worker <job work dir> <result fd>``, the pickled job on stdin.

Mirrors hydra_submitit_launcher's ``BaseSubmititLauncher.__call__``: restore Hydra's
singletons, compose the job's config, run it through ``hydra.core.utils.run_job`` (so
callbacks, the job dir, .hydra/ and logging behave as with any launcher), then pickle the
JobReturn into the result pipe for the launcher. Job and result never touch the disk: the
job's config may hold secrets.

The worker ends with its launcher (`follow_launcher`): on Linux the kernel sends it SIGTERM
when the launcher dies, SIGKILL included (``prctl(PR_SET_PDEATHSIG)``); everywhere, a
watchdog thread sees the launcher gone within a second. SIGTERM ends the job's MLflow run
KILLED and writes its status.json (glattn.job.lifecycle); a job still alive
``KILL_WAIT_S`` later is killed. Its locks go with the process.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path

PR_SET_PDEATHSIG = 1  # linux/prctl.h
KILL_WAIT_S = 30  # as the launcher's: SIGTERM first, SIGKILL after this long
POLL_S = 1.0


def _launcher_gone(launcher: int) -> bool:
    return os.getppid() != launcher


def _watch(launcher: int) -> None:
    while not _launcher_gone(launcher):
        time.sleep(POLL_S)
    os.kill(os.getpid(), signal.SIGTERM)  # a no-op when PDEATHSIG already did it
    time.sleep(KILL_WAIT_S)
    os.kill(os.getpid(), signal.SIGKILL)


def follow_launcher(launcher: int | None) -> None:
    """End this process with the launcher ``launcher`` (a pid): PDEATHSIG where the kernel
    has it, and a watchdog thread."""
    if not launcher:
        return
    if sys.platform.startswith("linux"):
        import ctypes

        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
        except (OSError, AttributeError):  # no prctl: the watchdog alone
            pass
    if _launcher_gone(launcher):  # it died before prctl took effect
        raise SystemExit(f"local_gpus worker: its launcher (pid {launcher}) is gone")
    threading.Thread(
        target=_watch, args=(launcher,), name="glattn-launcher-watch", daemon=True
    ).start()


def main(work: Path, result_fd: int) -> int:
    follow_launcher(int(os.environ.get("GLATTN_LAUNCHER_PID", "0") or 0))
    os.set_inheritable(result_fd, False)  # not for the programs the job runs
    import cloudpickle
    from hydra.core.singleton import Singleton
    from hydra.core.utils import JobReturn, JobStatus, run_job, setup_globals
    from omegaconf import open_dict

    from glattn.resolvers import register

    blob = sys.stdin.buffer.read()
    register()  # before the job's config is composed and resolved in this process
    hydra_context, task_function, config, overrides, num, state = cloudpickle.loads(blob)
    del blob
    Singleton.set_state(state)
    setup_globals()
    sweep_config = hydra_context.config_loader.load_sweep_config(config, overrides)
    with open_dict(sweep_config.hydra.job):
        sweep_config.hydra.job.id = str(num)
        sweep_config.hydra.job.num = num
    ret = run_job(
        hydra_context=hydra_context,
        task_function=task_function,
        config=sweep_config,
        job_dir_key="hydra.sweep.dir",
        job_subdir_key="hydra.sweep.subdir",
    )
    try:
        blob = cloudpickle.dumps(ret)
    except Exception as e:  # noqa: BLE001 - an unpicklable return value or exception
        safe = JobReturn(overrides=ret.overrides, status=ret.status, hydra_cfg=ret.hydra_cfg)
        value = ret._return_value
        safe.return_value = (
            RuntimeError(f"{type(value).__name__}: {value}")
            if ret.status == JobStatus.FAILED
            else repr(value)
        )
        blob = cloudpickle.dumps(safe)
        print(f"job return value not picklable ({e}); sent its repr", file=sys.stderr)
    with os.fdopen(result_fd, "wb") as pipe:  # its length first (launcher's WorkerPipes)
        pipe.write(len(blob).to_bytes(8, "big") + blob)
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), int(sys.argv[2])))
