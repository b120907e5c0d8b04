"""dataset=csv: an image folder plus a CSV (image, label, optional group column). The class
list comes from the data (or the config), num_classes follows it, grouped splits never split
a patient, bad input fails naming the key/file/line, and a 4-class set trains end to end
with per-class metrics for its own 4 classes."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import compose_cfg
from PIL import Image

from glattn.data import DataError, build_data
from glattn.data.options import check_options
from glattn.data.readers import class_names_of

CLASSES = ("benign", "dysplastic", "malignant", "vascular")  # sorted: the default order
COLOURS = [(150, 110, 70), (190, 90, 80), (60, 30, 30), (160, 40, 70)]

pytestmark = pytest.mark.usefixtures("one_thread")


def make_csv_set(root: Path, patients_per_class: int = 8, seed: int = 0, sep: str = ","):
    """4 classes, 2-3 images per patient, images in a subfolder, labels.csv in the root."""
    rng = np.random.default_rng(seed)
    rows = []
    for label, colour in zip(CLASSES, COLOURS):
        for p in range(patients_per_class):
            patient = f"{label[:3]}-{p:02d}"
            for k in range(int(rng.integers(2, 4))):
                name = f"imgs/{patient}_{k}.png"
                pixels = np.asarray(colour, np.float32) + rng.normal(0, 20, (20, 24, 3))
                (root / "imgs").mkdir(parents=True, exist_ok=True)
                Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(root / name)
                rows.append({"file": name, "diagnosis": label, "patient": patient})
    frame = pd.DataFrame(rows)
    frame.to_csv(root / "labels.csv", index=False, sep=sep)
    return frame


# debug=smoke's settings that apply to any data set (its dataset.num_images etc. are
# the synthetic set's own keys)
SMALL = [
    "dataset.image_size=32",
    "dataset.num_workers=0",
    "trainer.max_epochs=1",
    "trainer.batch_size=16",
    "trainer.num_workers=0",
    "trainer.device=cpu",
    "trainer.early_stopping_patience=null",
    "trainer.gradcam_per_class=1",
    "trainer.log_every_n_steps=2",
]


def csv_cfg(root: Path, out: Path, *overrides: str):
    return compose_cfg(
        *SMALL,
        "dataset=csv",
        f"dataset.root={root}",
        "dataset.image_column=file",
        "dataset.label_column=diagnosis",
        "dataset.group_column=patient",
        f"paths.output_dir={out}",
        *overrides,
    )


@pytest.fixture
def csv_set(tmp_path):
    root = tmp_path / "set"
    return root, make_csv_set(root)


def test_class_list_and_num_classes_follow_the_data(csv_set, tmp_path):
    root, _ = csv_set
    cfg = csv_cfg(root, tmp_path / "out")
    assert cfg.dataset.num_classes == 4
    assert class_names_of(cfg.dataset) == CLASSES
    fixed = ["vascular", "malignant", "dysplastic", "benign"]
    cfg = csv_cfg(root, tmp_path / "out", f"dataset.classes=[{','.join(fixed)}]")
    assert cfg.dataset.num_classes == 4 and class_names_of(cfg.dataset) == tuple(fixed)


def test_grouped_splits_never_split_a_patient(csv_set, tmp_path):
    root, frame = csv_set
    cfg = csv_cfg(root, tmp_path / "out", "dataset.val_fraction=0.25", "dataset.test_fraction=0.2")
    data = build_data(cfg, tmp_path / "run")
    assert data.class_names == CLASSES and len(data.train_counts) == 4
    split = pd.read_csv(tmp_path / "run" / "split.csv")
    assert set(split["label"]) == set(CLASSES) and len(split) == len(frame)
    assert split.groupby("lesion_id")["split"].nunique().max() == 1  # one split per patient
    assert set(split["split"]) == {"train", "val", "test"}
    by_image = dict(zip(frame["file"], frame["patient"]))
    assert all(by_image[i] == g for i, g in zip(split["image_id"], split["lesion_id"]))
    for name, ds in data.datasets().items():
        assert sorted(set(ds.labels.tolist())) == [0, 1, 2, 3], name


def test_group_column_none_splits_per_image_on_purpose(csv_set, tmp_path):
    root, frame = csv_set
    data = build_data(csv_cfg(root, tmp_path / "out", "dataset.group_column=none"))
    assert (data.split_frame["lesion_id"] == data.split_frame["image_id"]).all()


@pytest.mark.parametrize("column", ["patient", "lesion_id", "SubjectID", "case"])
def test_a_patient_like_column_with_group_column_null_is_refused(tmp_path, column, compose):
    """A per-image split would put one patient's images on both sides: refused before any
    run, naming the column, the key and `none` (the explicit intent)."""
    root = tmp_path / "set"
    frame = make_csv_set(root, patients_per_class=2).rename(columns={"patient": column})
    frame.to_csv(root / "labels.csv", index=False)
    fixed = f"dataset.classes=[{','.join(CLASSES)}]"  # the check needs no label scan
    for extra in ([], [fixed]):
        cfg = csv_cfg(root, tmp_path / "out", "dataset.group_column=null", *extra)
        with pytest.raises(DataError) as err:
            check_options(cfg)
        message = str(err.value)
        assert f"[{column!r}]" in message and f"dataset.group_column={column}" in message
        assert "dataset.group_column=none" in message
    cfg = csv_cfg(root, tmp_path / "out", f"dataset.group_column={column}")
    assert check_options(cfg).group_column == column
    renamed = frame.rename(columns={column: "ward"})  # nothing patient-like: per image is fine
    renamed.to_csv(root / "labels.csv", index=False)
    assert check_options(csv_cfg(root, tmp_path / "out", "dataset.group_column=null"))


def test_tab_separated_csv_and_absolute_path(tmp_path):
    root = tmp_path / "set"
    make_csv_set(root, sep="\t")
    moved = tmp_path / "elsewhere.tsv"
    (root / "labels.csv").rename(moved)
    data = build_data(csv_cfg(root, tmp_path / "out", f"dataset.csv={moved}"))
    assert data.class_names == CLASSES


@pytest.mark.parametrize(
    "override,expected",
    [
        ("dataset.label_column=dx", "dataset.label_column='dx': .*labels.csv has no such column"),
        ("dataset.group_column=lesion", "dataset.group_column='lesion': .*no such column"),
        ("dataset.csv=missing.csv", "dataset.csv='missing.csv': file .*missing.csv does not"),
        ("dataset.classes=[benign,malignant]", r"2 row\(s\)|row\(s\) with a label not in"),
        ("dataset.classes=[a,a]", r"at least 2 distinct.*repeated: \['a'\]"),
        ("dataset.num_classes=5", r"dataset.num_classes=5: expected 4 \(benign, dysplastic"),
    ],
)
def test_bad_input_names_the_key_file_or_line(csv_set, tmp_path, override, expected):
    root, _ = csv_set
    with pytest.raises(DataError, match=expected):
        build_data(csv_cfg(root, tmp_path / "out", override))


def test_unknown_label_and_missing_image_name_the_line(csv_set, tmp_path):
    root, frame = csv_set
    frame.loc[3, "diagnosis"] = "melanoma"
    frame.to_csv(root / "labels.csv", index=False)
    fixed = f"dataset.classes=[{','.join(CLASSES)}]"
    with pytest.raises(DataError, match=r"'melanoma' \(line 5\); expected one of benign"):
        build_data(csv_cfg(root, tmp_path / "out", fixed))
    frame.loc[3, "diagnosis"] = "benign"
    frame.to_csv(root / "labels.csv", index=False)
    (root / frame.loc[4, "file"]).unlink()
    with pytest.raises(DataError, match=rf"1 of {len(frame)} images .*{frame.loc[4, 'file']}"):
        build_data(csv_cfg(root, tmp_path / "out"))


def test_root_not_set_is_one_clear_error(tmp_path):
    cfg = compose_cfg("dataset=csv", f"paths.output_dir={tmp_path}")
    with pytest.raises(DataError, match="dataset=csv: dataset.root is not set"):
        build_data(cfg)


def test_four_class_set_trains_and_reports_its_own_classes(csv_set, tmp_path):
    from glattn.job import main

    root, _ = csv_set
    out = tmp_path / "out"
    cfg = csv_cfg(root, out, "tracking=none", "dataset.test_fraction=0.2", "trainer.batch_size=8")
    metrics = main(cfg)
    assert {f"val/recall_{c}" for c in CLASSES} <= set(metrics)
    assert {f"test/recall_{c}" for c in CLASSES} <= set(metrics)
    (report,) = out.glob("runs/*/val_per_class_report.csv")
    assert pd.read_csv(report)["class"].tolist() == list(CLASSES)
    probs = pd.read_csv(report.parent / "val_probabilities.csv")
    assert [c.lower() for c in probs.columns[1:]] == list(CLASSES)
    assert np.allclose(probs.iloc[:, 1:].sum(axis=1), 1.0, atol=1e-4)
    split = pd.read_csv(report.parent / "split.csv")
    assert split.groupby("lesion_id")["split"].nunique().max() == 1
