"""Phase timers: where one job's wall time goes, logged as ``time/*`` metrics.

Issue 16 item 4: on a GPU a job's fixed cost (process start to the first training step,
plus the last epoch to exit) should stay under 10 s and the Grad-CAM grid and final
artifacts under one epoch. A `PhaseTimer` starts counting at the process's own start
(``/proc/self/stat``, so interpreter start-up and imports are included), times named phases
(``with timer.phase("final_eval"): ...``) and turns them into metrics:

    time/startup_s      process start -> the first epoch begins (imports, config, data,
                        model, MLflow run; loader workers start inside epoch 1)
    time/<phase>_s      each timed phase (epochs, final_eval, gradcam, artifacts, ...)
    time/after_train_s  the end of the last epoch -> now (final evaluation, Grad-CAM,
                        artifacts: everything after training that the job waits for)
    time/fixed_s        startup + after_train: the per-job cost that is not training
    time/wall_s         process start -> now

It imports the standard library only (the trainer calls it as a callback, duck-typed).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager


def process_age_s() -> float | None:
    """Seconds since this process started (Linux ``/proc``), or None where unknown."""
    try:
        with open("/proc/self/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        start_ticks = int(fields[19])  # field 22 of proc(5), counted after the comm field
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        return max(0.0, uptime - start_ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return None


class PhaseTimer:
    """Named phase durations of one job (seconds, on `clock`). `age_s`: how long the
    process had run when the timer was made (default `process_age_s`, else 0)."""

    def __init__(self, clock: Callable[[], float] = time.perf_counter, age_s: float | None = None):
        self.clock = clock
        age = process_age_s() if age_s is None else age_s
        self.origin = clock() - (age or 0.0)  # the process start, on `clock`
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
