"""A generic data set (`dataset=csv`): a folder of images plus a CSV with an image column, a
label column and an optional group column (lesion or patient id).

Keys (conf/dataset/csv.yaml): `dataset.root` (the image folder; the image column holds
paths relative to it), `dataset.csv` (the CSV, absolute or relative to the root; comma- or
tab-separated), `dataset.image_column`, `dataset.label_column`, `dataset.group_column` (a column:
the grouped splits keep a group together exactly as HAM10000's `lesion_id`; `none`: every
image its own group, on purpose; null: the same, refused when the CSV has a column named
like a patient, lesion, subject or case id, which would put one patient's images on both
sides of the split), `dataset.classes` (null: the sorted labels of the CSV; a list fixes
the order and must hold every label). `dataset.num_classes` follows the class list
(`${glattn.num_classes:}`), so the model's head, the metrics, the per-class reports and the
probability CSV all use this data set's own classes.
"""

from __future__ import annotations

import functools
import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from glattn.data.errors import DataError
from glattn.data.identity import check_one_row_per_file
from glattn.data.table import check_not_blank, check_unique, line_of, read_table
from glattn.schema import CsvDatasetSchema, defaults_of

log = logging.getLogger(__name__)

MAX_LISTED = 5
#: `dataset.group_column=none`: split per image, on purpose
NO_GROUP = "none"
#: column names that hold a patient/lesion/subject/case id (patient_id, LesionID, case)
GROUP_LIKE = re.compile(r"(?:^|[^a-z])(patient|lesion|subject|case)", re.IGNORECASE)


def _key(d: Mapping, key: str, default=None):
    value = d.get(key, default) if hasattr(d, "get") else default
    return default if value is None else value


def csv_root(d: Mapping) -> Path:
    root = d.get("root") if hasattr(d, "get") else None
    if root is None or str(root).strip() == "":
        raise DataError(
            "dataset=csv: dataset.root is not set; expected the folder of the images "
            "(dataset.root=/data/my_set), with dataset.csv naming the CSV"
        )
    path = Path(str(root)).expanduser()
    if not path.is_dir():
        raise DataError(f"dataset.root={str(root)!r}: folder {path} does not exist")
    return path


def csv_path(d: Mapping) -> Path:
    name = _key(d, "csv")
    if not name or not str(name).strip():
        raise DataError("dataset.csv is not set; expected the CSV's path (relative to the root)")
    path = Path(str(name)).expanduser()
    path = path if path.is_absolute() else csv_root(d) / path
    if not path.is_file():
        raise DataError(f"dataset.csv={str(name)!r}: file {path} does not exist")
    return path


def _columns(d: Mapping) -> tuple[str, str, str | None]:
    declared = defaults_of(CsvDatasetSchema)
    image = str(_key(d, "image_column", declared["image_column"]))
    label = str(_key(d, "label_column", declared["label_column"]))
    group = d.get("group_column") if hasattr(d, "get") else None
    if group is None or str(group).lower() == NO_GROUP:
        return image, label, None
    return image, label, str(group)


def _group_intent_error(path: Path, columns, d: Mapping) -> str | None:
    """The refusal for a CSV with a patient-like column while `group_column` is null."""
    if (d.get("group_column") if hasattr(d, "get") else None) is not None:
        return None  # a column, or `none`: the user said what they want
    like = [str(c) for c in columns if GROUP_LIKE.search(str(c))]
    if not like:
        return None
    return (
        f"{path}: column(s) {like} look like a patient/lesion/subject/case id, but "
        "dataset.group_column is null: the split would be per image and put one group's "
        f"images on both sides of it. Give dataset.group_column={like[0]} (grouped splits), "
        "or dataset.group_column=none to split per image on purpose"
    )


@functools.lru_cache(maxsize=16)
def _header(path: str, mtime_ns: int, size: int) -> tuple[str, ...]:
    return tuple(read_table(Path(path), [], lower_columns=False).columns)


def check_group_column(d: Mapping) -> None:
    """Refuse a per-image split the user did not ask for (see the module docstring); runs
    from the data options check, before any run exists."""
    path = csv_path(d)
    stat = os.stat(path)
    error = _group_intent_error(path, _header(str(path), stat.st_mtime_ns, stat.st_size), d)
    if error:
        raise DataError(error)


def _read(path: Path, d: Mapping) -> pd.DataFrame:
    frame = read_table(path, [], lower_columns=False)
    error = _group_intent_error(path, frame.columns, d)
    if error:
        raise DataError(error)
    for key, column in zip(("image_column", "label_column", "group_column"), _columns(d)):
        if column is not None and column not in frame.columns:
            raise DataError(
                f"dataset.{key}={column!r}: {path} has no such column; found {list(frame.columns)}"
            )
    if frame.empty:
        raise DataError(f"{path}: the CSV has a header but no rows; expected one row per image")
    return frame


@functools.lru_cache(maxsize=16)
def _labels_in(path: str, mtime_ns: int, size: int, column: str) -> tuple[str, ...]:
    frame = read_table(Path(path), [column], lower_columns=False)
    return tuple(sorted({v for v in frame[column] if v != ""}))


def csv_class_names(d: Mapping) -> tuple[str, ...]:
    """The class list: `dataset.classes`, or the sorted labels of the CSV's label column."""
    classes = d.get("classes") if hasattr(d, "get") else None
    if classes is not None:
        if isinstance(classes, str) or not hasattr(classes, "__iter__"):
            raise DataError(f"dataset.classes={classes!r}: expected a list of labels or null")
        names = tuple(str(c).strip() for c in classes)
        dup = sorted({c for c in names if names.count(c) > 1})
        if dup or len(names) < 2 or "" in names:
            raise DataError(
                f"dataset.classes={list(names)}: expected at least 2 distinct, non-blank labels"
                + (f" (repeated: {dup})" if dup else "")
            )
        return names
    path = csv_path(d)
    _, label, _ = _columns(d)
    check_not_blank(_read(path, d), [label], path)  # a missing column, a short row
    stat = os.stat(path)
    names = _labels_in(str(path), stat.st_mtime_ns, stat.st_size, label)
    if len(names) < 2:
        raise DataError(
            f"{path}: column {label!r} holds {len(names)} distinct label(s) {list(names)}; "
            "expected at least 2 classes"
        )
    return names


def read_csv_folder(o) -> pd.DataFrame:
    """image_id (the image column's value), lesion_id (the group, or the image), label
    (index into the class list), dx (the label), path, origin; attrs["class_names"]."""
    d = {
        "root": o.root,
        "csv": o.csv,
        "image_column": o.image_column,
        "label_column": o.label_column,
        "group_column": o.group_column,
        "classes": None if o.classes is None else list(o.classes),
    }
    root = csv_root(d)
    path = csv_path(d)
    image, label, group = _columns(d)
    frame = _read(path, d)
    names = tuple(o.classes) if o.classes is not None else csv_class_names(d)
    check_not_blank(frame, [c for c in (image, label, group) if c is not None], path)
    check_unique(frame, image, path)
    index = {c: i for i, c in enumerate(names)}
    unknown = [(i, v) for i, v in enumerate(frame[label]) if v not in index]
    if unknown:
        shown = ", ".join(f"{v!r} (line {line_of(i)})" for i, v in unknown[:MAX_LISTED])
        raise DataError(
            f"{path}: {len(unknown)} row(s) with a label not in dataset.classes: {shown}"
            f"{' ...' if len(unknown) > MAX_LISTED else ''}; expected one of {', '.join(names)}"
        )
    paths = [root / v for v in frame[image]]
    missing = [(i, v) for i, (v, p) in enumerate(zip(frame[image], paths)) if not p.is_file()]
    if missing:
        shown = ", ".join(f"{v} (line {line_of(i)})" for i, v in missing[:MAX_LISTED])
        more = f" (and {len(missing) - MAX_LISTED} more)" if len(missing) > MAX_LISTED else ""
        raise DataError(
            f"{path}: {len(missing)} of {len(frame)} images in column {image!r} have no file "
            f"under dataset.root={str(root)!r}: {shown}{more}; expected paths relative to "
            "the root"
        )
    # the image's identity is its file: images/x.png and ./images/x.png are one image
    check_one_row_per_file(
        paths, str(path), lambda i: f"{frame[image].iloc[i]!r} (line {line_of(i)})"
    )
    out = pd.DataFrame(
        {
            "image_id": frame[image].to_numpy(),
            "lesion_id": (frame[group] if group is not None else frame[image]).to_numpy(),
            "label": [index[v] for v in frame[label]],
            "dx": frame[label].to_numpy(),
            "path": [str(p) for p in paths],
            "origin": "train",
        }
    )
    out.attrs["class_names"] = names
    log.info(
        "csv: %d images, %d groups, %d classes (%s) from %s",
        len(out),
        out["lesion_id"].nunique(),
        len(names),
        ", ".join(names),
        path,
    )
    return out
