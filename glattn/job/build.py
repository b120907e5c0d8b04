"""The only place a config becomes objects: `build_components` (training) and
`build_eval_components` (evaluating a checkpoint) return the data, model, loss, optimizer,
scheduler, runtime and loaders of one job.

The model is built once per training job, in its pre-flight (`preflight_model`, before any
data work): every component checked against its family's contract as it is built, then the
whole model run forward on the meta device (no memory, no compute); `build_components`
takes that model. `check_model` is the same check without weights (everything on the meta
device), for callers that keep no model (a fused job's members, plan mode).

The order of construction is the order of the random draws (seed, runtime, data, model,
loss, optimizer, scheduler, loaders), so a job is reproducible from ``seed``; changing it
changes every run's initial weights. The pre-flight's model is drawn right after seeding,
which is the same draw as after the data as long as reading the data draws nothing from
torch's generator; `build_components` checks that and builds again where it did.
"""

from __future__ import annotations

import itertools
import logging
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from glattn.config import ConfigError
from glattn.data import build_data
from glattn.data.bundle import DataBundle
from glattn.job.outputs import log_class_balance
from glattn.logging_utils import DETAIL
from glattn.losses import build_loss
from glattn.models import build_model, describe_model
from glattn.optim import build_optimizer, build_scheduler
from glattn.runtime import Runtime, make_runtime, seed_everything

log = logging.getLogger(__name__)


@dataclass
class Components:
    """One job's objects. ``model`` is on ``runtime.device`` and never compiled (the
    trainer compiles it when ``trainer.compile``); optimizer and scheduler are None for an
    eval job."""

    data: DataBundle
    model: nn.Module
    loss: nn.Module
    optimizer: torch.optim.Optimizer | None
    scheduler: object | None
    runtime: Runtime
    loaders: dict


def check_model(cfg: DictConfig) -> dict:
    """Build the whole model on the meta device and run it forward once (no memory, no
    weights): a bad head count, width, position or component fails here, before any data
    work. Returns no context."""
    with _model_errors():
        with torch.device("meta"):
            model = build_model(cfg).eval()
            model(torch.empty(2, 3, int(cfg.dataset.image_size), int(cfg.dataset.image_size)))
    return {}


def preflight_model(cfg: DictConfig) -> dict:
    """A training job's pre-flight and its one model build: seeded as the job seeds, built
    with real weights on the CPU (each component's contract checked as it is built), then
    run forward once on the meta device. Returns the context `build_components` takes
    (``model``, and the generator states before and after its draws: ``rng``)."""
    seed_everything(int(cfg.seed), bool(cfg.trainer.deterministic))
    before = torch.get_rng_state()
    with _model_errors():
        model = build_model(cfg)
        after = torch.get_rng_state()
        meta_forward(model, int(cfg.dataset.image_size))
    return {"model": model, "rng": (before, after)}


def meta_forward(model: nn.Module, image_size: int) -> None:
    """`model` run forward on a (2, 3, S, S) input with its weights and input on the meta
    device (torch.func.functional_call): shapes checked, nothing computed or changed."""
    tensors = itertools.chain(model.named_parameters(), model.named_buffers())
    state = {name: torch.empty_like(t, device="meta") for name, t in tensors}
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            x = torch.empty(2, 3, image_size, image_size, device="meta")
            torch.func.functional_call(model, state, (x,))
    finally:
        model.train(was_training)


@contextmanager
def _model_errors():
    try:
        yield
    except Exception as exc:
        raise ConfigError(
            f"the model cannot be built from this config ({type(exc).__name__}: {exc}); "
            "check backbone=, glsa.*, attention=, fusion=, residual= and dataset.image_size"
        ) from exc


def build_components(
    cfg: DictConfig, run_dir: Path, init_from: dict | None = None, prebuilt: dict | None = None
) -> Components:
    """Everything a training job trains with; ``init_from``: a checkpoint whose matching
    weights the model starts from (fine-tuning, ``ckpt_path=``); ``prebuilt``: the context
    of `preflight_model` (its model is this job's, not built again)."""
    seed_everything(int(cfg.seed), bool(cfg.trainer.deterministic))
    rt = make_runtime(cfg.trainer)
    data = build_data(cfg, run_dir)
    rt.augment = data.augmenter()  # dataset.augment=device: batched on rt.device, else None
    if data.val is None:
        raise ConfigError(
            f"dataset {cfg.dataset.name!r} has no validation split (dataset.val_fraction="
            f"{OmegaConf.select(cfg, 'dataset.val_fraction')}): training monitors "
            f"{cfg.trainer.monitor} on it; expected val_fraction > 0 or folds > 1"
        )
    log_class_balance(data)
    model = _model(cfg, prebuilt or {})
    if init_from is not None:
        _load_weights(model, init_from["model"], cfg.ckpt_path)
    _log_summary(model, int(cfg.dataset.image_size))
    model.to(rt.device)
    if rt.channels_last:
        model.to(memory_format=torch.channels_last)
    loss = build_loss(cfg.loss, data.train_counts).to(rt.device)
    optimizer = build_optimizer(cfg, model)
    scheduler = build_scheduler(cfg, optimizer)
    trainer = cfg.trainer
    loaders = data.loaders(int(trainer.batch_size), int(trainer.num_workers), cfg.dataset.sampler)
    return Components(data, model, loss, optimizer, scheduler, rt, loaders)


def build_eval_components(
    cfg: DictConfig, run_dir: Path, model: nn.Module, train_cfg: DictConfig, ckpt: dict
) -> Components:
    """An eval job's objects: its data, the checkpoint's `model` (from the pre-flight) on
    the device, and the training loss (for eval/loss, class weights from the training
    counts)."""
    seed_everything(int(cfg.seed), bool(cfg.trainer.deterministic))
    if int(train_cfg.dataset.image_size) != int(cfg.dataset.image_size):
        log.warning(
            "the checkpoint was trained at dataset.image_size=%s, evaluating at %s",
            train_cfg.dataset.image_size,
            cfg.dataset.image_size,
        )
    rt = make_runtime(cfg.trainer)
    model.to(rt.device)
    data = build_data(cfg, run_dir)
    loaders = data.loaders(int(cfg.trainer.batch_size), int(cfg.trainer.num_workers), "none")
    train_counts = ckpt.get("train_counts") or [1] * len(data.class_names)
    loss = build_loss(train_cfg.loss, train_counts).to(rt.device)
    return Components(data, model, loss, None, None, rt, loaders)


def _model(cfg: DictConfig, prebuilt: dict) -> nn.Module:
    """The pre-flight's model when the generator is where it was before that build (then it
    continues from where the build left it: the same draws as building here), else a new
    build."""
    model, rng = prebuilt.get("model"), prebuilt.get("rng")
    if model is not None and rng is not None and torch.equal(torch.get_rng_state(), rng[0]):
        torch.set_rng_state(rng[1])
        return model
    return build_model(cfg)


def _load_weights(model: nn.Module, state: dict, ref) -> None:
    """Fine-tuning: the checkpoint's weights whose names and shapes match (a head for
    another class count is left as built)."""
    own = model.state_dict()
    matching = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    skipped = sorted(set(own) - set(matching))
    model.load_state_dict(matching, strict=False)
    log.info(
        "loaded %d of %d tensors from ckpt_path=%s%s",
        len(matching),
        len(own),
        ref,
        f" (not loaded: {', '.join(skipped[:6])}{' ...' if len(skipped) > 6 else ''})"
        if skipped
        else "",
    )


def _log_summary(model: nn.Module, image_size: int) -> None:
    try:
        log.info("model:\n%s", describe_model(model, image_size), extra=DETAIL)
    except Exception as exc:  # the summary is informative only
        log.warning("could not summarise the model: %s", exc)
