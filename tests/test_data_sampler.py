"""Class imbalance: the weighted sampler draws classes near-uniformly; train counts are
exposed; loaders are deterministic for a seed."""

import numpy as np
import pandas as pd
import pytest
import torch
from fake_datasets import make_ham10000, write_jpeg
from omegaconf import OmegaConf

from glattn.data import build_data


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sampler")
    # Imbalanced: one image per lesion, 6 lesions per class, then 60 more nv lesions.
    meta = make_ham10000(tmp / "data", lesions_per_class=6, images_per_lesion=(1,))
    extra = meta[meta["dx"] == "nv"].copy()
    rows = []
    for j in range(60):
        r = extra.iloc[0].copy()
        r["image_id"], r["lesion_id"] = f"ISIC_9{j:06d}", f"HAM_9{j:06d}"
        rows.append(r)
    meta = pd.concat([meta, pd.DataFrame(rows)], ignore_index=True)
    cols = ["lesion_id", "image_id", "dx", "dx_type", "age", "sex", "localization"]
    meta[cols].to_csv(tmp / "data" / "HAM10000_metadata.csv", index=False)
    for r in rows:
        write_jpeg(tmp / "data" / "HAM10000_images_part_1" / f"{r['image_id']}.jpg", 1)
    cfg = OmegaConf.create(
        {
            "seed": 3,
            "paths": {"output_dir": str(tmp)},
            "dataset": dict(
                name="ham10000",
                root=str(tmp / "data"),
                image_size=16,
                val_fraction=0.2,
                test_fraction=0.0,
                cache_dir=str(tmp / "cache"),
            ),
        }
    )
    return build_data(cfg)


def drawn_labels(loader, epochs):
    out = []
    for _ in range(epochs):
        out.extend(loader.dataset.labels[list(iter(loader.sampler))])
    return np.asarray(out)


def test_train_counts_are_the_training_split(bundle):
    assert np.array_equal(bundle.train_counts, np.bincount(bundle.train.labels, minlength=7))
    assert bundle.train_counts[1] > 5 * bundle.train_counts[0]  # nv dominates


def test_weighted_sampler_draws_classes_near_uniformly(bundle):
    loader = bundle.loaders(8, sampler="weighted")["train"]
    assert isinstance(loader.sampler, torch.utils.data.WeightedRandomSampler)
    freq = np.bincount(drawn_labels(loader, 60), minlength=7) / (60 * len(bundle.train))
    assert np.abs(freq - 1 / 7).max() < 0.02, freq


def test_no_sampler_follows_the_class_counts(bundle):
    loader = bundle.loaders(8, sampler="none")["train"]
    labels = drawn_labels(loader, 1)
    assert np.array_equal(np.bincount(labels, minlength=7), bundle.train_counts)


def test_loaders_deterministic_for_seed_and_eval_in_order(bundle):
    a = list(iter(bundle.loaders(8)["train"].sampler))
    b = list(iter(bundle.loaders(8)["train"].sampler))
    c = list(iter(bundle.loaders(8, seed=11)["train"].sampler))
    assert a == b and a != c
    val = bundle.loaders(8)["val"]
    ys = torch.cat([y for _, y in val]).numpy()
    assert np.array_equal(ys, bundle.val.labels)
    assert "test" not in bundle.loaders(8)  # test_fraction=0: no test split


def test_train_loader_drops_the_last_partial_batch(bundle):
    # A batch of one breaks BatchNorm in training mode.
    loader = bundle.loaders(len(bundle.train) - 1)["train"]
    assert loader.drop_last and len(loader) == 1
