"""HAM10000 and ISIC 2018 Task 3 readers on tiny fixtures in each distributed layout."""

import logging

import numpy as np
import pandas as pd
import pytest
import torch
from fake_datasets import data_cfg, make_ham10000, make_isic2018, write_jpeg

from glattn.data import CLASS_NAMES, build_data
from glattn.data.classes import ISIC_COLUMNS, ISIC_TO_DX
from glattn.data.ham10000 import read_ham10000
from glattn.data.isic2018 import read_isic2018


def test_class_order_is_the_contract_and_isic_maps_onto_it():
    assert CLASS_NAMES == ("mel", "nv", "bcc", "akiec", "bkl", "df", "vasc")
    assert [ISIC_TO_DX[c] for c in ISIC_COLUMNS] == list(CLASS_NAMES)


@pytest.mark.parametrize("layout", ["kaggle", "dataverse", "dataverse_noext"])
def test_ham10000_layouts(tmp_path, layout):
    meta = make_ham10000(tmp_path / "data", layout=layout, lesions_per_class=2)
    frame = read_ham10000(tmp_path / "data")
    assert frame["image_id"].tolist() == meta["image_id"].tolist()
    assert frame["lesion_id"].tolist() == meta["lesion_id"].tolist()
    assert frame["label"].tolist() == meta["label"].tolist()
    assert all(p.endswith(f"{i}.jpg") for p, i in zip(frame["path"], frame["image_id"]))
    assert frame["age"].isna().sum() == (meta["age"] == "").sum() > 0  # blank age is legal
    assert (frame["sex"] == "unknown").any()
    if layout != "kaggle":
        assert (frame["dataset"] == "vidir_modern").all()


def test_ham10000_quoted_dataverse_tab_and_upper_case_dx(tmp_path):
    root = tmp_path / "data"
    meta = make_ham10000(root, layout="dataverse", lesions_per_class=1)
    tab = root / "HAM10000_metadata.tab"
    text = tab.read_text().splitlines()
    quoted = ["\t".join(f'"{c}"' for c in line.split("\t")) for line in text]
    tab.write_text("\n".join(quoted).replace('"mel"', '"MEL"') + "\n")
    frame = read_ham10000(root)
    assert frame["label"].tolist() == meta["label"].tolist()


def test_ham10000_duplicated_image_folders_are_fine(tmp_path):
    # Kaggle's copy holds HAM10000_images_part_1 twice (two cases): same ids, no error.
    root = tmp_path / "data"
    meta = make_ham10000(root, lesions_per_class=1)
    for i, (image_id, label) in enumerate(zip(meta["image_id"], meta["label"])):
        write_jpeg(root / "ham10000_images_part_1" / f"{image_id}.jpg", label, seed=i)
    assert len(read_ham10000(root)) == len(meta)


def test_isic2018_training_with_lesion_groupings(tmp_path):
    meta = make_isic2018(tmp_path / "data", official=False, lesions_per_class=2)
    frame = read_isic2018(tmp_path / "data")
    assert frame["image_id"].tolist() == meta["image_id"].tolist()
    assert frame["lesion_id"].tolist() == meta["lesion_id"].tolist()
    assert frame["label"].tolist() == meta["label"].tolist()
    assert set(frame["origin"]) == {"train"}


def test_isic2018_without_groupings_falls_back_to_one_group_per_image(tmp_path, caplog):
    make_isic2018(tmp_path / "data", groupings=False, official=False, lesions_per_class=2)
    with caplog.at_level(logging.WARNING):
        frame = read_isic2018(tmp_path / "data")
    assert (frame["lesion_id"] == frame["image_id"]).all()
    assert "grouping falls back to one group per image" in caplog.text


def test_same_images_get_same_labels_in_ham_and_isic(tmp_path):
    ham = make_ham10000(tmp_path / "ham", lesions_per_class=2, seed=3)
    make_isic2018(tmp_path / "isic", official=False, lesions_per_class=2, seed=3)
    a, b = read_ham10000(tmp_path / "ham"), read_isic2018(tmp_path / "isic")
    assert a["image_id"].tolist() == b["image_id"].tolist() == ham["image_id"].tolist()
    assert a["label"].tolist() == b["label"].tolist()


@pytest.mark.parametrize(
    "eval_split,prefix", [("official_val", "ISIC_1"), ("official_test", "ISIC_2")]
)
def test_isic2018_official_sets_are_the_test_split(tmp_path, eval_split, prefix, caplog):
    meta = make_isic2018(tmp_path / "data", lesions_per_class=4)
    cfg = data_cfg(tmp_path, name="isic2018", eval_split=eval_split)
    with caplog.at_level(logging.WARNING):
        bundle = build_data(cfg, tmp_path / "run")
    assert all(i.startswith(prefix) for i in bundle.test.image_ids)
    assert len(bundle.test) == 14  # 2 per class; ISIC_0035068 (no image) skipped
    train_val = set(bundle.train.image_ids) | set(bundle.val.image_ids)
    assert train_val == set(meta["image_id"])  # no holdout test carved from training
    skipped = tmp_path / "run" / "skipped_images.csv"
    if eval_split == "official_test":
        assert "ISIC_0035068" in caplog.text
        assert pd.read_csv(skipped)["image_id"].tolist() == ["ISIC_0035068"]
    else:
        assert not skipped.exists()


def test_isic2018_official_test_with_the_image_present_keeps_it(tmp_path):
    make_isic2018(tmp_path / "data", drop_test_image=False, lesions_per_class=4)
    frame = read_isic2018(tmp_path / "data", "official_test")
    assert "ISIC_0035068" in set(frame["image_id"])
    assert frame.attrs["skipped"] == []


def test_build_data_on_ham10000_fixture(tmp_path):
    meta = make_ham10000(tmp_path / "data", lesions_per_class=8)
    bundle = build_data(data_cfg(tmp_path), tmp_path / "run")
    ids = bundle.train.image_ids + bundle.val.image_ids + bundle.test.image_ids
    assert sorted(ids) == sorted(meta["image_id"])
    x, y = bundle.val[0]
    assert x.shape == (3, 16, 16) and x.dtype == torch.uint8 and isinstance(y, int)
    assert np.array_equal(bundle.train_counts, np.bincount(bundle.train.labels, minlength=7))
    assert bundle.class_names == CLASS_NAMES


def test_ham10000_images_in_a_linked_folder(tmp_path):
    root = tmp_path / "data"
    meta = make_ham10000(root, lesions_per_class=1)
    (root / "HAM10000_images_part_2").rename(tmp_path / "elsewhere")
    (root / "HAM10000_images_part_2").symlink_to(tmp_path / "elsewhere")
    assert len(read_ham10000(root)) == len(meta)


def test_ham10000_unpacked_one_folder_down(tmp_path):
    # e.g. Kaggle's zip unpacked into <root>/skin-cancer-mnist-ham10000/
    meta = make_ham10000(tmp_path / "data" / "skin-cancer-mnist-ham10000", lesions_per_class=1)
    assert read_ham10000(tmp_path / "data")["image_id"].tolist() == meta["image_id"].tolist()


def test_official_set_missing_a_class_says_it_is_fixed(tmp_path):
    from glattn.data.errors import DataError

    make_isic2018(tmp_path / "data", lesions_per_class=4)
    gt = tmp_path / "data" / "ISIC2018_Task3_Validation_GroundTruth.csv"
    frame = pd.read_csv(gt)
    frame[frame["VASC"] == 0].to_csv(gt, index=False)  # an incomplete copy: no vasc
    cfg = data_cfg(tmp_path, name="isic2018", eval_split="official_val")
    with pytest.raises(DataError) as err:
        build_data(cfg, tmp_path / "run")
    text = str(err.value)
    assert "split 'test' has no samples of class(es) ['vasc']" in text
    assert "official ISIC 2018 Validation set (dataset.eval_split=official_val)" in text
    assert "is fixed" in text and "dataset.eval_split=holdout" in text
    assert "lower the fractions" not in text
