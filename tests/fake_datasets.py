"""Tiny data sets in the real distributed layouts (HAM10000 Kaggle / Harvard Dataverse,
ISIC 2018 Task 3), for the tests. Image content: a flat colour per class plus
noise, so tests can tell images apart; sizes are arbitrary."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from glattn.data.classes import CLASS_NAMES, ISIC_COLUMNS

COLOURS = [
    (40, 20, 20),
    (120, 80, 50),
    (200, 130, 130),
    (190, 90, 80),
    (150, 110, 70),
    (230, 210, 200),
    (160, 40, 70),
]


def write_jpeg(path: Path, label: int, size=(24, 18), seed: int = 0) -> None:
    path = Path(path)
    rng = np.random.default_rng(seed)
    w, h = size
    pixels = np.asarray(COLOURS[label], np.float32) + rng.normal(0, 20, (h, w, 3))
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(path, quality=90)


def plan(lesions_per_class: int = 6, images_per_lesion=(1, 2), seed: int = 0) -> pd.DataFrame:
    """lesion_id, image_id, label, dx for a small balanced-ish set (ids ISIC_/HAM_-style)."""
    rng = np.random.default_rng(seed)
    rows = []
    for label, dx in enumerate(CLASS_NAMES):
        for _ in range(lesions_per_class):
            lesion = f"HAM_{len({r[0] for r in rows}):07d}"
            for _ in range(int(rng.choice(images_per_lesion))):
                rows.append((lesion, f"ISIC_{len(rows):07d}", label, dx))
    return pd.DataFrame(rows, columns=["lesion_id", "image_id", "label", "dx"])


def make_ham10000(root: Path, layout: str = "kaggle", size=(24, 18), **kw) -> pd.DataFrame:
    """layout: kaggle (CSV, HAM10000_images_part_1/2), dataverse (.tab, extra `dataset`
    column, lower-case folders), dataverse_noext (no extension, images nested once)."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    meta = plan(**kw)
    meta["dx_type"] = "histo"
    meta["age"] = ["" if i % 5 == 0 else str(30 + i % 40) for i in range(len(meta))]
    meta["sex"] = [
        "unknown" if i % 7 == 0 else ("male", "female")[i % 2] for i in range(len(meta))
    ]
    meta["localization"] = "back"
    cols = ["lesion_id", "image_id", "dx", "dx_type", "age", "sex", "localization"]
    if layout == "kaggle":
        folders = ["HAM10000_images_part_1", "HAM10000_images_part_2"]
        meta[cols].to_csv(root / "HAM10000_metadata.csv", index=False)
    elif layout in ("dataverse", "dataverse_noext"):
        meta["dataset"] = "vidir_modern"
        name = "HAM10000_metadata.tab" if layout == "dataverse" else "HAM10000_metadata"
        meta[cols + ["dataset"]].to_csv(root / name, sep="\t", index=False)
        folders = (
            ["ham10000_images_part_1", "ham10000_images_part_2"]
            if layout == "dataverse"
            else ["images/HAM10000_IMAGES_PART_1", "images/HAM10000_IMAGES_PART_2"]
        )
    else:
        raise ValueError(layout)
    for i, (image_id, label) in enumerate(zip(meta["image_id"], meta["label"])):
        write_jpeg(root / folders[i % 2] / f"{image_id}.jpg", label, size, seed=i)
    return meta


def _ground_truth(meta: pd.DataFrame) -> pd.DataFrame:
    onehot = np.eye(len(CLASS_NAMES))[meta["label"].to_numpy()]
    gt = pd.DataFrame(onehot, columns=list(ISIC_COLUMNS))
    gt.insert(0, "image", meta["image_id"].to_numpy())
    return gt


def make_isic2018(
    root: Path,
    groupings: bool = True,
    official: bool = True,
    drop_test_image: bool = True,
    size=(24, 18),
    **kw,
) -> pd.DataFrame:
    """Training input + GT (+ LesionGroupings), and small official Validation/Test sets
    (ids ISIC_1xxxxxx / ISIC_2xxxxxx; the Test GT also lists ISIC_0035068, whose image is
    absent when drop_test_image)."""
    root = Path(root)
    meta = plan(**kw)
    prefix = "ISIC2018_Task3_"
    (root / f"{prefix}Training_GroundTruth").mkdir(parents=True, exist_ok=True)
    _ground_truth(meta).to_csv(
        root / f"{prefix}Training_GroundTruth" / f"{prefix}Training_GroundTruth.csv", index=False
    )
    for i, (image_id, label) in enumerate(zip(meta["image_id"], meta["label"])):
        write_jpeg(root / f"{prefix}Training_Input" / f"{image_id}.jpg", label, size, seed=i)
    (root / f"{prefix}Training_Input" / "ATTRIBUTION.txt").write_text("test fixture\n")
    if groupings:
        g = meta.rename(columns={"image_id": "image"})[["image", "lesion_id"]].copy()
        g["diagnosis_confirm_type"] = "histopathology"
        g.to_csv(root / f"{prefix}Training_LesionGroupings.csv", index=False)
    if official:
        for k, part in ((1, "Validation"), (2, "Test")):
            off = pd.DataFrame({"label": np.repeat(np.arange(len(CLASS_NAMES)), 2)})
            off["image_id"] = [f"ISIC_{k}{i:06d}" for i in range(len(off))]
            if part == "Test":
                off = pd.concat(
                    [off, pd.DataFrame({"label": [1], "image_id": ["ISIC_0035068"]})],
                    ignore_index=True,
                )
            _ground_truth(off).to_csv(root / f"{prefix}{part}_GroundTruth.csv", index=False)
            for i, (image_id, label) in enumerate(zip(off["image_id"], off["label"])):
                if not (image_id == "ISIC_0035068" and drop_test_image):
                    write_jpeg(
                        root / f"{prefix}{part}_Input" / f"{image_id}.jpg",
                        label,
                        size,
                        seed=100 + i,
                    )
    return meta


def data_cfg(tmp_path, **dataset):
    """A small composed-like config for build_data on fixtures under `tmp_path`."""
    from omegaconf import OmegaConf

    base = dict(
        name="ham10000",
        root=str(tmp_path / "data"),
        image_size=16,
        val_fraction=0.25,
        test_fraction=0.25,
        cache_dir=str(tmp_path / "cache"),
    )
    base.update(dataset)
    return OmegaConf.create(
        {"seed": 0, "paths": {"output_dir": str(tmp_path / "out")}, "dataset": base}
    )
