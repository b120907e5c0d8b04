"""Structured-config schemas (Hydra's ConfigStore) for the trainer, dataset, glsa, tracking
and sweep nodes: the set of keys each node may have, and their types.

Each option file names its schema first in its defaults list (the values stay in the YAML;
the schema has none, every field is MISSING until the YAML sets it)::

    # conf/trainer/default.yaml
    defaults:
      - /schema/trainer@_here_
      - _self_

so ``trainer.epochs=3`` (a key the schema does not have) fails while composing. Hydra's
``+key=value`` is different: it adds a key even to a struct or structured node
(``OmegaConf.update(..., force_add=True)``), so ``+trainer.epochs=3`` composes. That is why
``unknown_keys(cfg)`` walks the composed config and names every key that is not in its
node's schema, with the closest valid key (difflib); glattn.config.config_errors reports
them before any work and plan mode lists them as job errors.

Data sets differ: every data set has the keys of ``DatasetSchema``; ``dataset=synthetic``
adds the generator's keys and ``dataset=csv`` its CSV columns (one schema per option,
``/schema/dataset/<name>``). A new key in an option file needs its field here (the YAML
then fails to compose until it has one: "Key 'x' not in 'TrainerSchema'").

Registered when ``glattn`` is imported (glattn/__init__.py) and by the Hydra plugin
hydra_plugins/glattn_schema, which Hydra imports before composing in any process.
"""

from __future__ import annotations

import difflib
import logging
from dataclasses import dataclass, fields, is_dataclass
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from glattn.secrets import is_secret_key

log = logging.getLogger(__name__)


@dataclass
class TrainerSchema:
    """conf/trainer/*.yaml (glattn/job/trainer.py reads it)."""

    max_epochs: int = MISSING
    batch_size: int = MISSING
    early_stopping_patience: int | None = MISSING
    monitor: str = MISSING
    monitor_mode: str = MISSING
    device: str = MISSING
    amp: str = MISSING
    channels_last: Any = MISSING  # auto | true | false
    compile: Any = MISSING  # auto | block | model | none (true/false: model/none)
    grad_clip: float | None = MISSING
    deterministic: bool = MISSING
    num_workers: int = MISSING
    resume: bool = MISSING
    keep_last: bool = MISSING
    gradcam_per_class: int = MISSING
    log_every_n_steps: int = MISSING
    profile: bool = MISSING


@dataclass
class GLSASchema:
    """conf/glsa/*.yaml: GLSABlock's settings plus `position` (read by build_model)."""

    _target_: str = MISSING
    _partial_: bool = MISSING
    num_heads: int = MISSING
    qkv_reduction: int = MISSING
    qkv_bias: bool = MISSING
    position: Any = MISSING  # one name or a list


@dataclass
class TrackingSchema:
    """conf/tracking/*.yaml (glattn.tracking)."""

    enabled: bool = MISSING
    uri: str | None = MISSING
    experiment: str = MISSING
    artifact_location: str | None = MISSING
    log_checkpoint: bool = MISSING
    log_model: bool = MISSING  # best weights as the run's MLflow model (glattn.tracking.models)
    register_model: str | None = MISSING  # a Model Registry name: each run adds a version


@dataclass
class SweepSchema:
    """The `sweep` node of conf/config.yaml (the glattn sweeper)."""

    plan: bool = MISSING
    rerun: bool = MISSING
    fuse_seeds: bool = MISSING  # jobs that differ only in seed run as one fused job
    fused_seeds: list[int] | None = MISSING  # a fused job's members (set by the sweeper)


@dataclass
class DatasetSchema:
    """Keys every conf/dataset/*.yaml has (glattn/data/options.py checks the values)."""

    name: str = MISSING
    root: str | None = MISSING
    image_size: int = MISSING
    num_classes: int = MISSING
    val_fraction: float = MISSING
    test_fraction: float = MISSING
    folds: int = MISSING
    fold: int = MISSING
    split_seed: int = MISSING
    sampler: str = MISSING
    eval_split: str = MISSING
    skip_bad_images: bool = MISSING
    cache: bool = MISSING
    cache_dir: str = MISSING
    num_workers: int = MISSING
    augment: str = MISSING


@dataclass
class SyntheticDatasetSchema(DatasetSchema):
    """dataset=synthetic: the generator's settings."""

    num_images: int = MISSING
    source_width: int = MISSING
    source_height: int = MISSING
    generator_seed: int = MISSING


@dataclass
class CsvDatasetSchema(DatasetSchema):
    """dataset=csv: an image folder plus a CSV."""

    csv: str = MISSING
    image_column: str = MISSING
    label_column: str = MISSING
    group_column: str | None = MISSING
    classes: Any = MISSING  # null or a list of class names


#: ConfigStore name (below group "schema") -> schema. Option files use /schema/<name>@_here_.
SCHEMAS = {
    "trainer": TrainerSchema,
    "glsa": GLSASchema,
    "tracking": TrackingSchema,
    "sweep": SweepSchema,
    "dataset/base": DatasetSchema,
    "dataset/synthetic": SyntheticDatasetSchema,
    "dataset/csv": CsvDatasetSchema,
}
#: Top-level nodes that have a schema.
NODES = ("trainer", "dataset", "glsa", "tracking", "sweep")


def register() -> None:
    """Store every schema in Hydra's ConfigStore (idempotent)."""
    cs = ConfigStore.instance()
    for name, schema in SCHEMAS.items():
        group, _, leaf = f"schema/{name}".rpartition("/")
        cs.store(group=group, name=leaf, node=schema)


def _unknown(node: DictConfig, path: str) -> list[str]:
    schema = OmegaConf.get_type(node)
    if not (isinstance(schema, type) and is_dataclass(schema)):
        return []
    valid = [f.name for f in fields(schema)]
    errors = []
    for key in node.keys():
        if key in valid:
            continue
        if is_secret_key(key):  # masked wherever glattn writes it (glattn.secrets), not a typo
            log.warning(
                "%s.%s looks like a credential: glattn reads none from the config; MLflow reads "
                "MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD / MLFLOW_TRACKING_TOKEN "
                "from the environment",
                path,
                key,
            )
            continue
        close = difflib.get_close_matches(str(key), valid, n=1, cutoff=0.5)
        hint = f"did you mean {path}.{close[0]}? " if close else ""
        errors.append(
            f"{path}.{key}: unknown key ({hint}{path} has: {', '.join(valid)}); a '+' on the "
            "command line adds a key but nothing reads it"
        )
    return errors


def unknown_keys(cfg: DictConfig) -> list[str]:
    """One message per key of a schema node that its schema does not have (e.g. added with
    ``+trainer.epochs=3``), naming the closest valid key."""
    errors = []
    for name in NODES:
        node = cfg.get(name) if isinstance(cfg, DictConfig) else None
        if isinstance(node, DictConfig):
            errors += _unknown(node, name)
    return errors


class UnknownKeyError(ValueError):
    """A composed config has keys its schemas do not know."""


def check_keys(cfg: DictConfig) -> None:
    """Raise UnknownKeyError listing every unknown key (see unknown_keys)."""
    errors = unknown_keys(cfg)
    if errors:
        raise UnknownKeyError("invalid config:\n  " + "\n  ".join(errors))


register()
