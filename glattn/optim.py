"""Optimizers and learning-rate schedulers: the registries behind ``conf/optimizer/*.yaml``
and ``conf/scheduler/*.yaml`` (one option file per registered name) and their builders.

Option files are ``_target_`` (the registered class) + settings with ``_partial_: true``:
the builder supplies the model's parameters (optimizer) or the optimizer (scheduler).
"""

from __future__ import annotations

import torch
from omegaconf import DictConfig, OmegaConf

from glattn.registry import Registry

OPTIMIZERS = Registry(
    "optimizer",
    contract="`cls(params, lr=..., **settings)`, a torch.optim.Optimizer",
    where=("glattn.optim", "OPTIMIZERS"),
)
OPTIMIZERS.register("adamw", reference="Loshchilov & Hutter 2019 (arXiv:1711.05101)")(
    torch.optim.AdamW
)
OPTIMIZERS.register("adam", reference="Kingma & Ba 2015 (arXiv:1412.6980)")(torch.optim.Adam)
OPTIMIZERS.register("sgd", reference="Nesterov momentum (Sutskever et al. 2013)")(torch.optim.SGD)

SCHEDULERS = Registry(
    "scheduler",
    contract="`cls(optimizer, **settings)`, stepped once per epoch",
    where=("glattn.optim", "SCHEDULERS"),
)
SCHEDULERS.register("plateau")(torch.optim.lr_scheduler.ReduceLROnPlateau)
SCHEDULERS.register("cosine", reference="Loshchilov & Hutter 2017 (arXiv:1608.03983)")(
    torch.optim.lr_scheduler.CosineAnnealingLR
)
SCHEDULERS.register("none")(torch.optim.lr_scheduler.ConstantLR)


def target_of(cls: type) -> str:
    """The ``_target_`` string an option file gives for ``cls``."""
    module = "torch.optim" if cls.__module__.startswith("torch.optim.") else cls.__module__
    if cls.__module__.startswith("torch.optim.lr_scheduler"):
        module = "torch.optim.lr_scheduler"
    return f"{module}.{cls.__qualname__}"


def config_errors(cfg: DictConfig) -> list[str]:
    """``optimizer._target_`` / ``scheduler._target_`` not a registered class (a module of
    the user's own registers when imported, as Hydra's instantiate would import it)."""
    errors = []
    for group, registry in (("optimizer", OPTIMIZERS), ("scheduler", SCHEDULERS)):
        target = OmegaConf.select(cfg, f"{group}._target_", default=None)
        error = registry.target_error(target, group)
        if error:
            errors.append(error)
    return errors


def monitor_mode(trainer: DictConfig) -> str:
    """max | min: how the monitored metric improves (``auto``: min for a loss)."""
    mode = str(trainer.monitor_mode)
    if mode == "auto":
        return "min" if str(trainer.monitor).endswith("loss") else "max"
    return mode


def build_optimizer(cfg: DictConfig, model: torch.nn.Module) -> torch.optim.Optimizer:
    from hydra.utils import instantiate

    return instantiate(cfg.optimizer)(params=model.parameters())


def build_scheduler(cfg: DictConfig, optimizer: torch.optim.Optimizer):
    from hydra.utils import instantiate

    factory = instantiate(cfg.scheduler)
    if cfg.scheduler._target_ == target_of(SCHEDULERS.get("plateau")):
        return factory(optimizer, mode=monitor_mode(cfg.trainer))
    return factory(optimizer)
