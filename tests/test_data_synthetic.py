"""The synthetic dermoscopy set: deterministic, HAM10000 proportions, several images per
lesion, Kaggle layout read by the real reader, generated once even when raced."""

import hashlib
import multiprocessing as mp
import os

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from glattn.data import build_data
from glattn.data.classes import CLASS_NAMES, HAM10000_DX_COUNTS
from glattn.data.errors import DataError
from glattn.data.ham10000 import read_ham10000
from glattn.data.synthetic import class_counts, ensure_synthetic

SMALL = dict(num_images=42, width=48, height=36)


def digest(folder):
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            h.update(p.relative_to(folder).as_posix().encode() + p.read_bytes())
    return h.hexdigest()


def test_class_counts_follow_ham10000_with_a_floor():
    counts = class_counts(2000)
    assert sum(counts.values()) == 2000 and min(counts.values()) >= 10
    total = sum(HAM10000_DX_COUNTS.values())
    for c in ("nv", "mel", "bkl", "bcc"):
        assert abs(counts[c] / 2000 - HAM10000_DX_COUNTS[c] / total) < 0.01
    assert max(counts, key=counts.get) == "nv"
    assert sum(class_counts(28).values()) == 28
    with pytest.raises(DataError, match="dataset.num_images=10"):
        class_counts(10)


def test_deterministic_for_parameters(tmp_path):
    a = ensure_synthetic(tmp_path / "a", **SMALL, seed=1)
    b = ensure_synthetic(tmp_path / "b", **SMALL, seed=1)
    c = ensure_synthetic(tmp_path / "c", **SMALL, seed=2)
    assert a.name == b.name != c.name  # folder named by the parameter hash
    assert digest(a) == digest(b) != digest(c)


def test_kaggle_layout_read_by_the_ham10000_reader(tmp_path):
    root = ensure_synthetic(tmp_path, **SMALL)
    assert {p.name for p in root.iterdir()} == {
        "HAM10000_metadata.csv",
        "HAM10000_images_part_1",
        "HAM10000_images_part_2",
    }
    frame = read_ham10000(root)
    assert len(frame) == 42 and set(frame["dx"]) == set(CLASS_NAMES)
    assert frame["lesion_id"].nunique() < len(frame)  # some lesions have several images
    from PIL import Image

    with Image.open(frame["path"].iloc[0]) as im:
        assert im.size == (48, 36) and im.format == "JPEG"


def test_images_of_one_lesion_differ_but_resemble_each_other(tmp_path):
    from PIL import Image

    frame = read_ham10000(ensure_synthetic(tmp_path, num_images=200, width=64, height=48))
    multi = frame.groupby("lesion_id").filter(lambda g: len(g) > 1)
    load = lambda p: np.asarray(Image.open(p), dtype=float)  # noqa: E731
    same, other = [], []
    firsts = []
    for _, g in list(multi.groupby("lesion_id"))[:10]:
        a, b = load(g["path"].iloc[0]), load(g["path"].iloc[1])
        same.append(np.abs(a - b).mean())
        assert not np.array_equal(a, b)  # rotated / scaled / re-lit
        firsts.append(a)
    other = [np.abs(a - b).mean() for a, b in zip(firsts, firsts[1:])]
    assert np.mean(same) < np.mean(other)  # a lesion's images resemble each other
    mean_img = {
        dx: np.mean([load(p) for p in frame.loc[frame["dx"] == dx, "path"][:20]], 0)
        for dx in CLASS_NAMES
    }
    centre = lambda m: m[16:32, 22:42].mean(axis=(0, 1))  # noqa: E731
    dist = [
        np.abs(centre(mean_img[a]) - centre(mean_img[b])).sum()
        for i, a in enumerate(CLASS_NAMES)
        for b in CLASS_NAMES[i + 1 :]
    ]
    assert min(dist) > 3  # every pair of classes differs on average in the lesion area


def _race(base):
    return str(ensure_synthetic(base, **SMALL))


def test_generated_once_when_raced(tmp_path):
    with mp.get_context("fork").Pool(3) as pool:
        roots = pool.map(_race, [str(tmp_path)] * 3)
    assert len(set(roots)) == 1
    visible = [p for p in os.listdir(tmp_path) if not p.startswith(".")]
    assert visible == [os.path.basename(roots[0])]
    assert len(pd.read_csv(os.path.join(roots[0], "HAM10000_metadata.csv"))) == 42


def test_build_data_synthetic_default_root_under_output_dir(tmp_path):
    cfg = OmegaConf.create(
        {
            "seed": 0,
            "paths": {"output_dir": str(tmp_path)},
            "dataset": dict(
                name="synthetic",
                root=None,
                image_size=16,
                num_images=70,
                source_width=32,
                source_height=24,
                val_fraction=0.2,
                test_fraction=0.0,
            ),
        }
    )
    bundle = build_data(cfg, tmp_path / "run")
    assert len(list((tmp_path / "data").glob("synthetic-*"))) == 1
    assert len(list((tmp_path / "cache").glob("images-18px-*"))) == 1
    assert len(bundle.train) + len(bundle.val) == 70 and bundle.test is None
