"""Lesion-grouped, stratified splits: no leakage over many seeds and folds, class
proportions within tolerance, determinism, k-fold coverage, split.csv and count logging."""

import logging

import numpy as np
import pandas as pd
import pytest
from fake_datasets import make_ham10000
from omegaconf import OmegaConf

from glattn.data import build_data
from glattn.data.classes import CLASS_NAMES, HAM10000_DX_COUNTS
from glattn.data.splits import assign_splits


def ham_like(n_lesions=400, seed=0):
    """Labels and lesion groups in HAM10000's class mix, 1-4 images per lesion."""
    rng = np.random.default_rng(seed)
    p = np.array([HAM10000_DX_COUNTS[c] for c in CLASS_NAMES], float)
    lesion_labels = rng.choice(7, size=n_lesions, p=p / p.sum())
    sizes = rng.choice([1, 2, 3, 4], size=n_lesions, p=[0.76, 0.17, 0.05, 0.02])
    return np.repeat(lesion_labels, sizes), np.repeat(np.arange(n_lesions), sizes)


def lesions_of(split, groups, name):
    return set(groups[split == name])


@pytest.mark.parametrize("seed", range(8))
def test_no_lesion_in_two_splits_holdout(seed):
    labels, groups = ham_like(seed=seed)
    split = assign_splits(labels, groups, 0.15, 0.15, seed=seed)
    tr, va, te = (lesions_of(split, groups, s) for s in ("train", "val", "test"))
    assert not (tr & va) and not (tr & te) and not (va & te)
    assert set(split) == {"train", "val", "test"}


@pytest.mark.parametrize("seed", range(3))
def test_kfold_no_leakage_disjoint_folds_and_fixed_test(seed):
    labels, groups = ham_like(n_lesions=300, seed=seed)
    k = 4
    splits = [
        assign_splits(labels, groups, 0.15, 0.15, folds=k, fold=i, seed=seed) for i in range(k)
    ]
    tests = [s == "test" for s in splits]
    assert all(np.array_equal(tests[0], t) for t in tests)  # same test set in every fold
    vals = np.stack([s == "val" for s in splits])
    assert (vals.sum(axis=0) == (~tests[0]).astype(int)).all()  # each non-test image once
    for s in splits:
        tr, va, te = (lesions_of(s, groups, n) for n in ("train", "val", "test"))
        assert not (tr & va) and not (tr & te) and not (va & te)


@pytest.mark.parametrize("val,test", [(0.15, 0.15), (0.2, 0.2), (0.1, 0.0)])
def test_stratified_fractions_within_tolerance(val, test):
    labels, groups = ham_like(n_lesions=1200, seed=1)
    split = assign_splits(labels, groups, val, test, seed=1)
    k_test = round(1 / test) if test else None
    exp_test = 1 / k_test if test else 0.0
    exp_val = (1 - exp_test) / round((1 - test) / val)
    for c in range(7):
        n = (labels == c).sum()
        frac_test = ((split == "test") & (labels == c)).sum() / n
        frac_val = ((split == "val") & (labels == c)).sum() / n
        tol = 0.02 + 1.0 / np.sqrt(n)  # rare classes (df ~ 20 images) vary more
        assert abs(frac_test - exp_test) < tol, (c, frac_test, exp_test)
        assert abs(frac_val - exp_val) < tol, (c, frac_val, exp_val)


def test_deterministic_for_seed_and_seed_matters():
    labels, groups = ham_like(seed=2)
    a = assign_splits(labels, groups, 0.15, 0.15, seed=7)
    b = assign_splits(labels, groups, 0.15, 0.15, seed=7)
    c = assign_splits(labels, groups, 0.15, 0.15, seed=8)
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_no_val_no_test():
    labels, groups = ham_like(n_lesions=100)
    assert set(assign_splits(labels, groups, 0.0, 0.0)) == {"train"}


def test_build_data_writes_split_csv_and_logs_counts(tmp_path, caplog):
    meta = make_ham10000(tmp_path / "data", lesions_per_class=8)
    cfg = OmegaConf.create(
        {
            "seed": 0,
            "paths": {"output_dir": str(tmp_path)},
            "dataset": dict(
                name="ham10000",
                root=str(tmp_path / "data"),
                image_size=16,
                val_fraction=0.25,
                test_fraction=0.25,
                folds=3,
                fold=1,
                split_seed=4,
                cache_dir=str(tmp_path / "c"),
            ),
        }
    )
    with caplog.at_level(logging.INFO):
        bundle = build_data(cfg, tmp_path / "run")
    written = pd.read_csv(tmp_path / "run" / "split.csv")
    assert list(written.columns) == ["image_id", "lesion_id", "label", "split"]
    pd.testing.assert_frame_equal(written, bundle.split_frame.reset_index(drop=True))
    merged = written.merge(meta[["image_id", "dx"]], on="image_id")
    assert (merged["label"] == merged["dx"]).all() and len(merged) == len(meta)
    assert written.groupby("lesion_id")["split"].nunique().max() == 1
    for name in ("train", "val", "test"):
        ds = getattr(bundle, name)
        assert ds.image_ids == written.loc[written["split"] == name, "image_id"].tolist()
    assert "images per class and split" in caplog.text and "fold 1 of 3" in caplog.text
    for c in CLASS_NAMES:
        assert c in caplog.text
