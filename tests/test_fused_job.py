"""A fused job end to end: ``sweep.fused_seeds=[...]`` trains its
members as one stacked model and records each exactly as its unfused job (same run name,
params, tags but ``fused_with``, per-epoch metrics, artifacts); a FINISHED member is
skipped, a failing member ends FAILED alone, a kill -9 resumes every member exactly, a
component that cannot fuse trains unfused with one line, and the report of a fused grid
equals the unfused grid's."""

import json
import math
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
import torch
from conftest import ROOT, smoke_cfg, store_client

from glattn import cli
from glattn.job import main
from glattn.job.tasks import fused as fused_task
from glattn.job.tasks.fused import FusedMemberFailed
from glattn.tracking.names import FUSED_TAG

pytestmark = pytest.mark.usefixtures("one_thread")
EXP = "glattn-debug"  # debug=smoke's runs
SMALL = ["trainer.deterministic=true", "trainer.batch_size=8", "dataset.image_size=32"]
TIMED = ("time/", "perf/", "latency", "infer", "peak_mem", "model/")


@pytest.fixture(autouse=True)
def _deterministic():
    yield
    torch.use_deterministic_algorithms(False)


def _runs(out) -> dict:
    client = store_client(out)
    exp = client.get_experiment_by_name(EXP)
    return {r.info.run_name: r for r in client.search_runs([exp.experiment_id])}


def _history(out, run) -> dict:
    client = store_client(out)
    keys = [k for k in run.data.metrics if not any(t in k for t in TIMED)]
    return {k: [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, k)]
            for k in keys}  # fmt: skip


def _artifacts(out, run_id, path=None) -> set:
    client = store_client(out)
    found = set()
    for item in client.list_artifacts(run_id, path):
        found |= _artifacts(out, run_id, item.path) if item.is_dir else {item.path}
    return found


def _close(a: dict, b: dict, rel: float = 1e-5) -> None:
    assert a.keys() == b.keys(), set(a) ^ set(b)
    for key in a:
        assert [s for s, _ in a[key]] == [s for s, _ in b[key]], key
        for (_, x), (_, y) in zip(a[key], b[key]):
            same = (math.isnan(x) and math.isnan(y)) or abs(x - y) <= rel * max(abs(y), 1e-8)
            assert same, (key, x, y)


@pytest.mark.slow  # ~2 min on 2 cores: a fused smoke sweep (2 jobs), the unfused one (4)
def test_fused_sweep_records_its_members_as_the_unfused_sweep_and_the_report_agrees(tmp_path):
    from test_sweep_helpers import explain, run_cli

    fused, alone = tmp_path / "fused", tmp_path / "alone"
    grid = ["fusion=original,learnable_gate", "seed=0,1", "debug=smoke", "trainer.max_epochs=1"]
    grid += [*SMALL, "trainer.gradcam_per_class=1"]
    logs = {}
    for out, extra in ((fused, ["sweep.fuse_seeds=true"]), (alone, [])):
        done = run_cli(ROOT / "run.py", *grid, *extra, f"paths.output_dir={out}", cwd=ROOT)
        assert done.returncode == 0, explain(done, out)
        logs[out] = done.stdout + done.stderr
    assert "fuse_seeds: 4 jobs as 2" in logs[fused]
    assert "2 jobs: 2 done" in logs[fused] and "4 jobs: 4 done" in logs[alone]
    again = run_cli(ROOT / "run.py", *grid, f"paths.output_dir={fused}", cwd=ROOT)
    assert "4 jobs: 0 done, 4 skipped" in again.stdout + again.stderr  # unfused: all FINISHED
    mine, ref = _runs(fused), _runs(alone)
    mine = {k: v for k, v in mine.items() if v.data.tags.get("glattn.role") == "job"}
    ref = {k: v for k, v in ref.items() if v.data.tags.get("glattn.role") == "job"}
    assert sorted(mine) == sorted(ref) and len(mine) == 4
    for name, run in mine.items():
        other = ref[name]
        assert run.info.status == other.info.status == "FINISHED"
        assert run.data.tags.pop(FUSED_TAG) == "0,1" and FUSED_TAG not in other.data.tags
        drop = {"mlflow.source.name", "mlflow.log-model.history", "mlflow.parentRunId"}
        member = ("glattn.sweep.", "glattn.in_grid.")  # which sweeps' views hold the run
        drop |= {k for k in {**run.data.tags, **other.data.tags} if k.startswith(member)}
        tags = {
            k: v.replace(str(fused), str(alone)) for k, v in run.data.tags.items() if k not in drop
        }
        assert tags == {k: v for k, v in other.data.tags.items() if k not in drop}
        params = {k: v.replace(str(fused), str(alone)) for k, v in run.data.params.items()}
        assert params == other.data.params  # the same config but for the output folder
        _close(_history(fused, run), _history(alone, other))
        assert _artifacts(fused, run.info.run_id) == _artifacts(alone, other.info.run_id)
    jobs = [p for p in fused.glob("sweeps/*/*/*/status.json") if (p.parent / "seed_0").is_dir()]
    assert len(jobs) == 2
    for path in jobs:  # the 2 fused jobs
        status = json.loads(path.read_text())
        assert status["status"] == "finished"
        assert [m["status"] for m in status["members"]] == ["finished", "finished"]
        assert all(
            (path.parent / f"seed_{s}" / ".hydra" / "config.yaml").is_file() for s in (0, 1)
        )
    # the report of the fused runs equals the unfused runs' (same tolerance)
    tables = {}
    for out in (fused, alone):
        args = ["--tracking-uri", f"sqlite:///{out}/mlflow.db", "--out", str(out / "rep")]
        assert (
            cli.main(["report", "glattn", *args, "--no-gradcam", "--no-log", "--include-debug"])
            == 0
        )
        found = sorted((out / "rep").glob("*.csv"))  # table6_efficiency: timings, not results
        tables[out] = {p.name: pd.read_csv(p) for p in found if "efficiency" not in p.name}
    assert tables[fused].keys() == tables[alone].keys()
    assert "table3_fusion.csv" in tables[fused]
    for name, frame in tables[fused].items():
        other = tables[alone][name]
        drop = [
            c for c in frame.columns if "run_id" in c or "time" in c or any(t in c for t in TIMED)
        ]
        frame, other = frame.drop(columns=drop), other.drop(columns=drop)
        assert list(frame.columns) == list(other.columns), name
        for col in frame.columns:
            if pd.api.types.is_numeric_dtype(frame[col]):
                mine, ref = frame[col].tolist(), other[col].tolist()
                assert mine == pytest.approx(ref, rel=1e-5, nan_ok=True), col


def _break(seed):
    """fused_task.prepare, with member ``seed``'s loss turned NaN."""
    real = fused_task.prepare

    def prepare(job, cls):
        training = real(job, cls)
        if int(job.cfg.seed) == seed:
            loss = training.trainer.loss_fn
            training.trainer.loss_fn = lambda logits, y: loss(logits, y) * float("nan")
        return training

    return prepare


@pytest.mark.slow  # ~1 min: one unfused job, then a fused job of three
def test_finished_member_skipped_failing_member_fails_alone(tmp_path, monkeypatch):
    one = ["trainer.max_epochs=1", *SMALL]
    main(smoke_cfg(tmp_path, "seed=0", *one))  # member 0 is FINISHED before the fused job
    monkeypatch.setattr(fused_task, "prepare", _break(2))
    with pytest.raises(FusedMemberFailed, match=r"seed 2 FAILED \(NonFiniteLossError"):
        main(smoke_cfg(tmp_path, "sweep.fused_seeds=[0,1,2]", *one))
    runs = {int(r.data.tags["seed"]): r for r in _runs(tmp_path).values()}
    assert sorted(runs) == [0, 1, 2]  # one run per member, member 0's is the unfused one
    assert FUSED_TAG not in runs[0].data.tags and runs[0].info.status == "FINISHED"
    assert runs[1].info.status == "FINISHED" and runs[1].data.tags[FUSED_TAG] == "0,1,2"
    assert runs[2].info.status == "FAILED"
    assert "NonFiniteLossError" in runs[2].data.tags["glattn.error"]
    job_dir = next(
        p.parent for p in tmp_path.glob("runs/*/status.json") if (p.parent / "seed_1").is_dir()
    )
    status = json.loads((job_dir / "status.json").read_text())
    assert status["status"] == "failed" and "seed 2" in status["error"]
    assert [m["status"] for m in status["members"]] == ["skipped", "finished", "failed"]


def test_a_component_that_cannot_fuse_trains_unfused_with_one_line(tmp_path, monkeypatch, caplog):
    reason = "component glsa.layer2.fusion (Counter) keeps Python state across calls"
    monkeypatch.setattr(fused_task, "fusion_problem", lambda *a, **k: reason)

    def never(*args, **kwargs):
        raise AssertionError("a member that cannot fuse must not train fused")

    monkeypatch.setattr(fused_task, "FusedTrainer", never)
    one = ["trainer.max_epochs=1", "trainer.gradcam_per_class=0", *SMALL]
    with caplog.at_level("WARNING", logger="glattn"):
        main(smoke_cfg(tmp_path, "sweep.fused_seeds=[0,1]", *one))
    lines = [r.getMessage() for r in caplog.records if reason in r.getMessage()]
    assert lines == [f"fused job: {reason}; its 2 members train unfused"]
    runs = _runs(tmp_path)
    assert sorted(int(r.data.tags["seed"]) for r in runs.values()) == [0, 1]
    assert {r.info.status for r in runs.values()} == {"FINISHED"}
    losses = {r.data.metrics["train/loss"] for r in runs.values()}
    assert len(losses) == 2  # two trainings, each its own seed's


# ------------------------------------------------------------------------- kill -9, resume
def _command(out):
    return [
        sys.executable, str(ROOT / "run.py"), "debug=smoke", f"paths.output_dir={out}",
        "sweep.fused_seeds=[0,1]", "trainer.max_epochs=3", "trainer.gradcam_per_class=0",
        *SMALL,
    ]  # fmt: skip


def _env():
    return dict(os.environ, OMP_NUM_THREADS="1", HYDRA_FULL_ERROR="1")


@pytest.mark.slow  # ~2 min: an uninterrupted fused job, one killed after epoch 1, its re-run
def test_kill_9_of_a_fused_job_resumes_every_member_exactly(tmp_path):
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    done = subprocess.run(_command(whole), env=_env(), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    proc = subprocess.Popen(_command(cut), env=_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.time() + 600
    while len(list(cut.glob("checkpoints/*/last.pt"))) < 2 and time.time() < deadline:
        assert proc.poll() is None, "the fused job ended before its first checkpoint"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)  # both members have last.pt of epoch 1 (or 2)
    proc.wait()
    again = subprocess.run(_command(cut), env=_env(), capture_output=True, text=True)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "resuming after epoch" in again.stderr + again.stdout
    mine, ref = _runs(cut), _runs(whole)
    assert sorted(mine) == sorted(ref) and len(mine) == 2  # one run per member
    for name, run in mine.items():
        assert run.info.status == "FINISHED"
        a, b = _history(cut, run), _history(whole, ref[name])
        assert a == b  # identical, not only close
        assert [s for s, _ in a["val/balanced_acc"]] == [1, 2, 3]
