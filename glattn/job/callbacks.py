"""What a training job does around each epoch, as `glattn.job.trainer.Callback`s:

- `Checkpointer`: ``last.pt`` every epoch (all a resume needs) and ``best.pt`` when the
  monitored metric improved (weights and record only, `glattn.checkpoint.slim`);
- `Profiler`: ``trainer.profile``: the first epoch under torch.profiler (Chrome trace and a
  table of the top operators, in the run folder and as MLflow artifacts ``profile/``);
- `HistoryCSV`: ``training_log.csv``, every epoch so far (complete after a resume);
- `MLflowMetrics`: each epoch's row as MLflow metrics at step = epoch (after a resume, the
  checkpointed epochs the run lacks).

`training_callbacks` lists them in the order they run: the checkpoint is on disk before
anything reports the epoch.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pandas as pd

from glattn.checkpoint import atomic_save, slim
from glattn.job.trainer import Callback, Trainer

log = logging.getLogger(__name__)


class Checkpointer(Callback):
    """Saves ``ckpt_dir/last.pt`` every epoch and ``best.pt`` on improvement; ``record``
    (config, fingerprint, MLflow run id, choices, training counts) goes into both."""

    def __init__(self, ckpt_dir: Path, record: dict):
        self.ckpt_dir, self.record = Path(ckpt_dir), record

    def on_epoch_end(self, trainer: Trainer, row: dict) -> None:
        ckpt = {**trainer.state_dict(), **self.record}
        if trainer.state.best_epoch == row["epoch"]:
            atomic_save(slim(ckpt), self.ckpt_dir / "best.pt")
            log.debug("saved best checkpoint (epoch %d)", row["epoch"])
        atomic_save(ckpt, self.ckpt_dir / "last.pt")
        log.debug("saved %s", self.ckpt_dir / "last.pt")


def write_history(run_dir: Path, history: list[dict]) -> Path:
    """training_log.csv in the run dir: every epoch so far (one row each)."""
    path = Path(run_dir) / "training_log.csv"
    tmp = path.with_name(".training_log.csv.tmp")
    pd.DataFrame(history).to_csv(tmp, index=False)
    os.replace(tmp, path)
    return path


class HistoryCSV(Callback):
    """Keeps ``run_dir/training_log.csv`` complete, also after a resume."""

    def __init__(self, run_dir: Path):
        self.run_dir = Path(run_dir)

    def on_fit_start(self, trainer: Trainer) -> None:
        if trainer.state.history:
            write_history(self.run_dir, trainer.state.history)

    def on_epoch_end(self, trainer: Trainer, row: dict) -> None:
        write_history(self.run_dir, trainer.state.history)


class MLflowMetrics(Callback):
    """Logs each epoch's row to the run at step = epoch."""

    def __init__(self, tracker):
        self.tracker = tracker

    def _log(self, row: dict) -> None:
        self.tracker.log_metrics({k: v for k, v in row.items() if k != "epoch"}, row["epoch"])

    def on_fit_start(self, trainer: Trainer) -> None:
        for row in trainer.state.history:  # the tracker skips (metric, step) pairs it has
            self._log(row)

    def on_epoch_end(self, trainer: Trainer, row: dict) -> None:
        self._log(row)


class Profiler(Callback):
    """``debug=profile``: the first epoch of a fresh fit under torch.profiler."""

    def __init__(self, run_dir: Path, tracker):
        self.run_dir, self.tracker = Path(run_dir), tracker
        self.prof = None
        self.pending = False

    def on_fit_start(self, trainer: Trainer) -> None:
        self.pending = not trainer.state.history  # a resumed fit is not profiled

    def on_epoch_start(self, trainer: Trainer) -> None:
        if not self.pending:
            return
        from torch.profiler import ProfilerActivity, profile

        activities = [ProfilerActivity.CPU]
        if trainer.rt.device.type == "cuda":
            activities.append(ProfilerActivity.CUDA)
        self.prof = profile(activities=activities)
        self.prof.__enter__()

    def on_epoch_end(self, trainer: Trainer, row: dict) -> None:
        if self.prof is None:
            return
        prof, self.prof, self.pending = self.prof, None, False
        prof.__exit__(None, None, None)
        folder = self.run_dir / "profile"
        folder.mkdir(parents=True, exist_ok=True)
        trace = folder / "trace.json.gz"  # Perfetto and chrome://tracing read it gzipped
        prof.export_chrome_trace(str(trace))
        cuda = trainer.rt.device.type == "cuda"
        sort = "self_cuda_time_total" if cuda else "self_cpu_time_total"
        table = prof.key_averages().table(sort_by=sort, row_limit=30)
        (folder / "top_operators.txt").write_text(table + "\n")
        log.info("profile of epoch %d (%s):\n%s", row["epoch"], sort, table)
        log.info("profiler trace: %s (open in https://ui.perfetto.dev or chrome://tracing)", trace)
        self.tracker.log_artifacts([trace, folder / "top_operators.txt"], "profile")


def training_callbacks(
    ckpt_dir: Path, run_dir: Path, tracker, record: dict, profile: bool
) -> list[Callback]:
    """A training job's callbacks, in the order they run after each epoch."""
    callbacks: list[Callback] = [Checkpointer(ckpt_dir, record)]
    if profile:
        callbacks.append(Profiler(run_dir, tracker))
    return [*callbacks, HistoryCSV(run_dir), MLflowMetrics(tracker)]
