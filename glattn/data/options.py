"""cfg.dataset -> checked, typed options. Each key's type, default and range are declared
once, in glattn.schema (DatasetSchema and its per-data-set subclasses); a bad value fails
with the key, the value and what is allowed. Checks across keys (fold < folds, the class
count, the fractions' sum, the official splits) live here."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path

from omegaconf import OmegaConf

from glattn.data.errors import DataError
from glattn.schema import (
    CsvDatasetSchema,
    DatasetSchema,
    PathsSchema,
    SyntheticDatasetSchema,
    choices_of,
    declared_type,
    defaults_of,
    value_error,
)

# training augmentation: batched on the device | per image (workers) | none (the eval
# transform, e.g. debug=overfit: can the model fit a few fixed images at all?)
AUGMENTS = choices_of(DatasetSchema, "augment")
SAMPLERS = choices_of(DatasetSchema, "sampler")
#: the keys of every data set's declaration, the union (synthetic and csv keys included)
_DECLARED = {
    f.name: (schema, f)
    for schema in (DatasetSchema, SyntheticDatasetSchema, CsvDatasetSchema)
    for f in dataclasses.fields(schema)
}

#: declared keys that are not options of the data: its name, folder and class list (set
#: below) and the reader (`_target_`, glattn.data.readers.reader_of)
_NOT_OPTIONS = ("name", "root", "classes", "_target_")
#: The checked options: every declared key (defaults from the declaration), the resolved
#: class list and the top-level seed.
DataOptions = dataclasses.make_dataclass(
    "DataOptions",
    [("name", str), ("root", "str | None"), ("classes", "tuple[str, ...]"), ("seed", int)]
    + [
        (name, f.type, dataclasses.field(default=defaults_of(schema)[name]))
        for name, (schema, f) in _DECLARED.items()
        if name not in _NOT_OPTIONS
    ],
    frozen=True,
)
DataOptions.__module__ = __name__  # pickled into DataLoader workers by name


def _plain(d) -> dict:
    """cfg.dataset as a dict, interpolations resolved except `num_classes` (which may itself
    be derived from the class list: `${glattn.num_classes:}`)."""
    keys = [k for k in d.keys() if k != "num_classes"] if hasattr(d, "keys") else []
    out = {}
    for k in keys:
        v = d.get(k)
        out[k] = list(v) if hasattr(v, "__iter__") and not isinstance(v, (str, Mapping)) else v
    return out


def _value(d, key: str, out_dir: Path):
    """dataset.<key>, checked against its declaration; absent or null: its default (a
    ``${paths.output_dir}`` default resolved against `out_dir`)."""
    schema, f = _DECLARED[key]
    node = OmegaConf.create({key: d.get(key) if hasattr(d, "get") else None})
    if node[key] is None:
        default = defaults_of(schema)[key]
        if default is None:
            return None
        paths = OmegaConf.create({"paths": {"output_dir": str(out_dir)}, key: default})
        node[key] = paths[key]
    error = value_error(schema, node, "dataset.", key)
    if error:
        raise DataError(error)
    value = node[key]
    return float(value) if declared_type(schema, key)[0] is float and value is not None else value


#: the environment variable conf/dataset/<name>.yaml reads the root from
ROOT_ENV = {"ham10000": "GLATTN_HAM10000_ROOT", "isic2018": "GLATTN_ISIC2018_ROOT"}


def root_error(o: DataOptions) -> str | None:
    """Why ``o.root`` cannot be read (unset or no such folder), naming the key and the
    environment variable a user sets it with; None when it is a folder (or generated)."""
    if o.name == "synthetic" or (o.root is not None and Path(o.root).expanduser().is_dir()):
        return None
    env = ROOT_ENV.get(o.name)
    how = f"dataset.root=/path/to/{o.name}" + (
        f" or export {env}=/path/to/{o.name}" if env else ""
    )
    if o.root is None or not str(o.root).strip():
        where = f" (and ${env} is unset)" if env else ""
        return f"dataset={o.name}: dataset.root is not set{where}; give {how}"
    source = f" (from ${env})" if env and os.environ.get(env) == o.root else ""
    return f"dataset.root={o.root!r}{source}: no such folder; give {how}"


def check_options(cfg: Mapping) -> DataOptions:
    d = cfg.get("dataset") if hasattr(cfg, "get") else None
    if d is None:
        raise DataError("cfg.dataset is missing; expected a dataset config (dataset=synthetic)")
    from glattn.data.readers import class_names_of

    name = str(d.get("name") or "").strip()
    if not name:
        raise DataError(f"dataset.name={d.get('name')!r}: expected the data set's name")
    out_dir = Path(
        str(cfg.get("paths", {}).get("output_dir", defaults_of(PathsSchema)["output_dir"]))
    )
    root = d.get("root")
    if name == "synthetic" and not root:
        root = str(out_dir / "data")
    root = None if root is None else str(root)
    own = {"synthetic": SyntheticDatasetSchema, "csv": CsvDatasetSchema}.get(name, DatasetSchema)
    keys = [f.name for f in dataclasses.fields(own) if f.name not in _NOT_OPTIONS]
    # before num_classes, which may be derived from it (${glattn.num_classes:})
    o = {k: _value(d, k, out_dir) for k in keys if k != "num_classes"}
    classes = class_names_of({**_plain(d), "name": name, "root": root})
    if name == "csv":  # a patient-like column and group_column null: refused here, early
        from glattn.data.csvfolder import check_group_column

        check_group_column({**_plain(d), "root": root})
    o.update(
        name=name,
        root=root,
        classes=classes,
        num_classes=_value(d, "num_classes", out_dir),
        seed=int(cfg.get("seed", 0) or 0),
    )
    if o["fold"] >= o["folds"]:
        raise DataError(f"dataset.fold={o['fold']}: expected an integer >= 0 and < {o['folds']}")
    if o["num_classes"] != len(classes):
        raise DataError(
            f"dataset.num_classes={o['num_classes']}: expected {len(classes)} "
            f"({', '.join(classes)})"
        )
    if o["val_fraction"] + o["test_fraction"] >= 1:
        raise DataError(
            f"dataset.val_fraction={o['val_fraction']} + dataset.test_fraction="
            f"{o['test_fraction']}: expected a sum below 1"
        )
    if o["eval_split"] != "holdout" and name != "isic2018":
        raise DataError(
            f"dataset.eval_split={o['eval_split']!r} needs dataset=isic2018 "
            f"(official sets); dataset={name} supports only 'holdout'"
        )
    return DataOptions(**o)
