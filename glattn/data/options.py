"""cfg.dataset -> checked, typed options. Each bad value fails with the key, the value and
what is allowed (conf/dataset/*.yaml documents every key)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path

from glattn.data.classes import CLASS_NAMES
from glattn.data.errors import DataError

SAMPLERS = ("weighted", "none")
EVAL_SPLITS = ("holdout", "official_val", "official_test")
# training augmentation: batched on the device | per image (workers) | none (the eval
# transform, e.g. debug=overfit: can the model fit a few fixed images at all?)
AUGMENTS = ("device", "cpu", "none")


@dataclass(frozen=True)
class DataOptions:
    name: str
    root: str | None
    image_size: int = 224
    num_classes: int = 7
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    folds: int = 1
    fold: int = 0
    split_seed: int = 0
    sampler: str = "weighted"
    eval_split: str = "holdout"
    skip_bad_images: bool = False
    cache: bool = True
    cache_dir: str = "outputs/cache"
    num_workers: int = 0
    augment: str = "device"
    # synthetic only
    num_images: int = 2000
    source_width: int = 200
    source_height: int = 150
    generator_seed: int = 0
    # the class list (CLASS_NAMES, or the csv data set's / an extension reader's own)
    classes: tuple[str, ...] = CLASS_NAMES
    # csv only (glattn.data.csvfolder)
    csv: str | None = None
    image_column: str = "image"
    label_column: str = "label"
    group_column: str | None = None
    # from the top level of the config
    seed: int = 0


def _get(d: Mapping, key: str, default):
    value = d.get(key, default) if hasattr(d, "get") else default
    return default if value is None and default is not None else value


def _int(d, key, default, low, high=None) -> int:
    v = _get(d, key, default)
    ok = isinstance(v, int) and not isinstance(v, bool) and v >= low and (high is None or v < high)
    if not ok:
        bound = f">= {low}" + ("" if high is None else f" and < {high}")
        raise DataError(f"dataset.{key}={v!r}: expected an integer {bound}")
    return v


def _fraction(d, key, default) -> float:
    v = _get(d, key, default)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v < 1:
        raise DataError(f"dataset.{key}={v!r}: expected a number in [0, 1)")
    return float(v)


def _choice(d, key, default, allowed) -> str:
    v = _get(d, key, default)
    v = "none" if v is None else v
    if v not in allowed:
        raise DataError(f"dataset.{key}={v!r}: expected one of {', '.join(allowed)}")
    return v


def _bool(d, key, default) -> bool:
    v = _get(d, key, default)
    if not isinstance(v, bool):
        raise DataError(f"dataset.{key}={v!r}: expected true or false")
    return v


def _plain(d) -> dict:
    """cfg.dataset as a dict, interpolations resolved except `num_classes` (which may itself
    be derived from the class list: `${glattn.num_classes:}`)."""
    keys = [k for k in d.keys() if k != "num_classes"] if hasattr(d, "keys") else []
    out = {}
    for k in keys:
        v = d.get(k)
        out[k] = list(v) if hasattr(v, "__iter__") and not isinstance(v, (str, Mapping)) else v
    return out


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
    from glattn.data.readers import READERS, class_names_of

    name = _choice(d, "name", None, tuple(READERS.names()))
    skip = ("name", "root", "classes")
    defaults = {f.name: f.default for f in fields(DataOptions) if f.name not in skip}
    out_dir = Path(str(cfg.get("paths", {}).get("output_dir", "outputs")))
    root = _get(d, "root", None)
    if name == "synthetic" and not root:
        root = str(out_dir / "data")
    root = None if root is None else str(root)
    extra = {}
    if name == "csv":
        for key in ("csv", "image_column", "label_column", "group_column"):
            v = _get(d, key, None)
            if v is not None and (not isinstance(v, str) or not v.strip()):
                raise DataError(f"dataset.{key}={v!r}: expected a non-empty string")
            if v is not None:
                extra[key] = v
    # before num_classes, which may be derived from it (${glattn.num_classes:})
    classes = class_names_of({**_plain(d), "name": name, "root": root})
    if name == "csv":  # a patient-like column and group_column null: refused here, early
        from glattn.data.csvfolder import check_group_column

        check_group_column({**_plain(d), "root": root})
    o = dict(
        name=name,
        root=root,
        classes=classes,
        **extra,
        image_size=_int(d, "image_size", defaults["image_size"], 8),
        num_classes=_int(d, "num_classes", 7, 1),
        val_fraction=_fraction(d, "val_fraction", defaults["val_fraction"]),
        test_fraction=_fraction(d, "test_fraction", defaults["test_fraction"]),
        folds=_int(d, "folds", 1, 1),
        split_seed=_int(d, "split_seed", 0, 0),
        sampler=_choice(d, "sampler", "weighted", SAMPLERS),
        eval_split=_choice(d, "eval_split", "holdout", EVAL_SPLITS),
        skip_bad_images=_bool(d, "skip_bad_images", False),
        cache=_bool(d, "cache", True),
        cache_dir=str(_get(d, "cache_dir", None) or out_dir / "cache"),
        num_workers=_int(d, "num_workers", 0, 0),
        augment=_choice(d, "augment", "device", AUGMENTS),
        num_images=_int(d, "num_images", defaults["num_images"], 28),
        source_width=_int(d, "source_width", defaults["source_width"], 16),
        source_height=_int(d, "source_height", defaults["source_height"], 16),
        generator_seed=_int(d, "generator_seed", 0, 0),
        seed=int(cfg.get("seed", 0) or 0),
    )
    o["fold"] = _int(d, "fold", 0, 0, o["folds"])
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
