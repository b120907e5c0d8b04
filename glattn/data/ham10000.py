"""HAM10000 (Tschandl, Rosendahl, Kittler 2018, "The HAM10000 dataset, a large collection
of multi-source dermatoscopic images of common pigmented skin lesions",
doi:10.1038/sdata.2018.161), read exactly as distributed.

Layouts accepted under `dataset.root` (folder and file-name case may vary):
  Kaggle:            HAM10000_metadata.csv (comma-separated),
                     HAM10000_images_part_1/, HAM10000_images_part_2/
  Harvard Dataverse: HAM10000_metadata.tab or HAM10000_metadata (no extension),
                     tab-separated, with an extra `dataset` column; images unpacked
                     from HAM10000_images_part_{1,2}.zip
Images (`<image_id>.jpg`) are found anywhere under the root. Blank `age` and `sex` =
`unknown` are legal. Required columns: lesion_id, image_id, dx.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from glattn.data.classes import label_of
from glattn.data.errors import DataError
from glattn.data.layout import check_root, find_file, locate_images
from glattn.data.table import check_not_blank, check_unique, line_of, read_table

log = logging.getLogger(__name__)

METADATA_NAMES = ("HAM10000_metadata.csv", "HAM10000_metadata.tab", "HAM10000_metadata")
REQUIRED_COLUMNS = ["lesion_id", "image_id", "dx"]


def find_metadata(root: Path) -> Path:
    path = find_file(root, METADATA_NAMES)
    if path is None:
        raise DataError(
            f"{root}: no HAM10000 metadata file; expected HAM10000_metadata.csv (Kaggle) or "
            "HAM10000_metadata.tab / HAM10000_metadata (Harvard Dataverse, tab-separated) "
            "in the root or a folder below it"
        )
    return path


def read_ham10000(root) -> pd.DataFrame:
    """The data set as a frame: image_id, lesion_id, label (index into CLASS_NAMES), dx,
    path, origin ("train": the pool that is split), plus the remaining metadata columns."""
    root = check_root(root)
    meta = find_metadata(root)
    frame = read_table(meta, REQUIRED_COLUMNS)
    if frame.empty:
        raise DataError(f"{meta}: metadata has a header but no rows; expected one row per image")
    check_not_blank(frame, ["image_id", "lesion_id", "dx"], meta)
    frame["label"] = [
        label_of(dx, f"{meta} line {line_of(i)} (image {iid})")
        for i, (dx, iid) in enumerate(zip(frame["dx"], frame["image_id"]))
    ]
    frame["dx"] = frame["dx"].str.lower()
    check_unique(frame, "image_id", meta)
    if "age" in frame.columns:  # blank ages are legal (NaN)
        frame["age"] = pd.to_numeric(frame["age"], errors="coerce")
    paths, _ = locate_images(frame["image_id"], root, str(meta))
    frame["path"] = [str(p) for p in paths]
    frame["origin"] = "train"
    log.info(
        "HAM10000: %d images, %d lesions from %s", len(frame), frame["lesion_id"].nunique(), meta
    )
    return frame
