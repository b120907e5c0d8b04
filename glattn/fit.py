"""The training loop: epochs, early stopping, atomic checkpoints and exact resume.

Checkpoints live in ``{paths.output_dir}/checkpoints/{config_fingerprint}/{last,best}.pt``:
the directory depends on the resolved config only (never on the clock), so the same command
started again, or a requeued SLURM job, finds its own last checkpoint and continues.
Every file is written to a temporary name and renamed (``os.replace`` is atomic on POSIX),
so a run killed at any moment leaves either the previous or the new checkpoint, never a
torn one. Early stopping follows Prechelt, "Early Stopping - But When?" (1998).
"""

from __future__ import annotations

import copy
import hashlib
import json
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
from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict

from glattn.engine import Runtime, evaluate, train_one_epoch

log = logging.getLogger(__name__)

# conf/optimizer/<name>.yaml and conf/scheduler/<name>.yaml <-> these registries
OPTIMIZERS = {"adamw": "torch.optim.AdamW", "adam": "torch.optim.Adam", "sgd": "torch.optim.SGD"}
SCHEDULERS = {
    "plateau": "torch.optim.lr_scheduler.ReduceLROnPlateau",
    "cosine": "torch.optim.lr_scheduler.CosineAnnealingLR",
    "none": "torch.optim.lr_scheduler.ConstantLR",
}
FINGERPRINT_EXCLUDE = ("paths", "tracking", "hydra", "sweep")
FINGERPRINT_IGNORE = (
    ("trainer", "device"),
    ("trainer", "num_workers"),
    ("trainer", "log_every_n_steps"),
    ("trainer", "resume"),
    ("dataset", "num_workers"),
    ("dataset", "cache"),
    ("dataset", "cache_dir"),
)


# ----------------------------------------------------------------------------- fingerprint
def resolved_config(cfg: DictConfig, exclude: tuple = ("hydra",)) -> dict:
    """The resolved config as plain containers, without the ``hydra`` node (composed with
    ``return_hydra_config=True`` it holds values such as hydra.job.num that only exist in
    a running job)."""
    return {
        key: OmegaConf.to_container(cfg[key], resolve=True)
        if isinstance(cfg[key], (DictConfig, ListConfig))
        else cfg[key]
        for key in cfg
        if key not in exclude
    }


def config_fingerprint(cfg: DictConfig) -> str:
    """sha256[:12] of the resolved config without paths/tracking/hydra/sweep/trainer.device.

    Values interpolated from ``paths.output_dir`` (the synthetic set's root, the image
    cache) are resolved against a fixed placeholder, so the same run under another output
    directory has the same fingerprint; settings that cannot change results (workers,
    cache location, logging cadence, resume) are left out too.
    """
    cfg = copy.deepcopy(cfg)
    with open_dict(cfg):
        cfg.paths.output_dir = "<output_dir>"
    resolved = resolved_config(cfg, FINGERPRINT_EXCLUDE)
    for group, key in FINGERPRINT_IGNORE:
        if isinstance(resolved.get(group), dict):
            resolved[group].pop(key, None)
    blob = json.dumps(resolved, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def checkpoint_dir(cfg: DictConfig, fingerprint: str | None = None) -> Path:
    fingerprint = fingerprint or config_fingerprint(cfg)
    return Path(cfg.paths.output_dir).absolute() / "checkpoints" / fingerprint


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


def monitor_mode(trainer: DictConfig) -> str:
    mode = str(trainer.monitor_mode)
    if mode == "auto":
        return "min" if str(trainer.monitor).endswith("loss") else "max"
    return mode


def build_optimizer(cfg: DictConfig, model: torch.nn.Module):
    from hydra.utils import instantiate

    return instantiate(cfg.optimizer)(params=model.parameters())


def build_scheduler(cfg: DictConfig, optimizer):
    from hydra.utils import instantiate

    factory = instantiate(cfg.scheduler)
    if cfg.scheduler._target_ == SCHEDULERS["plateau"]:
        return factory(optimizer, mode=monitor_mode(cfg.trainer))
    return factory(optimizer)


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


def atomic_torch_save(obj, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    return torch.load(path, map_location="cpu", weights_only=True)


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
            "config": resolved_config(self.cfg),
            "mlflow_run_id": self.run_id,
            "fingerprint": self.ckpt_dir.name,
            "choices": dict(self.choices),
            "train_counts": [int(c) for c in self.train_counts],
        }

    def save(self, best: bool) -> None:
        ckpt = self.checkpoint()
        if best:
            atomic_torch_save(ckpt, self.ckpt_dir / "best.pt")
            log.debug("saved best checkpoint (epoch %d)", self.state.epoch)
        atomic_torch_save(ckpt, self.ckpt_dir / "last.pt")
        log.debug("saved %s", self.ckpt_dir / "last.pt")

    def restore(self, ckpt: dict) -> None:
        module = getattr(self.model, "_orig_mod", self.model)
        module.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        if self.rt.scaler is not None and ckpt["scaler"] is not None:
            self.rt.scaler.load_state_dict(ckpt["scaler"])
        self.state = FitState(**ckpt["state"])
        _set_rng_state(ckpt["rng"])
        for gen, state in zip(self._generators(), ckpt.get("loader_rng", [])):
            gen.set_state(state)

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
        while self.state.epoch < max_epochs and not self.state.stopped_early:
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

    def write_history(self) -> None:
        """training_log.csv in the run dir: every epoch so far (complete after a resume)."""
        path = self.run_dir / "training_log.csv"
        tmp = path.with_name(".training_log.csv.tmp")
        pd.DataFrame(self.state.history).to_csv(tmp, index=False)
        os.replace(tmp, path)
