"""``hydra/launcher=local_gpus``: a GPU-pool launcher for one workstation.

``submitit_local`` is not a scheduler: it gives every job CUDA_VISIBLE_DEVICES=0..n-1 and
starts all jobs at once (docs/sweeps.md). This launcher keeps a pool of slots,
``jobs_per_gpu`` per GPU (``auto``, the default: as many as fit the GPU's free memory and
the CPU cores, glattn.sweep.packing; printed with its reason), starts each job as a
subprocess pinned to its GPU through CUDA_VISIBLE_DEVICES (so the pinning is real: the job
sees only its GPU as ``cuda:0``), and starts the next job as soon as a slot frees. Without
GPUs it runs ``n_jobs`` CPU jobs at once and splits the cores between them
(OMP_NUM_THREADS / MKL_NUM_THREADS).

Each job is pickled (cloudpickle, as submitit does) with Hydra's context and singleton state
and handed to ``_worker.py`` through a pipe (its stdin), never a file: the job's config may
hold secrets. The worker runs it through Hydra's own ``run_job`` and sends the JobReturn
back through a second pipe; its stdout/stderr go to ``<sweep dir>/.local_gpus/<num>/
worker.log`` (mode 0600, the folder 0700). A job that dies without reporting (killed,
segfault) becomes a FAILED JobReturn; the others go on. A worker ends with its launcher,
whatever ended the launcher (SIGKILL included): `_worker.follow_launcher`.

``order: lpt`` (default) starts the jobs with the largest plan-mode cost first (longest
processing time first, glattn.sweep.schedule): a long job started last would otherwise run
alone at the end. Job numbers (output dirs, results) stay in the grid's order.
"""

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, configure_log, filter_overrides, setup_globals
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig

from glattn.sweep.schedule import local_slots, parse_gpus, visible_gpus

log = logging.getLogger(__name__)
KILL_WAIT_S = 30  # seconds an interrupted job gets between SIGTERM and SIGKILL
PRIVATE_DIR, PRIVATE_FILE = 0o700, 0o600  # job folders and files: the owner's only


class WorkerPipes:
    """The two pipes of one worker: the job's pickle written to its stdin, its JobReturn
    read from ``result_fd``; each in a thread, so neither end waits on the launcher's loop."""

    def __init__(self, proc: subprocess.Popen, blob: bytes, result_fd: int) -> None:
        self.result = b""
        self._reader = threading.Thread(target=self._read, args=(result_fd,), daemon=True)
        self._writer = threading.Thread(target=self._write, args=(proc, blob), daemon=True)
        self._reader.start()
        self._writer.start()

    @staticmethod
    def _write(proc: subprocess.Popen, blob: bytes) -> None:
        try:
            proc.stdin.write(blob)
            proc.stdin.close()
        except OSError:  # the worker died before reading it: its exit status tells
            pass

    def _read(self, fd: int) -> None:
        """A length (8 bytes, big-endian), then that many bytes: no wait for the pipe's end,
        which a process the job forked (a data loader's worker) may still hold."""
        with os.fdopen(fd, "rb") as pipe:
            size = int.from_bytes(pipe.read(8) or b"\0", "big")
            blob = pipe.read(size) if size else b""
            self.result = blob if len(blob) == size else b""

    def collect(self, timeout: float = 10.0) -> bytes:
        self._reader.join(timeout)
        return self.result


@dataclass
class LocalGpusConf:
    _target_: str = "hydra_plugins.glattn_local_gpus.local_gpus_launcher.LocalGpusLauncher"
    gpus: Any | None = None  # null: visible GPUs; []: CPU only; [0, 1] or "0,1": these ids
    jobs_per_gpu: Any = "auto"  # "auto" (glattn.sweep.packing) or an integer >= 1
    n_jobs: int | None = None  # CPU: parallel jobs (default 1); GPU: optional cap
    threads_per_job: int | None = None  # default: CPU cores // parallel jobs
    poll_s: float = 0.2
    order: str = "lpt"  # lpt: costliest (plan-mode cost) first | given: the grid's order


ConfigStore.instance().store(
    group="hydra/launcher", name="local_gpus_schema", node=LocalGpusConf, provider="glattn"
)


class LocalGpusLauncher(Launcher):
    def __init__(
        self,
        gpus: Any = None,
        jobs_per_gpu: int | str = "auto",
        n_jobs: int | None = None,
        threads_per_job: int | None = None,
        poll_s: float = 0.2,
        order: str = "lpt",
    ) -> None:
        for key, value in (
            ("jobs_per_gpu", None if jobs_per_gpu == "auto" else jobs_per_gpu),
            ("n_jobs", n_jobs),
            ("threads_per_job", threads_per_job),
        ):
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError(
                    f"hydra.launcher.{key}={value!r}: expected an integer >= 1"
                    + (" or auto" if key == "jobs_per_gpu" else "")
                )
        if order not in ("lpt", "given"):
            raise ValueError(f"hydra.launcher.order={order!r}: expected 'lpt' or 'given'")
        self.order = order
        self.gpus = parse_gpus(gpus)
        self.jobs_per_gpu = jobs_per_gpu
        self.n_jobs = n_jobs
        self.threads_per_job = threads_per_job
        self.poll_s = float(poll_s)
        self.config: DictConfig | None = None
        self.hydra_context: HydraContext | None = None
        self.task_function: TaskFunction | None = None

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        self.config = config
        self.hydra_context = hydra_context
        self.task_function = task_function

    def slots(self) -> list[str | None]:
        """One entry per job that may run at once: a GPU id, or None for a CPU slot."""
        per_gpu = 1 if self.jobs_per_gpu == "auto" else self.jobs_per_gpu  # until decided
        return local_slots(self.gpus, per_gpu, self.n_jobs)

    def job_env(self, gpu: str | None, parallel: int) -> dict[str, str]:
        threads = self.threads_per_job or max(1, (os.cpu_count() or 1) // parallel)
        env = dict(os.environ)
        env.update(
            CUDA_VISIBLE_DEVICES="" if gpu is None else gpu,
            OMP_NUM_THREADS=str(threads),
            MKL_NUM_THREADS=str(threads),
            GLATTN_LAUNCHER_SLOT=f"gpu{gpu}" if gpu is not None else "cpu",
        )
        # the worker imports what this process imports: the app's dir (run.py's, where the
        # repository's hydra_plugins/ and glattn/ live when not installed) and the cwd
        extra = [sys.path[0], os.getcwd(), os.environ.get("PYTHONPATH", "")]
        env["PYTHONPATH"] = os.pathsep.join(p for p in extra if p)
        return env

    def launch(
        self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int
    ) -> Sequence[JobReturn]:
        assert self.config is not None and self.hydra_context is not None
        setup_globals()
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        work = sweep_dir / ".local_gpus"
        work.mkdir(parents=True, exist_ok=True)
        work.chmod(PRIVATE_DIR)
        self._decide_jobs_per_gpu(job_overrides)
        slots = self.slots()
        kind = "GPU " + ",".join(sorted(set(map(str, slots)))) if slots[0] is not None else "CPU"
        log.info(f"Launching {len(job_overrides)} jobs, at most {len(slots)} at once ({kind})")

        state = Singleton.get_state()
        pending = list(enumerate(job_overrides, start=initial_job_idx))
        if self.order == "lpt" and len(pending) > 1:
            from glattn.sweep.lpt import lpt_jobs

            pending = [pending[i] for i in lpt_jobs(self, job_overrides)]
        free = list(range(len(slots)))
        running: dict[int, tuple[subprocess.Popen, int, Sequence[str], float, WorkerPipes]] = {}
        results: dict[int, JobReturn] = {}
        try:
            while pending or running:
                while pending and free:
                    slot = free.pop(0)
                    num, overrides = pending.pop(0)
                    proc, pipes = self._start(
                        work / str(num), num, overrides, state, slots[slot], slots
                    )
                    running[slot] = (proc, num, overrides, time.monotonic(), pipes)
                for slot, (proc, num, overrides, t0, pipes) in list(running.items()):
                    if proc.poll() is None:
                        continue
                    del running[slot]
                    free.append(slot)
                    ret = self._collect(work / str(num), proc.returncode, overrides, pipes)
                    results[num] = ret
                    log.info(f"\t#{num} {ret.status.name} in {time.monotonic() - t0:.1f}s")
                if running:
                    time.sleep(self.poll_s)
        finally:
            # interrupted (SIGINT, or SIGTERM turned into an interrupt by the glattn sweeper):
            # SIGTERM our own children (each ends its MLflow run KILLED and writes
            # status.json), give them KILL_WAIT_S, then SIGKILL what is left
            for proc, *_ in running.values():
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
            for proc, *_ in running.values():
                try:
                    proc.wait(timeout=KILL_WAIT_S)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        return [results[initial_job_idx + i] for i in range(len(job_overrides))]

    def _decide_jobs_per_gpu(self, job_overrides: Sequence[Sequence[str]]) -> None:
        """jobs_per_gpu=auto on GPUs: choose once per launch (glattn.sweep.packing), print
        the choice and its reason; then jobs_per_gpu is that number."""
        gpus = visible_gpus() if self.gpus is None else self.gpus
        if self.jobs_per_gpu != "auto" or not gpus:
            return
        from glattn.sweep.packing import choose
        from glattn.sweep.plan import build_plan

        decision = choose(
            self,
            job_overrides,
            gpus,
            lambda: build_plan(self, [list(j) for j in job_overrides])[0],
        )
        self.jobs_per_gpu = decision.jobs_per_gpu
        log.info(decision.line())
        print(f"[glattn] {decision.line()}", flush=True)

    def _start(
        self, job_dir: Path, num: int, overrides: Sequence[str], state, gpu, slots: list
    ) -> tuple[subprocess.Popen, WorkerPipes]:
        """Job `num` as a worker process on `gpu` (None: CPU): its pickled spec goes through
        the worker's stdin, its result comes back through a pipe; nothing on disk."""
        import cloudpickle

        job_dir.mkdir(parents=True, exist_ok=True)
        job_dir.chmod(PRIVATE_DIR)
        spec = (self.hydra_context, self.task_function, self.config, list(overrides), num, state)
        blob = cloudpickle.dumps(spec)
        log_fd = os.open(job_dir / "worker.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.fchmod(log_fd, PRIVATE_FILE)  # also a log left by an older launcher
        result_fd, result_w = os.pipe()
        env = self.job_env(gpu, len(slots))
        env["GLATTN_LAUNCHER_PID"] = str(os.getpid())  # the worker ends when it is gone
        try:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "hydra_plugins.glattn_local_gpus._worker",
                    str(job_dir),
                    str(result_w),
                ],
                env=env,
                stdin=subprocess.PIPE,
                stdout=log_fd,
                stderr=subprocess.STDOUT,
                pass_fds=(result_w,),
            )
        finally:
            os.close(log_fd)
            os.close(result_w)
        where = "CPU" if gpu is None else f"GPU {gpu}"
        log.info(f"\t#{num} on {where}: {' '.join(filter_overrides(overrides))}")
        return proc, WorkerPipes(proc, blob, result_fd)

    @staticmethod
    def _collect(
        job_dir: Path, returncode: int, overrides: Sequence[str], pipes: WorkerPipes
    ) -> JobReturn:
        import cloudpickle

        blob = pipes.collect()
        if returncode == 0 and blob:
            return cloudpickle.loads(blob)
        ret = JobReturn(overrides=list(overrides), status=JobStatus.FAILED)
        ret.return_value = RuntimeError(
            f"job process exited with code {returncode} before reporting a result; "
            f"see {job_dir / 'worker.log'}"
        )
        return ret
