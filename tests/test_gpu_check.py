"""benchmarks/gpu_check.py runs on a CPU machine: tiny settings, the table's rows, and it
says that it measured no GPU (on a GPU machine it measures; README.md has its figures).
Its paper estimate is glattn.sweep.estimate's arithmetic on the measured rows."""

import importlib.util
import re

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
    argv = ["--work-dir", str(tmp_path), "--budget-s", "1e5", "--jobs", *jobs]
    gpu_check.main(argv)
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert "NO GPU: this run measured no GPU" in out and "measured no GPU" in lines[-1]
    assert lines[-1].startswith("paper on one GPU: ? hours (this run measured no GPU")
    num = r"[\d,]+"
    plain = rf"\| resnet18 \| no \| plain PyTorch \| synthetic \| 16 \| {num} \| 1\.00x \|"
    assert re.search(plain, out), out
    for glsa in ("no", "yes"):
        for source in ("synthetic", "loader"):
            row = rf"\| resnet18 \| {glsa} \| eager \| {source} \| 16 \| {num} \| [\d.]+x \| - \|"
            assert re.search(row, out), (row, out)
    assert re.search(rf"\| - \| - \| loader alone \| loader \| 16 \| {num} \|", out), out
    for batch in (8, 16, 32):  # on a GPU: resnet50 at 32, 64, 128
        assert re.search(rf"\| resnet18 \| yes \| eager \| loader \| {batch} \| {num} \|", out)
    for glsa, mode in (("no", "model"), ("yes", "block"), ("yes", "model")):
        assert f"| resnet18 | {glsa} | {mode} | synthetic | 16 | skipped (no GPU) |" in out
    assert "jobs_per_gpu=auto: 1 job(s) per GPU (no GPU" in out
    assert "phases: not run (--phases; off with --tiny)" in out
    if jobs:  # one job process, its images/s
        assert re.search(rf"\| 1 \| {num} \| {num} \| 1\.00x \| - \|", out), out
    else:
        assert "| - | not run (--jobs) |" in out
    # fused seeds vs jobs sharing: run whatever --jobs says; no peak on a CPU
    for way, members in (("fused", 3), ("3 jobs sharing", 3), ("one job alone", 1)):
        row = rf"\| resnet18 \| yes \| {way} \| {members} \| {num} \| {num} \| - \|"
        assert re.search(row, out), (row, out)
    ratio = (
        r"^fused / best of jobs sharing, resnet18 \+ GLSA: \d+\.\d\dx \(fused [\d,]+ img/s; "
        r"best: (3 jobs sharing|one job alone), [\d,]+ img/s\)$"
    )
    assert re.search(ratio, out, re.MULTILINE), out


def test_fused_rows_out_of_budget_are_skipped(capsys):
    """Past the time budget every fused-seed row says so and its ratio is not made up."""
    from types import SimpleNamespace

    gpu_check = _load()
    args = SimpleNamespace(fused=True, models=["resnet18", "vgg16"], batch_size=16)
    gpu_check.fused_rows(SimpleNamespace(args=args, gpu=False, over=lambda fraction: True))
    out = capsys.readouterr().out
    for model in ("resnet18", "vgg16"):
        for way, members in (("fused", 3), ("3 jobs sharing", 3), ("one job alone", 1)):
            assert f"| {model} | yes | {way} | {members} | skipped (time budget) |" in out
        assert f"fused / best of jobs sharing, {model} + GLSA: ? (not measured)" in out


def test_paper_hours_from_the_loader_rows():
    """The paper's hours: every table's jobs x max_epochs x training images / the measured
    img/s of their (backbone, GLSA or not), packed as glattn.sweep.estimate packs them."""
    from glattn.report import declared
    from glattn.sweep.estimate import EXPERIMENTS_DIR, job_grid, train_images

    gpu_check = _load()
    rows = {("resnet18", False): {"img_s": 1000.0}, ("resnet18", True): {"img_s": 500.0}}
    alone, packed, missing = gpu_check.paper_hours(rows, 1, 1.0)
    expected, unmeasured = 0.0, 0
    for path in sorted(EXPERIMENTS_DIR.glob("table*.yaml")):
        if not declared.load().tables_for(path.stem):
            continue
        jobs, epochs = job_grid(path)
        for job in jobs:
            if job["backbone"] != "resnet18" or job["dataset"] not in ("ham10000", "isic2018"):
                unmeasured += 1
                continue
            rate = 1000.0 if job["attention"] == "none" else 500.0
            expected += epochs * train_images(job["dataset"]) / rate / 3600
    assert alone == pytest.approx(expected) and missing == unmeasured and alone > 0
    assert packed == pytest.approx(alone)  # one job at a time: the sum
    _, two, _ = gpu_check.paper_hours(rows, 2, 3.0)  # 2 jobs at 3x together
    assert alone / 3 * 0.99 < two < alone / 3 * 1.3  # the last round may run part-full
