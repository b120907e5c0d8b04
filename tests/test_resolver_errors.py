"""A data-set error met while OmegaConf resolves ``${glattn.num_classes:}`` is the data set's
one message (file, row, column), caught as a DataError, not OmegaConf's wrapped
InterpolationResolutionError with its key lines and traceback."""

import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import compose_cfg

from glattn.data.errors import DataError
from glattn.errors import UserError
from glattn.job.lifecycle import check_config

ROOT = Path(__file__).resolve().parents[1]

# case -> (CSV text or None for no root, extra overrides, what the message names)
CASES = {
    "no root": (None, [], ["dataset.root='/nonexistent'", "does not exist"]),
    "empty CSV": ("", [], ["labels.csv", "empty", "header line"]),
    "header only": ("image,label\n", [], ["labels.csv", "header but no rows"]),
    "no label column": (
        "image,dx\na.png,x\nb.png,y\n",
        [],
        ["dataset.label_column='label'", "labels.csv", "no such column", "'dx'"],
    ),
    "long row": (
        "image,label\na.png,x\nb.png,y,extra\n",
        [],
        ["labels.csv", "line 3", "Expected 2 fields"],
    ),
    "short row": ("image,label\na.png,x\nb.png\nc.png,y\n", [], ["labels.csv", "'label'", "[3]"]),
}


def _cfg(tmp_path, case):
    text, extra, _ = CASES[case]
    root = "/nonexistent"
    if text is not None:
        root = tmp_path / "set"
        root.mkdir()
        (root / "labels.csv").write_text(text)
    return compose_cfg(
        "dataset=csv",
        f"dataset.root={root}",
        "dataset.csv=labels.csv",
        "dataset.group_column=none",
        f"paths.output_dir={tmp_path / 'out'}",
        *extra,
    )


@pytest.mark.parametrize("case", CASES)
def test_a_data_error_in_the_class_count_is_one_message(tmp_path, case):
    cfg = _cfg(tmp_path, case)
    with pytest.raises(DataError) as info:
        print(cfg.dataset.num_classes)
    message = str(info.value)
    for fragment in CASES[case][2]:
        assert fragment in message, message
    assert "full_key" not in message and "raised while resolving" not in message
    assert "\n" not in message
    # the job's own check (the one a single run and a sweep's grid make) sees a user error
    with pytest.raises(UserError) as checked:
        check_config(cfg)
    assert str(checked.value) == message or message in str(checked.value)


def test_a_resolver_s_user_error_keeps_its_family_and_pickles():
    from glattn.errors import in_resolution

    err = in_resolution(DataError("x.csv line 3: column 'label' is blank"))
    again = pickle.loads(pickle.dumps(err))  # a launcher's worker returns it to the sweep
    for e in (err, again):
        assert isinstance(e, DataError) and str(e) == "x.csv line 3: column 'label' is blank"
    assert type(again) is type(err)


@pytest.mark.slow
def test_the_command_line_prints_the_data_error_once_without_traceback(tmp_path):
    res = subprocess.run(
        [
            sys.executable,
            str(ROOT / "run.py"),
            "dataset=csv",
            "dataset.root=/nonexistent",
            f"paths.output_dir={tmp_path / 'out'}",
            "tracking=none",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"},
    )
    both = res.stdout + res.stderr
    assert res.returncode == 1
    assert "Traceback" not in both and "InterpolationResolutionError" not in both, both
    said = [line for line in both.splitlines() if "/nonexistent" in line]
    assert len(said) == 1 and said[0].endswith(
        "dataset.root='/nonexistent': folder /nonexistent does not exist"
    ), both
