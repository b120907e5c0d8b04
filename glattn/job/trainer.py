"""The epoch loop and early stopping: `Trainer.fit`, with exact resume.

Each epoch trains once over the train loader, evaluates the val loader, steps the scheduler
(ReduceLROnPlateau on ``trainer.monitor``) and updates the early-stopping count; everything
else (the checkpoint of every epoch, the history CSV, MLflow metrics, the profiler) is a
callback (glattn.job.callbacks). `Trainer.state_dict` holds what an exact resume needs: the
modules' states, the global RNG streams, the train loader's own generators and any
``stateful`` object (a batched augmentation's generator). Early stopping follows Prechelt,
"Early Stopping - But When?" (1998): stop after ``trainer.early_stopping_patience`` epochs
without improvement of the monitored metric.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass, field

import torch
from omegaconf import DictConfig

from glattn.engine import evaluate, train_one_epoch
from glattn.logging_utils import clock
from glattn.optim import monitor_mode
from glattn.runtime import Runtime, rng_state, set_rng_state

log = logging.getLogger(__name__)


@dataclass
class FitState:
    """Loop state that a checkpoint carries besides the modules' own state_dicts."""

    epoch: int = 0  # last completed epoch (1-based)
    best_value: float | None = None
    best_epoch: int = 0
    bad_epochs: int = 0
    stopped_early: bool = False
    finished: bool = False  # final evaluation and artifacts done
    history: list = field(default_factory=list)  # one dict of metrics per epoch


class Callback:
    """What the trainer calls; override the steps you need (all do nothing here)."""

    def on_fit_start(self, trainer: Trainer) -> None:
        """Before the first epoch of this process (after a resume: ``state.history`` holds
        the checkpointed epochs)."""

    def on_epoch_start(self, trainer: Trainer) -> None:
        """Before epoch ``trainer.state.epoch + 1`` trains."""

    def on_epoch_end(self, trainer: Trainer, row: dict) -> None:
        """After the epoch's metrics ``row`` are in ``trainer.state`` (its ``best_epoch``
        says whether it improved)."""


@dataclass
class Trainer:
    """The objects one run trains with, the loop's settings (``cfg.trainer``) and state."""

    model: torch.nn.Module  # possibly torch.compile'd; checkpoints hold the module inside
    loss_fn: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: object
    rt: Runtime
    loaders: dict
    class_names: tuple
    settings: DictConfig  # cfg.trainer: max_epochs, monitor, early_stopping_patience
    callbacks: list = field(default_factory=list)
    # Anything else whose state a resume needs (e.g. a batched augmentation's generator):
    # name -> an object with state_dict()/load_state_dict(), or a torch.Generator.
    stateful: dict = field(default_factory=dict)
    state: FitState = field(default_factory=FitState)

    @property
    def module(self) -> torch.nn.Module:
        return getattr(self.model, "_orig_mod", self.model)  # torch.compile wrapper

    def _generators(self) -> list[torch.Generator]:
        """The train loader's own generators (shuffle / weighted draws, worker seeds)."""
        loader = self.loaders.get("train")
        found = []
        for gen in (
            getattr(loader, "generator", None),
            getattr(getattr(loader, "sampler", None), "generator", None),
        ):
            if isinstance(gen, torch.Generator) and all(gen is not g for g in found):
                found.append(gen)
        return found

    def state_dict(self) -> dict:
        """Everything an exact resume needs (a checkpoint adds its record to it)."""
        return {
            "model": self.module.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.rt.scaler.state_dict() if self.rt.scaler else None,
            "rng": rng_state(),
            "loader_rng": [g.get_state() for g in self._generators()],
            "epoch": self.state.epoch,
            "state": asdict(self.state),
            "stateful": {name: _state_of(obj) for name, obj in self.stateful.items()},
        }

    def restore(self, ckpt: dict) -> None:
        """Continue from a checkpoint: a ``last.pt`` restores everything `state_dict` holds;
        a finished run's ``best.pt`` (no optimizer) its weights and loop state only."""
        self.module.load_state_dict(ckpt["model"])
        if "optimizer" not in ckpt:
            self.state = FitState(**ckpt["state"])
            return
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        if self.rt.scaler is not None and ckpt["scaler"] is not None:
            self.rt.scaler.load_state_dict(ckpt["scaler"])
        self.state = FitState(**ckpt["state"])
        set_rng_state(ckpt["rng"])
        for gen, state in zip(self._generators(), ckpt.get("loader_rng", [])):
            gen.set_state(state)
        saved = ckpt.get("stateful") or {}
        for name, obj in self.stateful.items():
            if name in saved:
                _load_state(obj, saved[name])
            else:
                log.warning("checkpoint has no state for %r: it starts afresh", name)

    # ------------------------------------------------------------------------- the loop
    def improved(self, value: float) -> bool:
        if value is None or not math.isfinite(value):
            return False
        best = self.state.best_value
        if best is None:
            return True
        return value > best if monitor_mode(self.settings) == "max" else value < best

    def should_stop(self) -> bool:
        patience = self.settings.early_stopping_patience
        return patience is not None and self.state.bad_epochs >= patience

    def run_epoch(self) -> dict:
        """Train and validate one epoch, step the scheduler, update the state."""
        epoch = self.state.epoch + 1
        start = time.perf_counter()
        train = train_one_epoch(
            self.model, self.loaders["train"], self.loss_fn, self.optimizer, self.rt, epoch
        )
        val = evaluate(self.model, self.loaders["val"], self.loss_fn, self.rt, self.class_names)
        return self.end_epoch(epoch, train, val, start)

    def end_epoch(self, epoch: int, train: dict, val: dict, start: float) -> dict:
        """The epoch's row, scheduler step, best/early-stopping update (split out of
        `run_epoch` so that glattn.fused can train several members' epochs at once)."""
        lr = self.optimizer.param_groups[0]["lr"]
        row = {
            "epoch": epoch,
            "train/loss": train["loss"],
            "train/acc": train["acc"],
            "val/loss": val["loss"],
            "val/acc": val["acc"],
            "val/balanced_acc": val["balanced_acc"],
            "val/macro_f1": val["macro_f1"],
            "val/auc": val["auc"],
            "lr": lr,
            "time/epoch_s": time.perf_counter() - start,
            "perf/train_img_s": train["img_s"],
        }
        monitor = str(self.settings.monitor)
        if monitor not in row:
            raise KeyError(f"trainer.monitor={monitor!r} is not an epoch metric: {list(row)}")
        value = row[monitor]
        if isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            self.scheduler.step(value)
        else:
            self.scheduler.step()
        new_lr = self.optimizer.param_groups[0]["lr"]
        if new_lr != lr:
            log.info("learning rate %.3g -> %.3g after epoch %d", lr, new_lr, epoch)
        best = self.improved(value)
        self.state.epoch = epoch
        if best:
            self.state.best_value, self.state.best_epoch, self.state.bad_epochs = value, epoch, 0
        else:
            self.state.bad_epochs += 1
        self.state.history.append(row)
        self.state.stopped_early = self.should_stop()
        return row

    def fit(self) -> FitState:
        """Train until ``max_epochs`` or early stopping; the callbacks see every epoch."""
        max_epochs = int(self.settings.max_epochs)
        for callback in self.callbacks:
            callback.on_fit_start(self)
        while self.state.epoch < max_epochs and not self.state.stopped_early:
            for callback in self.callbacks:
                callback.on_epoch_start(self)
            row = self.run_epoch()
            for callback in self.callbacks:
                callback.on_epoch_end(self, row)
            self._log_epoch(row, max_epochs)
        return self.state

    def _log_epoch(self, row: dict, max_epochs: int) -> None:
        log.info(
            "epoch %d/%d  train/loss %.4f  train/acc %.3f  val/loss %.4f  "
            "val/balanced_acc %.3f  val/auc %.3f  lr %.2g  %.1fs%s",
            row["epoch"],
            max_epochs,
            row["train/loss"],
            row["train/acc"],
            row["val/loss"],
            row["val/balanced_acc"],
            row["val/auc"],
            row["lr"],
            row["time/epoch_s"],
            "  *best*" if self.state.best_epoch == row["epoch"] else "",
        )
        eta = run_eta(
            [r["time/epoch_s"] for r in self.state.history],
            row["epoch"],
            max_epochs,
            self.state.bad_epochs,
            self.settings.early_stopping_patience,
        )
        if eta and not self.state.stopped_early:
            log.info(eta)
        if self.state.stopped_early:
            log.info(
                "early stopping after epoch %d: %s has not improved for %d epochs "
                "(best %.4f at epoch %d)",
                row["epoch"],
                self.settings.monitor,
                self.state.bad_epochs,
                self.state.best_value or float("nan"),
                self.state.best_epoch,
            )


def run_eta(
    epoch_s: list[float], epoch: int, max_epochs: int, bad_epochs: int, patience: int | None
) -> str | None:
    """``run ETA 0:01:05 (5 of 10 epochs left, 13.0 s an epoch; early stopping would end it
    after epoch 8, in 0:00:39, if val does not improve)`` after each epoch; None at the end.
    The epoch time is the mean after the first epoch (which also warms up)."""
    left = max_epochs - epoch
    if left <= 0 or not epoch_s:
        return None
    recent = epoch_s[1:] if len(epoch_s) > 1 else epoch_s
    per_epoch = sum(recent) / len(recent)
    text = f"run ETA {clock(left * per_epoch)} ({left} of {max_epochs} epochs left, "
    text += f"{per_epoch:.1f} s an epoch"
    if patience is not None and patience - bad_epochs < left:
        until = max(patience - bad_epochs, 0)
        text += (
            f"; early stopping would end it after epoch {epoch + until}, in "
            f"{clock(until * per_epoch)}, if the monitored metric does not improve"
        )
    return text + ")"


def _state_of(obj):
    return obj.get_state() if isinstance(obj, torch.Generator) else obj.state_dict()


def _load_state(obj, state) -> None:
    if isinstance(obj, torch.Generator):
        obj.set_state(state)
    else:
        obj.load_state_dict(state)
