"""Phase timers: where one job's wall time goes, logged as ``time/*`` metrics.

On a GPU a job's fixed cost (its start to the first training step, plus the last epoch to
exit) should stay under 10 s and the Grad-CAM grid and final artifacts under one epoch. A
`PhaseTimer` counts from the job's own start (`job_started`), times named phases
(``with timer.phase("final_eval"): ...``) and turns them into metrics:

    time/startup_s      the job's start -> the first epoch begins (config, data, model,
                        MLflow run; loader workers start inside epoch 1)
    time/<phase>_s      each timed phase (epochs, final_eval, gradcam, artifacts, ...)
    time/after_train_s  the end of the last epoch -> now (final evaluation, Grad-CAM,
                        artifacts: everything after training that the job waits for)
    time/fixed_s        startup + after_train: the per-job cost that is not training
    time/wall_s         the job's start -> now

The job's start is where its task begins (glattn.job.lifecycle, the fused task). A process
started for the job (a single run, a local_gpus worker, a SLURM job) counts from glattn's
import instead, so the interpreter's imports are the job's; whatever ran before that in a
shell chain (``pip install ... && glattn``) is not. The package imports this module first
(`IMPORTED_AT`), never reading the process's start from ``/proc``: in a container that
clock may count from elsewhere. A job that shares its process with the sweep that launched
it (Hydra's basic launcher) or with earlier jobs counts from its own start.

It imports the standard library only (the trainer calls it as a callback, duck-typed).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

#: `time.perf_counter` when glattn was imported (glattn/__init__ imports this module first)
IMPORTED_AT = time.perf_counter()
_origin: float | None = None  # the current job's start, on time.perf_counter
_jobs = 0  # jobs started in this process


def job_started(owns_process: bool) -> float:
    """Mark the start of a job; returns its origin on `time.perf_counter`. `owns_process`:
    the process was started for this job (see the module docstring); only its first job
    counts from glattn's import."""
    global _origin, _jobs
    _origin = IMPORTED_AT if (owns_process and _jobs == 0) else time.perf_counter()
    _jobs += 1
    return _origin


def job_origin() -> float:
    """The current job's start (`job_started`), else glattn's import."""
    return IMPORTED_AT if _origin is None else _origin


class PhaseTimer:
    """Named phase durations of one job (seconds, on `clock`). `age_s`: how long the job
    had run when the timer was made (default: since `job_origin`, on `time.perf_counter`)."""

    def __init__(self, clock: Callable[[], float] = time.perf_counter, age_s: float | None = None):
        self.clock = clock
        if age_s is None:
            age_s = max(time.perf_counter() - job_origin(), 0.0)
        self.origin = clock() - age_s  # the job's start, on `clock`
        self.seconds: dict[str, float] = {}
        self.first_epoch_at: float | None = None
        self.last_epoch_end: float | None = None
        self._epoch_at: float | None = None

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Time the block; a phase timed twice adds up (e.g. one eval pass per split)."""
        start = self.clock()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + self.clock() - start

    def epoch_started(self) -> None:
        """Call at the start of every epoch: the first call ends the start-up phase."""
        self._epoch_at = self.clock()
        if self.first_epoch_at is None:
            self.first_epoch_at = self._epoch_at

    def epoch_ended(self) -> None:
        """Call at the end of every epoch: the last call starts the after-training phase;
        the epochs' own time adds up as ``time/epochs_s``."""
        self.last_epoch_end = self.clock()
        if self._epoch_at is not None:
            elapsed = self.last_epoch_end - self._epoch_at
            self.seconds["epochs"] = self.seconds.get("epochs", 0.0) + elapsed
            self._epoch_at = None

    # the trainer's callback protocol (glattn.job.trainer.Callback), duck-typed: this module
    # imports nothing of glattn; the timer is the last callback, so an epoch's checkpoint
    # and logging count in the epoch
    def on_fit_start(self, trainer) -> None:
        pass

    def on_epoch_start(self, trainer) -> None:
        self.epoch_started()

    def on_epoch_end(self, trainer, row) -> None:
        self.epoch_ended()

    def metrics(self) -> dict[str, float]:
        """The ``time/*`` metrics so far (see the module docstring)."""
        now = self.clock()
        out = {f"time/{name}_s": float(s) for name, s in self.seconds.items()}
        out["time/wall_s"] = now - self.origin
        if self.first_epoch_at is not None:
            out["time/startup_s"] = self.first_epoch_at - self.origin
        if self.last_epoch_end is not None:
            out["time/after_train_s"] = now - self.last_epoch_end
        if "time/startup_s" in out and "time/after_train_s" in out:
            out["time/fixed_s"] = out["time/startup_s"] + out["time/after_train_s"]
        return out

    def summary(self) -> str:
        """One log line: the phases, largest first."""
        items = sorted(self.metrics().items(), key=lambda kv: -kv[1])
        return ", ".join(
            f"{k.removeprefix('time/').removesuffix('_s')} {v:.1f}s" for k, v in items
        )
