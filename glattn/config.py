"""The composed config: validation (fail before any work), the config fingerprint, the
resolved (and masked) config, and what a running Hydra job knows about itself.

The lowest layer of the chain config -> model/data -> fit -> tracking -> report: this
module imports nothing from glattn but `glattn.secrets`.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from pathlib import Path

from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict

from glattn.errors import UserError
from glattn.groups import RECORDED_GROUPS
from glattn.secrets import mask_container, mask_override

# the config-group choices that identify a run (choice.<group> params): a view of the table
GROUPS = RECORDED_GROUPS

# name (a run-name prefix) and tags (MLflow tags) are labels: they never change results
# transfer: where an eval job finds its training (Table 5), not what a training is
# report: how an experiment's runs are tabulated (glattn.report.declared), not a setting
FINGERPRINT_EXCLUDE = (
    "paths",
    "tracking",
    "hydra",
    "sweep",
    "name",
    "tags",
    "transfer",
    "report",
)
#: nodes of the composed config that are no setting of the run: neither params nor class
#: tags nor the run's config.yaml (the report block is the experiment file's, for the report)
NOT_SETTINGS = ("hydra", "report")
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
    ("dataset", "_target_"),  # the reader: the data set is `dataset.name` and its settings
)


class ConfigError(UserError, ValueError):
    """A config value is invalid; the message names the key, the value and what is allowed."""


# ----------------------------------------------------------------------------- validation
_CKPT_EVAL = "an existing checkpoint file, an MLflow run id or runs:/<id> (task=eval)"
_CKPT_TRAIN = (
    "null, an existing checkpoint file, an MLflow run id or runs:/<id> (task=train "
    "resumes from its own checkpoint, fine-tunes from any other)"
)


def _ckpt_error(cfg: DictConfig) -> str | None:
    """ckpt_path must name a checkpoint that exists (task=eval: one is required)."""
    try:
        value = OmegaConf.select(cfg, "ckpt_path", default=None)
    except Exception as exc:  # e.g. ${glattn.source_ckpt:} finds no training checkpoint
        return f"ckpt_path: {exc}"
    eval_task = OmegaConf.select(cfg, "task", throw_on_missing=False) == "eval"
    if value is None and not eval_task:
        return None
    if value is not None and (Path(str(value)).is_file() or _is_run_ref(value)):
        return None
    shown = mask_container(value, "ckpt_path")
    return f"ckpt_path={shown!r}: expected {_CKPT_EVAL if eval_task else _CKPT_TRAIN}"


def config_errors(cfg: DictConfig) -> list[str]:
    """Every bad value, as ``key=value: expected ...`` lines (empty: all good): keys no
    schema has, values their declaration (glattn.schema) does not accept, ckpt_path."""
    from glattn.schema import unknown_keys, value_errors

    ckpt = _ckpt_error(cfg)
    return unknown_keys(cfg) + value_errors(cfg) + ([ckpt] if ckpt else [])


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
def resolved_config(cfg: DictConfig, exclude: tuple = NOT_SETTINGS, masked: bool = False) -> dict:
    """The resolved config as plain containers, without the ``hydra`` node (composed with
    ``return_hydra_config=True`` it holds values such as hydra.job.num that only exist in
    a running job) and the experiment's ``report`` block; ``masked``: secret values
    replaced (what glattn writes anywhere)."""
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
    return _digest(_fingerprinted(cfg))


def cell_fingerprint(cfg: DictConfig) -> str:
    """The seedless, path-free identity of a cell of a grid: config_fingerprint's content
    without ``seed`` and without the built-in synthetic set's ``dataset.root`` (where it is
    generated, not what it is), so the seeds of one configuration, wherever they wrote,
    share it."""
    resolved = _fingerprinted(cfg)
    resolved.pop("seed", None)
    dataset = resolved.get("dataset")
    if isinstance(dataset, dict) and dataset.get("name") == "synthetic":
        dataset.pop("root", None)
    return _digest(resolved)


def _digest(resolved: dict) -> str:
    blob = json.dumps(resolved, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def _fingerprinted(cfg: DictConfig) -> dict:
    """The resolved config as config_fingerprint hashes it."""
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
    return resolved


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
