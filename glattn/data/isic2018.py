"""ISIC 2018 Task 3, lesion diagnosis (Codella et al. 2019, "Skin Lesion Analysis Toward
Melanoma Detection 2018", arXiv:1902.03368; training images = HAM10000), read as
distributed. Under `dataset.root` (any case, files may sit one folder down):

  ISIC2018_Task3_Training_Input/            ISIC_XXXXXXX.jpg (+ ATTRIBUTION.txt, LICENSE.txt)
  ISIC2018_Task3_Training_GroundTruth.csv   image,MEL,NV,BCC,AKIEC,BKL,DF,VASC (one-hot)
  ISIC2018_Task3_Training_LesionGroupings.csv  image,lesion_id,diagnosis_confirm_type
  ISIC2018_Task3_{Validation,Test}_Input/ and _GroundTruth.csv (dataset.eval_split=
                                            official_val / official_test)

Without the LesionGroupings file every image is its own group (logged as a warning): the
split cannot then keep images of one lesion together. The official Test set has one row,
ISIC_0035068, whose image is absent from some copies: that row (and only that one) is
skipped with a warning and recorded in the run's skipped_images.csv; any other listed
image without a file is an error.

Scoring rules of the official scorer (isic-challenge-scoring, ``load_csv.py``), applied by
``official_rows`` (and official_result) to every metric of an official set:
the probability CSV has one row per ground-truth row, in ground-truth order (a row whose
image was skipped gets uniform probabilities), and ISIC_0035068 has score weight 0.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from glattn.data.classes import CLASS_NAMES, ISIC_COLUMNS
from glattn.data.errors import DataError
from glattn.data.layout import check_root, find_dir, find_file, locate_images
from glattn.data.table import check_not_blank, check_unique, line_of, read_table
from glattn.metrics import compute_metrics

log = logging.getLogger(__name__)

PREFIX = "ISIC2018_Task3_"
PARTS = {"train": "Training", "official_val": "Validation", "official_test": "Test"}
# Rows of the official ground truth whose image is missing from some distributed copies.
KNOWN_MISSING = {"official_test": {"ISIC_0035068"}}
#: Images the official scorer gives score weight 0 wherever they appear in a ground truth
#: (isic_challenge_scoring/load_csv.py, parse_truth_csv).
ZERO_WEIGHT = frozenset({"ISIC_0035068"})


def read_ground_truth(path: Path) -> pd.DataFrame:
    """image + label (index into CLASS_NAMES) from a one-hot ISIC 2018 Task 3 CSV."""
    frame = read_table(path, ["image"], lower_columns=False)
    frame.columns = [c if c == "image" else c.upper() for c in frame.columns]
    frame = frame.rename(columns={c: "image" for c in frame.columns if c.lower() == "image"})
    missing = [c for c in ISIC_COLUMNS if c not in frame.columns]
    if missing:
        raise DataError(
            f"{path}: missing class column(s) {missing}; expected header "
            f"image,{','.join(ISIC_COLUMNS)}"
        )
    extra = [c for c in frame.columns if c not in ("image", *ISIC_COLUMNS)]
    if extra:
        log.warning("%s: ignoring column(s) %s (not one of the 7 classes)", path, extra)
    if frame.empty:
        raise DataError(f"{path}: ground truth has a header but no rows")
    check_not_blank(frame, ["image"], path)
    check_unique(frame, "image", path)
    try:
        onehot = frame[list(ISIC_COLUMNS)].replace("", "nan").astype(float).to_numpy()
    except ValueError as e:
        raise DataError(f"{path}: non-numeric class value ({e}); expected 0.0 or 1.0") from e
    valid = (np.isin(onehot, (0.0, 1.0)).all(axis=1)) & (onehot.sum(axis=1) == 1.0)
    if not valid.all():
        i = int(np.flatnonzero(~valid)[0])
        raise DataError(
            f"{path} line {line_of(i)} (image {frame['image'].iloc[i]}): unknown label "
            f"{dict(zip(ISIC_COLUMNS, onehot[i].tolist()))}; expected exactly one of "
            f"{','.join(ISIC_COLUMNS)} to be 1.0 and the others 0.0"
        )
    out = pd.DataFrame({"image_id": frame["image"], "label": onehot.argmax(axis=1)})
    out["dx"] = [CLASS_NAMES[i] for i in out["label"]]
    return out


def _lesions(root: Path, frame: pd.DataFrame) -> pd.Series:
    path = find_file(root, [f"{PREFIX}Training_LesionGroupings.csv"])
    if path is None:
        log.warning(
            "%s: no %sTraining_LesionGroupings.csv; grouping falls back to one group per "
            "image (images of the same lesion may then land in different splits)",
            root,
            PREFIX,
        )
        return frame["image_id"].copy()
    groups = read_table(path, ["image", "lesion_id"])
    check_not_blank(groups, ["image", "lesion_id"], path)
    check_unique(groups, "image", path)
    lesion = frame["image_id"].map(dict(zip(groups["image"], groups["lesion_id"])))
    if lesion.isna().any():
        log.warning(
            "%s: %d training images have no grouping row; each is its own group",
            path,
            int(lesion.isna().sum()),
        )
        lesion = lesion.fillna(frame["image_id"])
    return lesion


def _read_part(root: Path, part: str) -> tuple[pd.DataFrame, list[tuple[str, str]]]:
    name = PARTS[part]
    gt = find_file(root, [f"{PREFIX}{name}_GroundTruth.csv"])
    if gt is None:
        raise DataError(
            f"{root}: no {PREFIX}{name}_GroundTruth.csv (in the root or a folder below it); "
            f"needed for the {name.lower()} set"
            + ("" if part == "train" else f" (dataset.eval_split={part})")
        )
    frame = read_ground_truth(gt)
    image_dir = find_dir(root, f"{PREFIX}{name}_Input") or root
    paths, skipped = locate_images(
        frame["image_id"], image_dir, str(gt), skip_missing=KNOWN_MISSING.get(part, ())
    )
    frame["path"] = [None if p is None else str(p) for p in paths]
    frame["origin"] = part
    records = [(i, f"listed in {gt.name} but its image is absent from this copy") for i in skipped]
    for image_id, reason in records:
        log.warning("ISIC 2018 %s: skipping %s: %s", name, image_id, reason)
    return frame[frame["path"].notna()].reset_index(drop=True), records


def read_isic2018(root, eval_split: str = "holdout") -> pd.DataFrame:
    """Training pool (origin "train") plus, for eval_split official_val/official_test, the
    official set (origin = eval_split); columns image_id, lesion_id, label, dx, path, origin.
    frame.attrs["skipped"] lists (image_id, reason) of rows dropped by the policy above."""
    root = check_root(root)
    train, skipped = _read_part(root, "train")
    train["lesion_id"] = _lesions(root, train)
    frames = [train]
    if eval_split != "holdout":
        official, more = _read_part(root, eval_split)
        skipped += more
        official["lesion_id"] = official["image_id"]
        frames.append(official)
    frame = pd.concat(frames, ignore_index=True)
    check_unique(frame, "image_id", root)
    frame.attrs["skipped"] = skipped
    log.info("ISIC 2018: %s", frame.groupby("origin").size().to_dict())
    return frame


def score_weights(image_ids: Sequence[str]) -> np.ndarray:
    """The scorer's score_weight per row: 0 for ZERO_WEIGHT images, else 1."""
    return np.array([0.0 if str(i) in ZERO_WEIGHT else 1.0 for i in image_ids])


def probability_frame(image_ids: Sequence[str], probs: np.ndarray, class_names) -> pd.DataFrame:
    """ISIC 2018 Task 3 submission format: image,MEL,NV,BCC,AKIEC,BKL,DF,VASC."""
    frame = pd.DataFrame(np.asarray(probs), columns=[str(c).upper() for c in class_names])
    frame.insert(0, "image", [str(i) for i in image_ids])
    return frame


@dataclass
class OfficialRows:
    """One evaluated split on an official set, row for row with its ground truth."""

    frame: pd.DataFrame  # submission format, ground-truth order, every ground-truth row
    labels: np.ndarray  # (N,) class index per ground-truth row
    probs: np.ndarray  # (N, 7) predicted probabilities; uniform where the image is missing
    weights: np.ndarray  # (N,) the scorer's score_weight
    missing: list[str]  # ground-truth images without a prediction (given uniform rows)


def official_ground_truth(root, eval_split: str) -> pd.DataFrame:
    """image_id, label of an official set's ground truth, in the file's order."""
    root = check_root(root)
    name = PARTS[eval_split]
    gt = find_file(root, [f"{PREFIX}{name}_GroundTruth.csv"])
    if gt is None:
        raise DataError(
            f"{root}: no {PREFIX}{name}_GroundTruth.csv (dataset.eval_split={eval_split})"
        )
    return read_ground_truth(gt)[["image_id", "label"]]


def official_rows(dataset_cfg, image_ids: Sequence[str], probs: np.ndarray, class_names):
    """`OfficialRows` for predictions on dataset_cfg's official set (dataset.name isic2018,
    eval_split official_val/official_test); None for any other data set or split. Every
    predicted image must be in the ground truth; a ground-truth image without a prediction
    (absent on disk, or skipped as unreadable) gets uniform probabilities 1/7."""
    name = str(dataset_cfg.get("name"))
    eval_split = str(dataset_cfg.get("eval_split"))
    if name != "isic2018" or eval_split not in ("official_val", "official_test"):
        return None
    truth = official_ground_truth(dataset_cfg.get("root"), eval_split)
    probs = np.asarray(probs, dtype=np.float64)
    ids = [str(i) for i in image_ids]
    if probs.shape != (len(ids), len(class_names)):
        raise ValueError(f"probs shape {probs.shape}, expected ({len(ids)}, {len(class_names)})")
    row = {image: i for i, image in enumerate(ids)}
    extra = sorted(set(ids) - set(truth["image_id"]))
    if extra:
        raise DataError(
            f"{len(extra)} predicted image(s) are not in the official {PARTS[eval_split]} "
            f"ground truth: {extra[:5]}"
        )
    full = np.full((len(truth), len(class_names)), 1.0 / len(class_names))
    missing = []
    for j, image in enumerate(truth["image_id"]):
        if image in row:
            full[j] = probs[row[image]]
        else:
            missing.append(image)
    if missing:
        log.warning(
            "ISIC 2018 %s: %d ground-truth image(s) without a prediction get uniform rows: %s",
            PARTS[eval_split],
            len(missing),
            missing[:5],
        )
    return OfficialRows(
        probability_frame(truth["image_id"], full, class_names),
        truth["label"].to_numpy(),
        full,
        score_weights(truth["image_id"]),
        missing,
    )


def official_result(
    dataset_cfg, result: dict, image_ids: Sequence[str], class_names: Sequence[str]
) -> tuple[dict, pd.DataFrame | None]:
    """The ISIC 2018 official rules for one evaluated split (``dataset=isic2018`` with
    ``dataset.eval_split=official_val|official_test``; anything else comes back unchanged
    with frame None). Returns ``(result, frame)``: ``frame`` is the submission-format
    probability table with one row per ground-truth row in ground-truth order (an image
    missing on disk gets a uniform row; build_data lists it in skipped_images.csv), and
    ``result`` the same dict with every metric recomputed on those rows with the scorer's
    weights (ISIC_0035068: 0), so it equals the official scorer's on ``frame``. The loss
    and ``probs``/``labels`` of the evaluated images are kept as they were.
    """
    official = official_rows(dataset_cfg, image_ids, result["probs"], class_names)
    if official is None:
        return result, None
    scores = compute_metrics(official.labels, official.probs, class_names, official.weights)
    return {**result, **scores}, official.frame
