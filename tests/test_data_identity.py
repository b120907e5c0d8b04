"""An image's identity is its file: two spellings (or a link) of one file are refused with the
rows named, in dataset=csv and in every reader; byte-identical files under different names
that land in different splits are reported by name."""

import logging
import os
import shutil
from pathlib import Path

import pandas as pd
import pytest
from test_data_csv import csv_cfg, make_csv_set

from glattn.data import DataError, build_data
from glattn.data.identity import identical_across_splits, identical_files

pytestmark = pytest.mark.usefixtures("one_thread")


def _rewrite(root: Path, frame: pd.DataFrame) -> None:
    frame.to_csv(root / "labels.csv", index=False)


SPELLINGS = {
    "dot": lambda name: f"./{name}",
    "dot-dot": lambda name: f"imgs/../{name}",
    "double slash": lambda name: name.replace("/", "//"),
}


@pytest.mark.parametrize("spelling", SPELLINGS)
def test_two_spellings_of_one_file_are_refused_naming_both_lines(tmp_path, spelling):
    root = tmp_path / "set"
    frame = make_csv_set(root)
    # another patient's row names patient 0's first image, spelled differently
    first = frame["file"].iloc[0]
    other = SPELLINGS[spelling](first)
    frame.loc[len(frame) - 1, "file"] = other
    _rewrite(root, frame)
    with pytest.raises(DataError) as info:
        build_data(csv_cfg(root, tmp_path / "out"))
    message = str(info.value)
    assert "labels.csv" in message
    assert f"{first!r} (line 2)" in message
    assert f"{other!r} (line {len(frame) + 1})" in message
    assert str((root / first).resolve()) in message


def test_a_link_to_another_row_s_image_is_refused(tmp_path):
    root = tmp_path / "set"
    frame = make_csv_set(root)
    os.unlink(root / frame["file"].iloc[-1])
    os.symlink(root / frame["file"].iloc[0], root / frame["file"].iloc[-1])
    with pytest.raises(DataError, match="listed on more than one row"):
        build_data(csv_cfg(root, tmp_path / "out"))


def test_every_reader_refuses_two_rows_of_one_file(tmp_path):
    """The readers' contract (glattn.data.readers.read), whatever reader: here HAM10000's
    layout with one image linked under a second id."""
    from conftest import compose_cfg

    from glattn.data.synthetic import ensure_synthetic

    root = ensure_synthetic(str(tmp_path / "ham"), 40, 32, 24, 0)
    meta = next(Path(root).glob("HAM10000_metadata*"))
    table = pd.read_csv(meta)
    images = {p.stem: p for p in Path(root).rglob("*.jpg")}
    first, last = table["image_id"].iloc[0], table["image_id"].iloc[-1]
    images[last].unlink()
    os.symlink(images[first], images[last])
    cfg = compose_cfg(
        "dataset=ham10000", f"dataset.root={root}", f"paths.output_dir={tmp_path}/out"
    )
    with pytest.raises(DataError) as info:
        build_data(cfg)
    assert f"image {first!r} and image {last!r}" in str(info.value)


def test_identical_files_compare_size_then_bytes(tmp_path):
    a, b, c, d = (tmp_path / n for n in "abcd")
    a.write_bytes(b"x" * 70_000 + b"1")
    b.write_bytes(b"x" * 70_000 + b"1")  # same bytes
    c.write_bytes(b"x" * 70_000 + b"2")  # same size and first 64 KiB, other bytes
    d.write_bytes(b"y")
    assert identical_files([a, b, c, d, a]) == [[0, 1]]  # row 4 is row 0's file, not a copy


def test_byte_identical_images_in_two_splits_are_reported(tmp_path, caplog):
    root = tmp_path / "set"
    make_csv_set(root)
    cfg = csv_cfg(root, tmp_path / "out", "dataset.val_fraction=0.25")
    data = build_data(cfg)
    split = data.split_frame.set_index("image_id")["split"]
    train = split[split == "train"].index[0]
    val = split[split == "val"].index[0]
    shutil.copyfile(root / train, root / val)  # the validation image is a training image
    with caplog.at_level(logging.WARNING, logger="glattn.data.identity"):
        build_data(cfg)
    warned = " ".join(r.getMessage() for r in caplog.records)
    assert "byte-identical" in warned
    assert f"{train} (train" in warned and f"{val} (val" in warned


def test_identical_files_within_one_split_are_not_reported(tmp_path, caplog):
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    a.write_bytes(b"same")
    b.write_bytes(b"same")
    with caplog.at_level(logging.WARNING, logger="glattn.data.identity"):
        assert identical_across_splits([a, b], ["train", "train"], ["a", "b"]) == []
        assert identical_across_splits([a, b], ["train", "test"], ["a", "b"]) == [[0, 1]]
    assert len(caplog.records) == 1
