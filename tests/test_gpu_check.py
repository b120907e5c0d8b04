"""benchmarks/gpu_check.py runs on a CPU machine: tiny settings, the table's rows, and it
says that it measured no GPU (on a GPU machine it measures; README.md has its figures)."""

import importlib.util
import re
import sys

import pytest
import torch
from conftest import ROOT

pytestmark = pytest.mark.usefixtures("one_thread")


def _load():
    spec = importlib.util.spec_from_file_location(
        "gpu_check", ROOT / "benchmarks" / "gpu_check.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(torch.cuda.is_available(), reason="on a GPU machine it measures the GPU")
@pytest.mark.parametrize(
    "jobs", [pytest.param([], id="one-job-rows"), pytest.param(["1"], marks=pytest.mark.slow)]
)
def test_gpu_check_runs_tiny_on_cpu_and_says_no_gpu(tmp_path, monkeypatch, capsys, jobs):
    """Fast tier: the single-job rows in-process; slow tier: also a job process."""
    gpu_check = _load()
    argv = ["gpu_check.py", "--work-dir", str(tmp_path), "--budget-s", "1e5", "--jobs", *jobs]
    monkeypatch.setattr(sys, "argv", argv)
    gpu_check.main()
    out = capsys.readouterr().out
    assert "NO GPU: this run measured no GPU" in out and "measured no GPU" in out.splitlines()[-1]
    for glsa in ("no", "yes"):
        for source in ("synthetic", "loader"):
            row = rf"\| resnet18 \| {glsa} \| eager \| {source} \| [\d,]+ \| - \|"
            assert re.search(row, out), (row, out)
        assert f"| resnet18 | {glsa} | compile | synthetic | skipped (no GPU) | - |" in out
    if jobs:  # one job process, its images/s
        assert re.search(r"\| 1 \| [\d,]+ \| [\d,]+ \| 1\.00x \| - \|", out), out
    else:
        assert "| - | not run (--jobs) |" in out
