"""Optimizers and learning-rate schedulers: the builders behind ``conf/optimizer/*.yaml`` and
``conf/scheduler/*.yaml``.

Option files are ``_target_`` (torch's class, or one's own) + settings with ``_partial_:
true``: the builder supplies the model's parameters (optimizer) or the optimizer (scheduler).
"""

from __future__ import annotations

import torch
from omegaconf import DictConfig, OmegaConf

from glattn.contract import target_error


def config_errors(cfg: DictConfig) -> list[str]:
    """``optimizer._target_`` / ``scheduler._target_`` that do not import (before any work)."""
    errors = []
    for group in ("optimizer", "scheduler"):
        error = target_error(OmegaConf.select(cfg, f"{group}._target_", default=None), group)
        if error:
            errors.append(error)
    return errors


def monitor_mode(trainer: DictConfig) -> str:
    """max | min: how the monitored metric improves (glattn.schema declares the choices)."""
    from glattn.schema import monitor_direction

    return monitor_direction(str(trainer.monitor), str(trainer.monitor_mode))


def build_optimizer(cfg: DictConfig, model: torch.nn.Module) -> torch.optim.Optimizer:
    from hydra.utils import instantiate

    return instantiate(cfg.optimizer)(params=model.parameters())


def build_scheduler(cfg: DictConfig, optimizer: torch.optim.Optimizer):
    from hydra.utils import instantiate

    factory = instantiate(cfg.scheduler)
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau
    if isinstance(factory.func, type) and issubclass(factory.func, plateau):
        return factory(optimizer, mode=monitor_mode(cfg.trainer))
    return factory(optimizer)
