"""The composed config: validation (fail before any work), the config fingerprint, the
resolved (and masked) config, and what a running Hydra job knows about itself.

The lowest layer of the chain config -> model/data -> fit -> tracking -> report: this
module imports nothing from glattn but `glattn.secrets`.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import re
from pathlib import Path

from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict

from glattn.errors import UserError
from glattn.groups import RECORDED_GROUPS
from glattn.secrets import mask_container, mask_override

EPOCH_METRICS = ("val/loss", "val/acc", "val/balanced_acc", "val/macro_f1", "val/auc")
TASKS = ("train", "eval")
# the config-group choices that identify a run (choice.<group> params): a view of the table
GROUPS = RECORDED_GROUPS

# name (a run-name prefix) and tags (MLflow tags) are labels: they never change results
# transfer: where an eval job finds its training (Table 5), not what a training is
FINGERPRINT_EXCLUDE = ("paths", "tracking", "hydra", "sweep", "name", "tags", "transfer")
FINGERPRINT_IGNORE = (
    ("trainer", "device"),
    ("trainer", "num_workers"),
    ("trainer", "log_every_n_steps"),
    ("trainer", "resume"),
    ("trainer", "keep_last"),
    ("trainer", "profile"),
    ("dataset", "num_workers"),
    ("dataset", "cache"),
    ("dataset", "cache_dir"),
)


class ConfigError(UserError, ValueError):
    """A config value is invalid; the message names the key, the value and what is allowed."""


# ----------------------------------------------------------------------------- validation
def config_errors(cfg: DictConfig) -> list[str]:
    """Every bad scalar value, as ``key=value: expected ...`` lines (empty: all good)."""
    from glattn.schema import unknown_keys  # e.g. +trainer.epochs=3, which Hydra lets through

    errors: list[str] = unknown_keys(cfg)

    def get(key):
        return OmegaConf.select(cfg, key, throw_on_missing=False)

    def check(key, ok, expected):
        try:
            value = get(key)
        except Exception as exc:  # an interpolation that does not resolve
            errors.append(f"{key}: {exc}")
            return
        try:
            good = ok(value)
        except Exception:
            good = False
        if not good:
            errors.append(f"{key}={mask_container(value, key)!r}: expected {expected}")

    def is_int(v):
        return isinstance(v, int) and not isinstance(v, bool)

    def is_num(v):
        return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)

    check("task", lambda v: v in TASKS, f"one of {list(TASKS)}")
    check("seed", is_int, "an integer")
    check("optimizer.lr", lambda v: is_num(v) and v > 0, "a number > 0")
    if get("optimizer.weight_decay") is not None:
        check("optimizer.weight_decay", lambda v: is_num(v) and v >= 0, "a number >= 0")
    check("trainer.max_epochs", lambda v: is_int(v) and v >= 1, "an integer >= 1")
    check("trainer.batch_size", lambda v: is_int(v) and v >= 1, "an integer >= 1")
    check(
        "trainer.early_stopping_patience",
        lambda v: v is None or (is_int(v) and v >= 1),
        "null or an integer >= 1",
    )
    check("trainer.monitor", lambda v: v in EPOCH_METRICS, f"one of {list(EPOCH_METRICS)}")
    check(
        "trainer.monitor_mode",
        lambda v: v in ("auto", "max", "min"),
        "one of ['auto', 'max', 'min']",
    )
    check(
        "trainer.device",
        lambda v: re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", str(v)),
        "one of auto, cpu, cuda, cuda:<N>, mps",
    )
    check(
        "trainer.amp",
        lambda v: str(v).lower() in ("auto", "bf16", "fp16", "none"),
        "one of ['auto', 'bf16', 'fp16', 'none']",
    )
    check("trainer.channels_last", lambda v: v in ("auto", True, False), "auto, true or false")
    check("trainer.compile", lambda v: isinstance(v, bool), "true or false")
    check("trainer.deterministic", lambda v: isinstance(v, bool), "true or false")
    check("trainer.resume", lambda v: isinstance(v, bool), "true or false")
    check(
        "trainer.grad_clip", lambda v: v is None or (is_num(v) and v > 0), "null or a number > 0"
    )
    check("trainer.num_workers", lambda v: is_int(v) and v >= 0, "an integer >= 0")
    check("trainer.gradcam_per_class", lambda v: is_int(v) and v >= 0, "an integer >= 0")
    check("trainer.log_every_n_steps", lambda v: is_int(v) and v >= 1, "an integer >= 1")
    check("tracking.experiment", lambda v: isinstance(v, str) and v.strip(), "a non-empty string")
    check("dataset.num_classes", lambda v: is_int(v) and v >= 2, "an integer >= 2")
    check("paths.output_dir", lambda v: isinstance(v, str) and v.strip(), "a directory path")
    if get("task") == "eval":
        check(
            "ckpt_path",
            lambda v: v is not None and (Path(str(v)).is_file() or _is_run_ref(v)),
            "an existing checkpoint file, an MLflow run id or runs:/<id> (task=eval)",
        )
    elif get("ckpt_path") is not None:
        check(
            "ckpt_path",
            lambda v: Path(str(v)).is_file() or _is_run_ref(v),
            "null, an existing checkpoint file, an MLflow run id or runs:/<id> (task=train "
            "resumes from its own checkpoint, fine-tunes from any other)",
        )
    check(
        "tags",
        lambda v: (
            v is None
            or (isinstance(v, (list, ListConfig)) and all(_TAG.fullmatch(str(t)) for t in v))
        ),
        "a list of names (letters, digits, _ - . /), e.g. tags=[baseline,v2]",
    )
    return errors


_TAG = re.compile(r"[\w\-./]{1,200}")


def _is_run_ref(value) -> bool:
    text = str(value)
    return text.startswith("runs:/") or bool(re.fullmatch(r"[0-9a-f]{32}", text))


def raise_config_errors(errors: list[str]) -> None:
    if errors:
        raise ConfigError("invalid config:\n  " + "\n  ".join(errors))


def validate_config(cfg: DictConfig) -> None:
    """Fail before any work with every bad value named (key, value, allowed values)."""
    raise_config_errors(config_errors(cfg))


# ----------------------------------------------------------------------------- resolved
def resolved_config(cfg: DictConfig, exclude: tuple = ("hydra",), masked: bool = False) -> dict:
    """The resolved config as plain containers, without the ``hydra`` node (composed with
    ``return_hydra_config=True`` it holds values such as hydra.job.num that only exist in
    a running job); ``masked``: secret values replaced (what glattn writes anywhere)."""
    out = {
        key: OmegaConf.to_container(cfg[key], resolve=True)
        if isinstance(cfg[key], (DictConfig, ListConfig))
        else cfg[key]
        for key in cfg
        if key not in exclude
    }
    return mask_container(out) if masked else out


def config_fingerprint(cfg: DictConfig) -> str:
    """sha256[:12] of the resolved config without paths/tracking/hydra/sweep/trainer.device.

    Values interpolated from ``paths.output_dir`` (the synthetic set's root, the image
    cache) are resolved against a fixed placeholder, so the same run under another output
    directory has the same fingerprint; settings that cannot change results (workers,
    cache location, logging cadence, resume) are left out too.
    """
    cfg = copy.deepcopy(cfg)
    with open_dict(cfg):
        own_ckpt = _own_checkpoint(cfg)
        cfg.paths.output_dir = "<output_dir>"
    resolved = resolved_config(cfg, FINGERPRINT_EXCLUDE)
    if own_ckpt:  # ckpt_path= this config's own checkpoint resumes: same job
        resolved["ckpt_path"] = None
    for group, key in FINGERPRINT_IGNORE:
        if isinstance(resolved.get(group), dict):
            resolved[group].pop(key, None)
    blob = json.dumps(resolved, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def _own_checkpoint(cfg: DictConfig) -> bool:
    """task=train with ckpt_path inside ``checkpoints/<the fingerprint without it>/``."""
    ckpt = OmegaConf.select(cfg, "ckpt_path", default=None)
    if ckpt is None or OmegaConf.select(cfg, "task") != "train" or _is_run_ref(ckpt):
        return False
    cfg.ckpt_path = None
    try:
        return Path(str(ckpt)).parent.name == config_fingerprint(cfg)
    finally:
        cfg.ckpt_path = ckpt


# ----------------------------------------------------------------------------- Hydra job
def hydra_config():
    """The running job's HydraConfig, or None (compose API, plain Python)."""
    from hydra.core.hydra_config import HydraConfig

    return HydraConfig.get() if HydraConfig.initialized() else None


def is_multirun() -> bool:
    from hydra.types import RunMode

    hc = hydra_config()
    return hc is not None and hc.mode == RunMode.MULTIRUN


def job_overrides(cfg: DictConfig) -> list[str]:
    """The job's command-line overrides, secrets masked."""
    hc = hydra_config()
    overrides = list(hc.overrides.task) if hc is not None else []
    if not overrides and OmegaConf.select(cfg, "hydra.overrides.task") is not None:
        overrides = list(cfg.hydra.overrides.task)
    return [mask_override(str(o)) for o in overrides]


def group_choices(cfg: DictConfig) -> dict[str, str]:
    """Config-group choices (hydra.runtime.choices), e.g. {"fusion": "cross_attn", ...}."""
    hc = hydra_config()
    choices = {}
    if hc is not None:
        choices = dict(hc.runtime.choices)
    elif OmegaConf.select(cfg, "hydra.runtime.choices") is not None:
        choices = dict(cfg.hydra.runtime.choices)
    out = {}
    for group in GROUPS:
        value = choices.get(group)
        if value is None:  # composed without the hydra node: fall back to the config
            node = OmegaConf.select(cfg, group)
            value = (
                OmegaConf.select(node, "name")
                or str(OmegaConf.select(node, "_target_", default="?")).rsplit(".", 1)[-1]
                if isinstance(node, DictConfig)
                else "?"
            )
        out[group] = str(value)
    return out
