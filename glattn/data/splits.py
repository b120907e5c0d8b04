"""Lesion-grouped, class-stratified splits (scikit-learn's StratifiedGroupKFold). Images of
one lesion never fall into two splits: an image-level random split of HAM10000 puts the
same lesion in train for ~40% of validation images and inflates every metric.

Holdout: the test split is one fold of StratifiedGroupKFold(k_test = round(1/test_fraction))
over all lesions; validation is one fold of StratifiedGroupKFold(k_val =
round((1 - test_fraction)/val_fraction)) over the rest, so the realised fractions are
1/k of the lesions (0.15 -> 1/7). k-fold (dataset.folds=k > 1, dataset.fold=i): the same
test holdout, then fold i of StratifiedGroupKFold(k) over the rest is validation. All
deterministic for dataset.split_seed.
"""

from __future__ import annotations

import logging
import re
import warnings

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold

from glattn.data.classes import CLASS_NAMES
from glattn.data.errors import DataError
from glattn.logging_utils import DETAIL

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")


def _one_fold(labels, groups, k: int, fold: int, seed: int) -> np.ndarray:
    """Boolean mask of fold `fold` of StratifiedGroupKFold(k) (shuffled by `seed`)."""
    cv = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    with warnings.catch_warnings():  # too-rare classes are reported by check_splits
        warnings.filterwarnings("ignore", message="The least populated class")
        for i, (_, held) in enumerate(cv.split(np.zeros(len(labels)), labels, groups)):
            if i == fold:
                mask = np.zeros(len(labels), dtype=bool)
                mask[held] = True
                return mask
    raise AssertionError("unreachable")


def _groups_needed(groups, k: int, what: str) -> None:
    n_groups = len(set(groups))
    if n_groups < k:
        raise DataError(
            f"{what}: needs at least {k} lesions to make {k} lesion-grouped folds, "
            f"the data has {n_groups}"
        )


def assign_splits(
    labels: np.ndarray,
    groups: np.ndarray,
    val_fraction: float,
    test_fraction: float,
    folds: int = 1,
    fold: int = 0,
    seed: int = 0,
) -> np.ndarray:
    """Split name ("train" / "val" / "test") per image."""
    labels, groups = np.asarray(labels), np.asarray(groups)
    split = np.full(len(labels), "train", dtype=object)
    if test_fraction > 0:
        k = max(2, round(1 / test_fraction))
        _groups_needed(groups, k, f"dataset.test_fraction={test_fraction}")
        split[_one_fold(labels, groups, k, 0, seed)] = "test"
    rest = np.flatnonzero(split == "train")
    if folds > 1:
        k, i = folds, fold
        what = f"dataset.folds={folds}"
    elif val_fraction > 0:
        k, i = max(2, round((1 - test_fraction) / val_fraction)), 0
        what = f"dataset.val_fraction={val_fraction}"
    else:
        return split
    _groups_needed(groups[rest], k, what)
    split[rest[_one_fold(labels[rest], groups[rest], k, i, seed)]] = "val"
    return split


def split_counts(frame: pd.DataFrame, class_names=CLASS_NAMES) -> pd.DataFrame:
    """Images per class (columns, class list order) and split (rows), with totals."""
    table = pd.crosstab(frame["split"], frame["label"]).reindex(
        index=[s for s in SPLITS if s in set(frame["split"])],
        columns=list(class_names),
        fill_value=0,
    )
    table["total"] = table.sum(axis=1)
    return table


#: What each official ISIC 2018 evaluation set is called in messages.
OFFICIAL_SETS = {"official_val": "Validation", "official_test": "Test"}


def _empty_class_advice(split: str, eval_split: str) -> str:
    if eval_split in OFFICIAL_SETS and split == "test":
        name = OFFICIAL_SETS[eval_split]
        return (
            f"the test split is the official ISIC 2018 {name} set (dataset.eval_split="
            f"{eval_split}), which is fixed: no fraction or fold changes it. Check that "
            f"ISIC2018_Task3_{name}_GroundTruth.csv and its images are complete (the official "
            f"{name.lower()} set has all 7 classes), or use dataset.eval_split=holdout for a "
            "lesion-grouped holdout split of the training data"
        )
    if eval_split in OFFICIAL_SETS:
        return (
            "every class needs samples in every split: lower dataset.val_fraction or "
            "dataset.folds (dataset.test_fraction is unused with an official test set) or add "
            "training data"
        )
    return "every class needs samples in every split: lower the fractions/folds or add data"


def check_splits(
    frame: pd.DataFrame, how: str, eval_split: str | None = None, class_names=CLASS_NAMES
) -> pd.DataFrame:
    """Raise if a class has no sample in a split; log and return the count table.
    `eval_split` (dataset.eval_split; None: read from `how`, "..., eval_split=X, ..." as
    build_data writes it) decides the advice: an official set cannot change."""
    if eval_split is None:
        found = re.search(r"eval_split=(\w+)", how)
        eval_split = found.group(1) if found else "holdout"
    table = split_counts(frame, class_names)
    absent = [c for c in class_names if table[c].sum() == 0]
    if absent:
        raise DataError(
            f"the data set has no images of class(es) {absent} ({how}); expected samples of "
            f"all {len(class_names)} classes {', '.join(class_names)}"
        )
    for split, row in table.iterrows():
        empty = [c for c in class_names if row[c] == 0]
        if empty:
            raise DataError(
                f"split {split!r} has no samples of class(es) {empty} ({how}); "
                f"{_empty_class_advice(str(split), eval_split)}. "
                f"Counts per split:\n{table.to_string()}"
            )
    log.info("images per class and split (%s):\n%s", how, table.to_string(), extra=DETAIL)
    return table
