"""The one declaration of every config key glattn reads itself: structured configs (Hydra's
ConfigStore) whose fields hold the key's type, default, allowed values, range and one-line
meaning. Validation messages (glattn.config.config_errors, glattn.data.options) and the
configuration reference (glattn.config_reference) are generated from these fields.

Each option file names its schema first in its defaults list and states only what differs
from the defaults declared in glattn.schema.nodes::

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
``/schema/dataset/<name>``). Top-level keys (``RunSchema``) and the keys every optimizer has
(``OptimizerSchema``) are stored as plain defaults: the root and ``optimizer`` nodes stay
open (an experiment adds ``transfer``, a debug preset ``debug``; SGD adds ``momentum``).

Registered when ``glattn`` is imported (glattn/__init__.py) and by the Hydra plugin
hydra_plugins/glattn_schema, which Hydra imports before composing in any process.
"""

from __future__ import annotations

import difflib
import logging
from dataclasses import fields, is_dataclass

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

from glattn.schema.declare import (  # noqa: F401 - the package's API
    accepts,
    choices_of,
    declared_type,
    defaults_of,
    expected,
    field,
    value_error,
)
from glattn.schema.nodes import (  # noqa: F401 - the package's API
    MONITOR_METRICS,
    ClaimSchema,
    CsvDatasetSchema,
    DatasetSchema,
    GLSASchema,
    OptimizerSchema,
    PathsSchema,
    ReportSchema,
    RunSchema,
    SweepSchema,
    SyntheticDatasetSchema,
    TrackingSchema,
    TrainerSchema,
    monitor_direction,
)
from glattn.secrets import is_secret_key

log = logging.getLogger(__name__)

#: ConfigStore name (below group "schema") -> schema. Option files use /schema/<name>@_here_.
SCHEMAS = {
    "trainer": TrainerSchema,
    "glsa": GLSASchema,
    "tracking": TrackingSchema,
    "sweep": SweepSchema,
    "paths": PathsSchema,
    "report": ReportSchema,
    "dataset/base": DatasetSchema,
    "dataset/synthetic": SyntheticDatasetSchema,
    "dataset/csv": CsvDatasetSchema,
}
#: Stored as plain defaults (the node stays open): the root and the optimizer node.
OPEN_SCHEMAS = {"run": RunSchema, "optimizer": OptimizerSchema}
#: Top-level nodes that have a (closed) schema.
NODES = ("trainer", "dataset", "glsa", "tracking", "sweep", "paths")
#: node ("" for the root) -> the declaration its values are checked against
DECLARED = {
    "": RunSchema,
    "optimizer": OptimizerSchema,
    **{n: SCHEMAS.get(n) or SCHEMAS[f"{n}/base"] for n in NODES},
}
DATASET_SCHEMAS = {"synthetic": SyntheticDatasetSchema, "csv": CsvDatasetSchema}


def register() -> None:
    """Store every schema in Hydra's ConfigStore (idempotent)."""
    cs = ConfigStore.instance()
    for name, schema in SCHEMAS.items():
        group, _, leaf = f"schema/{name}".rpartition("/")
        cs.store(group=group, name=leaf, node=schema)
    for name, schema in OPEN_SCHEMAS.items():
        cs.store(group="schema", name=name, node=defaults_of(schema))


def schema_of(cfg: DictConfig, node: str) -> type | None:
    """The declaration the node `node` ("" for the root) of `cfg` is checked against."""
    if node != "dataset":
        return DECLARED.get(node)
    sub = cfg.get("dataset") if isinstance(cfg, DictConfig) else None
    own = OmegaConf.get_type(sub) if isinstance(sub, DictConfig) else None
    if isinstance(own, type) and is_dataclass(own):
        return own
    name = sub.get("name") if isinstance(sub, DictConfig) else None
    return DATASET_SCHEMAS.get(name, DatasetSchema)


def value_errors(cfg: DictConfig) -> list[str]:
    """One ``key=value: expected ...`` line per declared key whose value is not accepted."""
    errors = []
    for node in DECLARED:
        schema = schema_of(cfg, node)
        sub = cfg if node == "" else cfg.get(node)
        if not isinstance(sub, DictConfig):
            continue
        prefix = f"{node}." if node else ""
        for f in fields(schema):
            error = value_error(schema, sub, prefix, f.name)
            if error:
                errors.append(error)
    return errors


# ----------------------------------------------------------------------------- keys
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
