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
def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _at_least(n: int):
    return lambda v: _is_int(v) and v >= n


def _is_bool(v) -> bool:
    return isinstance(v, bool)


def _is_text(v) -> bool:
    return isinstance(v, str) and bool(v.strip())


def _is_tag_list(v) -> bool:
    return v is None or (
        isinstance(v, (list, ListConfig)) and all(_TAG.fullmatch(str(t)) for t in v)
    )


_TAG = re.compile(r"[\w\-./]{1,200}")

#: (key, check, what is expected) for every scalar glattn reads, in the order errors are
#: listed; a check that raises counts as failed.
SCALAR_CHECKS = (
    ("task", lambda v: v in TASKS, f"one of {list(TASKS)}"),
    ("seed", _is_int, "an integer"),
    ("optimizer.lr", lambda v: _is_num(v) and v > 0, "a number > 0"),
    ("optimizer.weight_decay", lambda v: v is None or (_is_num(v) and v >= 0), "a number >= 0"),
    ("trainer.max_epochs", _at_least(1), "an integer >= 1"),
    ("trainer.batch_size", _at_least(1), "an integer >= 1"),
    (
        "trainer.early_stopping_patience",
        lambda v: v is None or (_is_int(v) and v >= 1),
        "null or an integer >= 1",
    ),
    ("trainer.monitor", lambda v: v in EPOCH_METRICS, f"one of {list(EPOCH_METRICS)}"),
    (
        "trainer.monitor_mode",
        lambda v: v in ("auto", "max", "min"),
        "one of ['auto', 'max', 'min']",
    ),
    (
        "trainer.device",
        lambda v: re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", str(v)),
        "one of auto, cpu, cuda, cuda:<N>, mps",
    ),
    (
        "trainer.amp",
        lambda v: str(v).lower() in ("auto", "bf16", "fp16", "none"),
        "one of ['auto', 'bf16', 'fp16', 'none']",
    ),
    ("trainer.channels_last", lambda v: v in ("auto", True, False), "auto, true or false"),
    (
        "trainer.compile",
        lambda v: isinstance(v, bool) or str(v).lower() in ("auto", "block", "model", "none"),
        "one of auto, block, model, none (or true/false)",
    ),
    ("trainer.deterministic", _is_bool, "true or false"),
    ("trainer.resume", _is_bool, "true or false"),
    ("trainer.grad_clip", lambda v: v is None or (_is_num(v) and v > 0), "null or a number > 0"),
    ("trainer.num_workers", _at_least(0), "an integer >= 0"),
    ("trainer.gradcam_per_class", _at_least(0), "an integer >= 0"),
    ("trainer.log_every_n_steps", _at_least(1), "an integer >= 1"),
    ("tracking.experiment", _is_text, "a non-empty string"),
    ("dataset.num_classes", _at_least(2), "an integer >= 2"),
    ("paths.output_dir", _is_text, "a directory path"),
)
_CKPT_EVAL = (
    "ckpt_path",
    lambda v: v is not None and (Path(str(v)).is_file() or _is_run_ref(v)),
    "an existing checkpoint file, an MLflow run id or runs:/<id> (task=eval)",
)
_CKPT_TRAIN = (
    "ckpt_path",
    lambda v: v is None or Path(str(v)).is_file() or _is_run_ref(v),
    "null, an existing checkpoint file, an MLflow run id or runs:/<id> (task=train "
    "resumes from its own checkpoint, fine-tunes from any other)",
)
_TAGS = (
    "tags",
    _is_tag_list,
    "a list of names (letters, digits, _ - . /), e.g. tags=[baseline,v2]",
)


def _check(cfg: DictConfig, key: str, ok, expected: str) -> str | None:
    """``key=value: expected ...`` when `ok(value)` fails (or raises), else None."""
    try:
        value = OmegaConf.select(cfg, key, throw_on_missing=False)
    except Exception as exc:  # an interpolation that does not resolve
        return f"{key}: {exc}"
    try:
        good = ok(value)
    except Exception:
        good = False
    return None if good else f"{key}={mask_container(value, key)!r}: expected {expected}"


def config_errors(cfg: DictConfig) -> list[str]:
    """Every bad scalar value, as ``key=value: expected ...`` lines (empty: all good)."""
    from glattn.schema import unknown_keys  # e.g. +trainer.epochs=3, which Hydra lets through

    eval_task = OmegaConf.select(cfg, "task", throw_on_missing=False) == "eval"
    checks = (*SCALAR_CHECKS, _CKPT_EVAL if eval_task else _CKPT_TRAIN, _TAGS)
    problems = (_check(cfg, key, ok, expected) for key, ok, expected in checks)
    return unknown_keys(cfg) + [p for p in problems if p is not None]


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
    cache location, logging cadence, resume) are left out too, and trainer.compile counts
    as false (its old default: fingerprints from before trainer.compile=auto still hold).
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
    trainer = resolved.get("trainer")
    if isinstance(trainer, dict) and "compile" in trainer:  # compiling does not change the
        trainer["compile"] = False  # results (as the device): fingerprinted as the old default
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
