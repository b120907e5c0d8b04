"""Data-set readers: `conf/dataset/<name>.yaml` (`name: <name>`) <-> `READERS`, one-to-one.

Reader contract: `read(options: DataOptions) -> pandas.DataFrame` with one row per image and
the columns image_id, lesion_id (the group the splits keep together), label (int index into
the class list), path (the image file) and origin ("train": the pool that is split; other
values are official evaluation rows), optionally `frame.attrs["skipped"]` (rows dropped,
as (image_id, reason)) and `frame.attrs["class_names"]`. A reader whose classes are not
glattn's 7 (CLASS_NAMES) gives `reader.class_names(cfg.dataset) -> tuple` so that the class
list, and with it `dataset.num_classes`, is known before any image is read.
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from glattn.data.classes import CLASS_NAMES
from glattn.data.csvfolder import csv_class_names, read_csv_folder
from glattn.data.ham10000 import read_ham10000
from glattn.data.isic2018 import read_isic2018
from glattn.data.synthetic import ensure_synthetic
from glattn.registry import ContractError, Registry

REQUIRED = ("image_id", "lesion_id", "label", "path", "origin")

READERS = Registry(
    "dataset",
    contract="`read(options)` returns a DataFrame with columns "
    f"{', '.join(REQUIRED)} (label: int index into the class list), one row per image",
    where=("glattn.data.readers", "READERS"),
)


@READERS.register("synthetic")
def read_synthetic(o) -> pd.DataFrame:
    root = ensure_synthetic(
        o.root, o.num_images, o.source_width, o.source_height, o.generator_seed
    )
    return read_ham10000(root)


@READERS.register(
    "ham10000", reference="HAM10000, Tschandl et al. 2018 (doi:10.1038/sdata.2018.161)"
)
def read_ham(o) -> pd.DataFrame:
    return read_ham10000(o.root)


@READERS.register("isic2018", reference="ISIC 2018 Task 3, Codella et al. 2019 (arXiv:1902.03368)")
def read_isic(o) -> pd.DataFrame:
    return read_isic2018(o.root, o.eval_split)


read_csv_folder.class_names = csv_class_names
READERS.register("csv")(read_csv_folder)


def class_names_of(d: Mapping) -> tuple[str, ...]:
    """The class list of data-set config `d` (cfg.dataset), before any image is read."""
    reader = READERS.get(str(d.get("name")))
    own = getattr(reader, "class_names", None)
    return tuple(own(d)) if own is not None else CLASS_NAMES


def num_classes(*, _parent_) -> int:
    """Resolver ``${glattn.num_classes:}`` (glattn.resolvers) in a data-set option: the length
    of its class list, e.g. the labels of dataset=csv's CSV."""
    return len(class_names_of(_parent_))


def read(o) -> tuple[pd.DataFrame, tuple[str, ...]]:
    """Run the reader of `o.name`; its frame checked against the contract, and its classes."""
    reader = READERS.get(o.name)
    frame = reader(o)
    if not isinstance(frame, pd.DataFrame):
        raise READERS.breach(reader, f"it returned {type(frame).__name__}, not a DataFrame")
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise READERS.breach(reader, f"its frame has no column(s) {missing}")
    names = tuple(frame.attrs.get("class_names") or o.classes)
    labels = frame["label"].to_numpy()
    if len(labels) and (labels.min() < 0 or labels.max() >= len(names)):
        raise READERS.breach(
            reader, f"labels range {labels.min()}..{labels.max()} for {len(names)} classes"
        )
    if names != tuple(o.classes):
        raise ContractError(
            f"dataset reader {o.name!r} read classes {list(names)}, but its class list "
            f"(reader.class_names) says {list(o.classes)}"
        )
    return frame, names
