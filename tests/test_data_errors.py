"""Every bad input fails before training with one DataError naming the path/row/key and
what was expected."""

import os

import pandas as pd
import pytest
from fake_datasets import data_cfg as cfg_for
from fake_datasets import make_ham10000, make_isic2018

from glattn.data import DataError, build_data


def fails(cfg, *fragments, run_dir=None):
    with pytest.raises(DataError) as info:
        build_data(cfg, run_dir)
    for fragment in fragments:
        assert fragment in str(info.value), str(info.value)
    return str(info.value)


@pytest.fixture
def ham(tmp_path):
    make_ham10000(tmp_path / "data", lesions_per_class=6)
    return tmp_path / "data"


def test_data_error_is_a_value_error():
    assert issubclass(DataError, ValueError)


def test_root_missing(tmp_path):
    fails(
        cfg_for(tmp_path, root=str(tmp_path / "nope")), "dataset.root=", "nope", "does not exist"
    )


@pytest.mark.parametrize("name", ["ham10000", "isic2018"])
def test_root_not_set(tmp_path, name):
    fails(cfg_for(tmp_path, name=name, root=None), "dataset.root is not set")


def test_metadata_missing(tmp_path, ham):
    (ham / "HAM10000_metadata.csv").unlink()
    fails(cfg_for(tmp_path), str(ham), "HAM10000_metadata.csv", "HAM10000_metadata.tab")


def test_metadata_missing_columns(tmp_path, ham):
    meta = pd.read_csv(ham / "HAM10000_metadata.csv")
    meta.drop(columns=["lesion_id"]).to_csv(ham / "HAM10000_metadata.csv", index=False)
    fails(cfg_for(tmp_path), "HAM10000_metadata.csv", "missing column(s) ['lesion_id']")


def test_isic_ground_truth_missing_class_column(tmp_path):
    make_isic2018(tmp_path / "data", official=False, lesions_per_class=6)
    gt = next((tmp_path / "data").rglob("ISIC2018_Task3_Training_GroundTruth.csv"))
    pd.read_csv(gt).drop(columns=["VASC"]).to_csv(gt, index=False)
    fails(
        cfg_for(tmp_path, name="isic2018"),
        str(gt),
        "['VASC']",
        "image,MEL,NV,BCC,AKIEC,BKL,DF,VASC",
    )


def test_ham_unknown_label_names_the_line(tmp_path, ham):
    meta = pd.read_csv(ham / "HAM10000_metadata.csv")
    meta.loc[3, "dx"] = "melanoma"
    meta.to_csv(ham / "HAM10000_metadata.csv", index=False)
    fails(
        cfg_for(tmp_path),
        "HAM10000_metadata.csv line 5",
        meta.loc[3, "image_id"],
        "unknown label 'melanoma'",
        "mel, nv, bcc, akiec, bkl, df, vasc",
    )


def test_isic_unknown_label_row(tmp_path):
    make_isic2018(tmp_path / "data", official=False, lesions_per_class=6)
    gt = next((tmp_path / "data").rglob("ISIC2018_Task3_Training_GroundTruth.csv"))
    frame = pd.read_csv(gt)
    frame.loc[2, ["MEL", "NV", "BCC", "AKIEC", "BKL", "DF", "VASC"]] = 0.0
    frame.to_csv(gt, index=False)
    fails(
        cfg_for(tmp_path, name="isic2018"),
        "line 4",
        frame.loc[2, "image"],
        "unknown label",
        "exactly one of",
    )


def test_images_missing_lists_first_names_and_count(tmp_path, ham):
    files = sorted(ham.rglob("*.jpg"))
    for f in files[:7]:
        f.unlink()
    msg = fails(cfg_for(tmp_path), "7 of", "have no file under", files[0].stem)
    assert "(and 2 more)" in msg


def test_isic_official_test_other_missing_image_is_an_error(tmp_path):
    make_isic2018(tmp_path / "data", lesions_per_class=6)
    next((tmp_path / "data").rglob("ISIC_2000003.jpg")).unlink()
    fails(cfg_for(tmp_path, name="isic2018", eval_split="official_test"), "ISIC_2000003", "1 of")


def test_official_ground_truth_file_missing(tmp_path):
    make_isic2018(tmp_path / "data", official=False, lesions_per_class=6)
    fails(
        cfg_for(tmp_path, name="isic2018", eval_split="official_val"),
        "ISIC2018_Task3_Validation_GroundTruth.csv",
        "dataset.eval_split=official_val",
    )


def corrupt(ham, n=2):
    bad = sorted(ham.rglob("*.jpg"))[:n]
    for f in bad:
        f.write_bytes(f.read_bytes()[:40])  # truncated JPEG
    return bad


@pytest.mark.parametrize("cache", [True, False])
def test_corrupt_jpeg_fails_naming_the_file(tmp_path, ham, cache):
    bad = corrupt(ham)
    fails(
        cfg_for(tmp_path, cache=cache),
        "2 image(s) cannot be decoded",
        str(bad[0]),
        "dataset.skip_bad_images=true",
    )


@pytest.mark.parametrize("cache", [True, False])
def test_corrupt_jpeg_skipped_and_reported(tmp_path, ham, cache):
    bad = corrupt(ham)
    bundle = build_data(cfg_for(tmp_path, cache=cache, skip_bad_images=True), tmp_path / "run")
    skipped = pd.read_csv(tmp_path / "run" / "skipped_images.csv")
    assert sorted(skipped["image_id"]) == sorted(f.stem for f in bad)
    split = pd.read_csv(tmp_path / "run" / "split.csv")
    assert not set(split["image_id"]) & {f.stem for f in bad}
    total = len(pd.read_csv(ham / "HAM10000_metadata.csv"))
    assert len(split) == len(bundle.split_frame) == total - len(bad)
    assert len(bundle.train) + len(bundle.val) + len(bundle.test) == len(split)


def test_class_without_samples_in_a_split(tmp_path):
    make_ham10000(tmp_path / "data", lesions_per_class=6)
    meta = pd.read_csv(tmp_path / "data" / "HAM10000_metadata.csv")
    df = meta.index[meta["dx"] == "df"]
    meta.loc[df, "lesion_id"] = "HAM_ONE_DF_LESION"  # one lesion: it fits one split only
    meta.to_csv(tmp_path / "data" / "HAM10000_metadata.csv", index=False)
    fails(cfg_for(tmp_path), "has no samples of class(es) ['df']", "split_seed=0")


def test_class_absent_from_the_whole_data_set(tmp_path, ham):
    meta = pd.read_csv(ham / "HAM10000_metadata.csv")
    meta[meta["dx"] != "vasc"].to_csv(ham / "HAM10000_metadata.csv", index=False)
    fails(cfg_for(tmp_path), "the data set has no images of class(es) ['vasc']")


def test_duplicate_image_ids_name_the_lines(tmp_path, ham):
    meta = pd.read_csv(ham / "HAM10000_metadata.csv")
    meta.loc[5, "image_id"] = meta.loc[1, "image_id"]
    meta.to_csv(ham / "HAM10000_metadata.csv", index=False)
    fails(cfg_for(tmp_path), "duplicate image_id", meta.loc[1, "image_id"], "lines [3, 7]")


def test_blank_lesion_id(tmp_path, ham):
    meta = pd.read_csv(ham / "HAM10000_metadata.csv")
    meta.loc[0, "lesion_id"] = ""
    meta.to_csv(ham / "HAM10000_metadata.csv", index=False)
    fails(cfg_for(tmp_path), "'lesion_id' is blank on line(s) [2]")


@pytest.mark.parametrize(
    "key,value,expected",
    [
        ("name", "cifar", "dataset 'cifar' has no `_target_`; expected its reader"),
        ("sampler", "balanced", "expected one of weighted, none"),
        ("eval_split", "official_val", "needs dataset=isic2018"),
        ("eval_split", "val", "expected one of holdout, official_val, official_test"),
        ("val_fraction", 1.5, "expected a number in [0, 1)"),
        ("test_fraction", 0.6, "expected a sum below 1"),
        ("fold", 3, "dataset.fold=3: expected an integer >= 0 and < 3"),
        ("image_size", "big", "dataset.image_size='big'"),
        ("num_classes", 8, "dataset.num_classes=8: expected 7"),
        ("cache", "yes", "dataset.cache='yes': expected true or false"),
    ],
)
def test_bad_options_name_key_value_and_allowed(tmp_path, key, value, expected):
    extra = {"folds": 3} if key == "fold" else {}
    if key == "test_fraction":
        extra["val_fraction"] = 0.5
    fails(cfg_for(tmp_path / "nowhere", **{key: value}, **extra), expected)


def test_errors_come_before_any_decoding(tmp_path, ham, monkeypatch):
    # A bad label must fail without building the cache (no wasted work).
    meta = pd.read_csv(ham / "HAM10000_metadata.csv")
    meta.loc[0, "dx"] = "xyz"
    meta.to_csv(ham / "HAM10000_metadata.csv", index=False)
    fails(cfg_for(tmp_path), "unknown label 'xyz'")
    assert not (tmp_path / "cache").exists() or not os.listdir(tmp_path / "cache")
