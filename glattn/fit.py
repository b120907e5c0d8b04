"""The training loop: epochs, early stopping, checkpoints every epoch and exact resume.

Checkpoint files, their folder and their lock live in `glattn.checkpoint`; the optimizer
and scheduler registries in `glattn.optim`. Early stopping follows Prechelt, "Early
Stopping - But When?" (1998).
"""

from __future__ import annotations

import logging
import math
import os
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from omegaconf import DictConfig

from glattn.checkpoint import atomic_save, checkpoint_dir, load_checkpoint, slim
from glattn.config import config_fingerprint, resolved_config
from glattn.engine import Runtime, evaluate, train_one_epoch
from glattn.optim import build_optimizer, build_scheduler, monitor_mode

log = logging.getLogger(__name__)

# Kept importable from here for existing callers (glattn.sweep.plan/transfer, tests);
# their homes are glattn.config, glattn.checkpoint and glattn.optim.
atomic_torch_save = atomic_save
__all__ = [
    "FitState",
    "Loop",
    "atomic_torch_save",
    "build_optimizer",
    "build_scheduler",
    "checkpoint_dir",
    "config_fingerprint",
    "load_checkpoint",
    "make_runtime",
    "monitor_mode",
    "resolved_config",
    "seed_everything",
]


# ----------------------------------------------------------------------------- runtime
def seed_everything(seed: int, deterministic: bool) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
    else:
        torch.use_deterministic_algorithms(False)
        torch.backends.cudnn.benchmark = torch.cuda.is_available()


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"trainer.device={name!r}: CUDA is not available on this machine")
    return device


def make_runtime(trainer: DictConfig) -> Runtime:
    """Device, AMP dtype (+GradScaler for fp16 on CUDA), channels_last, clipping."""
    device = resolve_device(str(trainer.device))
    amp = str(trainer.amp).lower()
    dtype = None
    if amp == "auto":
        if device.type == "cuda":
            dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    elif amp == "bf16":
        dtype = torch.bfloat16
    elif amp == "fp16":
        if device.type != "cuda":
            raise ValueError("trainer.amp=fp16 needs CUDA (GradScaler); use bf16 or none")
        dtype = torch.float16
    scaler = torch.amp.GradScaler("cuda") if dtype == torch.float16 else None
    channels_last = trainer.channels_last
    if str(channels_last) == "auto":
        channels_last = device.type == "cuda"
    return Runtime(
        device=device,
        amp_dtype=dtype,
        scaler=scaler,
        channels_last=bool(channels_last),
        grad_clip=trainer.grad_clip,
        log_every_n_steps=int(trainer.log_every_n_steps),
    )


# ----------------------------------------------------------------------------- checkpoints
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


def _rng_state() -> dict:
    np_state = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
        "python": random.getstate(),
    }


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    name, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))


def _state_of(obj):
    return obj.get_state() if isinstance(obj, torch.Generator) else obj.state_dict()


def _load_state(obj, state) -> None:
    if isinstance(obj, torch.Generator):
        obj.set_state(state)
    else:
        obj.load_state_dict(state)


@dataclass
class Loop:
    """The objects one run trains with (passed around instead of many arguments)."""

    cfg: DictConfig
    model: torch.nn.Module
    loss_fn: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: object
    rt: Runtime
    loaders: dict
    class_names: tuple
    ckpt_dir: Path
    run_dir: Path
    tracker: object
    run_id: str | None = None
    state: FitState = field(default_factory=FitState)
    choices: dict = field(default_factory=dict)  # config-group choices, for eval-run tags
    train_counts: list = field(default_factory=list)
    # Anything else whose state a resume needs (e.g. a batched augmentation's generator):
    # name -> an object with state_dict()/load_state_dict(), or a torch.Generator. Saved in
    # checkpoint["stateful"][name] every epoch and restored by `restore`.
    stateful: dict = field(default_factory=dict)

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

    def checkpoint(self) -> dict:
        module = getattr(self.model, "_orig_mod", self.model)  # torch.compile wrapper
        return {
            "model": module.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.rt.scaler.state_dict() if self.rt.scaler else None,
            "rng": _rng_state(),
            "loader_rng": [g.get_state() for g in self._generators()],
            "epoch": self.state.epoch,
            "state": asdict(self.state),
            "stateful": {name: _state_of(obj) for name, obj in self.stateful.items()},
            "config": resolved_config(self.cfg, masked=True),
            "mlflow_run_id": self.run_id,
            "fingerprint": self.ckpt_dir.name,
            "choices": dict(self.choices),
            "train_counts": [int(c) for c in self.train_counts],
        }

    def save(self, best: bool) -> None:
        """last.pt: everything a resume needs; best.pt: weights and record only (`slim`)."""
        ckpt = self.checkpoint()
        if best:
            atomic_save(slim(ckpt), self.ckpt_dir / "best.pt")
            log.debug("saved best checkpoint (epoch %d)", self.state.epoch)
        atomic_save(ckpt, self.ckpt_dir / "last.pt")
        log.debug("saved %s", self.ckpt_dir / "last.pt")

    def restore(self, ckpt: dict) -> None:
        module = getattr(self.model, "_orig_mod", self.model)
        module.load_state_dict(ckpt["model"])
        if "optimizer" not in ckpt:  # a finished run's best.pt: weights and loop state only
            self.state = FitState(**ckpt["state"])
            return
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        if self.rt.scaler is not None and ckpt["scaler"] is not None:
            self.rt.scaler.load_state_dict(ckpt["scaler"])
        self.state = FitState(**ckpt["state"])
        _set_rng_state(ckpt["rng"])
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
        return value > best if monitor_mode(self.cfg.trainer) == "max" else value < best

    def should_stop(self) -> bool:
        patience = self.cfg.trainer.early_stopping_patience
        return patience is not None and self.state.bad_epochs >= patience

    def run_epoch(self) -> dict:
        epoch = self.state.epoch + 1
        start = time.perf_counter()
        train = train_one_epoch(
            self.model, self.loaders["train"], self.loss_fn, self.optimizer, self.rt, epoch
        )
        val = evaluate(self.model, self.loaders["val"], self.loss_fn, self.rt, self.class_names)
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
        monitor = str(self.cfg.trainer.monitor)
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
        self.save(best)
        return row

    def fit(self) -> FitState:
        """Train until max_epochs or early stopping; logs each epoch (console, CSV, MLflow)."""
        max_epochs = int(self.cfg.trainer.max_epochs)
        monitor = self.cfg.trainer.monitor
        if self.state.history:  # resumed: the CSV and the run get every checkpointed epoch
            self.write_history()
            for row in self.state.history:  # the tracker skips (metric, step) pairs it has
                self.tracker.log_metrics(
                    {k: v for k, v in row.items() if k != "epoch"}, step=row["epoch"]
                )
        while self.state.epoch < max_epochs and not self.state.stopped_early:
            if self.cfg.trainer.get("profile") and not self.state.history:
                row = self.profiled_epoch()
            else:
                row = self.run_epoch()
            self.write_history()
            self.tracker.log_metrics(
                {k: v for k, v in row.items() if k != "epoch"}, step=row["epoch"]
            )
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
            if self.state.stopped_early:
                log.info(
                    "early stopping after epoch %d: %s has not improved for %d epochs "
                    "(best %.4f at epoch %d)",
                    row["epoch"],
                    monitor,
                    self.state.bad_epochs,
                    self.state.best_value or float("nan"),
                    self.state.best_epoch,
                )
        return self.state

    def profiled_epoch(self) -> dict:
        """``debug=profile``: the first epoch (a few steps) under torch.profiler; the Chrome
        trace and a table of the top operators go to the run folder and MLflow (profile/)."""
        from torch.profiler import ProfilerActivity, profile

        activities = [ProfilerActivity.CPU]
        if self.rt.device.type == "cuda":
            activities.append(ProfilerActivity.CUDA)
        with profile(activities=activities) as prof:
            row = self.run_epoch()
        folder = self.run_dir / "profile"
        folder.mkdir(parents=True, exist_ok=True)
        trace = folder / "trace.json.gz"  # Perfetto and chrome://tracing read it gzipped
        prof.export_chrome_trace(str(trace))
        sort = "self_cuda_time_total" if self.rt.device.type == "cuda" else "self_cpu_time_total"
        table = prof.key_averages().table(sort_by=sort, row_limit=30)
        (folder / "top_operators.txt").write_text(table + "\n")
        log.info("profile of epoch %d (%s):\n%s", row["epoch"], sort, table)
        log.info("profiler trace: %s (open in https://ui.perfetto.dev or chrome://tracing)", trace)
        self.tracker.log_artifacts([trace, folder / "top_operators.txt"], "profile")
        return row

    def write_history(self) -> None:
        """training_log.csv in the run dir: every epoch so far (complete after a resume)."""
        path = self.run_dir / "training_log.csv"
        tmp = path.with_name(".training_log.csv.tmp")
        pd.DataFrame(self.state.history).to_csv(tmp, index=False)
        os.replace(tmp, path)
