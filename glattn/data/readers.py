"""Data-set readers: `conf/dataset/<name>.yaml` names its reader with `_target_` (glattn's
below, or a function of one's own; no registration) and the data set with `name`.

Reader contract (`CONTRACT`, checked on the frame every reader returns):
`read(options: DataOptions) -> pandas.DataFrame` with one row per image (one file: rows
whose paths resolve to one file are refused, glattn.data.identity) and the columns
image_id, lesion_id (the group the splits keep together), label (int index into the class
list), path (the image file) and origin ("train": the pool that is split; other
values are official evaluation rows), optionally `frame.attrs["skipped"]` (rows dropped,
as (image_id, reason)) and `frame.attrs["class_names"]`. A reader whose classes are not
glattn's 7 (CLASS_NAMES) gives `reader.class_names(cfg.dataset) -> tuple` so that the class
list, and with it `dataset.num_classes`, is known before any image is read.
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from glattn.contract import Contract, ContractError, import_target
from glattn.data.classes import CLASS_NAMES
from glattn.data.csvfolder import csv_class_names, read_csv_folder
from glattn.data.errors import DataError
from glattn.data.ham10000 import read_ham10000
from glattn.data.identity import check_one_row_per_file
from glattn.data.isic2018 import read_isic2018
from glattn.data.synthetic import ensure_synthetic

REQUIRED = ("image_id", "lesion_id", "label", "path", "origin")

CONTRACT = Contract(
    "dataset",
    "`read(options)` returns a DataFrame with columns "
    f"{', '.join(REQUIRED)} (label: int index into the class list), one row per image",
)


def read_synthetic(o) -> pd.DataFrame:
    root = ensure_synthetic(
        o.root, o.num_images, o.source_width, o.source_height, o.generator_seed
    )
    return read_ham10000(root)


def read_ham(o) -> pd.DataFrame:
    return read_ham10000(o.root)


def read_isic(o) -> pd.DataFrame:
    return read_isic2018(o.root, o.eval_split)


read_ham.reference = "HAM10000, Tschandl et al. 2018 (doi:10.1038/sdata.2018.161)"
read_isic.reference = "ISIC 2018 Task 3, Codella et al. 2019 (arXiv:1902.03368)"
read_csv_folder.class_names = csv_class_names

#: glattn's readers by `dataset.name`, for a saved config that has no `dataset._target_` (a
#: checkpoint's training config may lack it); a composed config always names its reader
_SAVED = {
    "synthetic": read_synthetic,
    "ham10000": read_ham,
    "isic2018": read_isic,
    "csv": read_csv_folder,
}


def reader_of(d: Mapping):
    """The reader function of data-set config `d` (cfg.dataset): its `_target_`."""
    target = d.get("_target_")
    if target is None and str(d.get("name")) in _SAVED:
        return _SAVED[str(d.get("name"))]
    if target is None:
        raise DataError(
            f"dataset {d.get('name')!r} has no `_target_`; expected its reader, a function "
            "`read(options) -> DataFrame` (module.function), in its conf/dataset/ file"
        )
    try:
        reader = import_target(target, "dataset")
    except ContractError as err:
        raise DataError(str(err)) from None
    if not callable(reader):
        raise DataError(f"dataset._target_={target}: expected a function, got {reader!r}")
    return reader


def class_names_of(d: Mapping) -> tuple[str, ...]:
    """The class list of data-set config `d` (cfg.dataset), before any image is read."""
    reader = reader_of(d)
    own = getattr(reader, "class_names", None)
    return tuple(own(d)) if own is not None else CLASS_NAMES


def num_classes(*, _parent_) -> int:
    """Resolver ``${glattn.num_classes:}`` (glattn.resolvers) in a data-set option: the length
    of its class list, e.g. the labels of dataset=csv's CSV."""
    return len(class_names_of(_parent_))


def read(o, reader) -> tuple[pd.DataFrame, tuple[str, ...]]:
    """Run `reader` (`reader_of(cfg.dataset)`) on options `o`; its frame checked against the
    contract, and its classes."""
    frame = reader(o)
    if not isinstance(frame, pd.DataFrame):
        raise CONTRACT.breach(reader, f"it returned {type(frame).__name__}, not a DataFrame")
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise CONTRACT.breach(reader, f"its frame has no column(s) {missing}")
    names = tuple(frame.attrs.get("class_names") or o.classes)
    labels = frame["label"].to_numpy()
    if len(labels) and (labels.min() < 0 or labels.max() >= len(names)):
        raise CONTRACT.breach(
            reader, f"labels range {labels.min()}..{labels.max()} for {len(names)} classes"
        )
    ids, paths = frame["image_id"].tolist(), frame["path"].tolist()
    check_one_row_per_file(paths, f"dataset={o.name}", lambda i: f"image {ids[i]!r}")
    if names != tuple(o.classes):
        raise ContractError(
            f"dataset reader {o.name!r} read classes {list(names)}, but its class list "
            f"(reader.class_names) says {list(o.classes)}"
        )
    return frame, names
