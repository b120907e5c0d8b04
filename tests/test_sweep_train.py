"""A real sweep of glattn.job on tiny synthetic data (debug=smoke), through run.py:
one parent run with 4 FINISHED children; the same command again skips all 4 and adds no
run (the grid's parent is continued); a failing job is reported in the summary while the
other finishes."""

import json
from pathlib import Path

import pytest
from test_sweep_helpers import ROOT, explain, run_cli, sweep_dirs

GRID = ["debug=smoke", "fusion=original,learnable_gate", "seed=0,1"]
PARALLEL = ["hydra/launcher=local_gpus", "hydra.launcher.gpus=[]", "hydra.launcher.n_jobs=2"]


def _runs(out):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{out / 'mlflow.db'}")
    exp = client.get_experiment_by_name("glattn-debug")  # debug=smoke: <experiment>-debug
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    parents = [r for r in runs if r.data.tags.get("glattn.role") == "sweep"]
    jobs = [r for r in runs if r.data.tags.get("glattn.role") == "job"]
    return sorted(parents, key=lambda r: r.info.start_time), jobs


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep") / "out"
    # local_gpus without GPUs: 2 jobs at once, one core each (the CI machine has 2)
    first = run_cli(ROOT / "run.py", *GRID, f"paths.output_dir={out}", *PARALLEL, cwd=ROOT)
    assert first.returncode == 0, explain(first, out)
    return out, first


def test_sweep_has_one_parent_with_four_finished_children(swept):
    out, first = swept
    (sweep,) = sweep_dirs(out)
    parents, jobs = _runs(out)
    (parent,) = parents
    assert parent.info.status == "FINISHED"
    assert parent.info.run_name == f"glattn-debug/{sweep.name}"  # debug=smoke: <exp>-debug
    assert (sweep / "parent_run_id").read_text().strip() == parent.info.run_id
    assert len(jobs) == 4
    for run in jobs:
        assert run.info.status == "FINISHED"
        assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert "best/val/balanced_acc" in run.data.metrics
    assert {(r.data.tags["fusion"], r.data.tags["seed"]) for r in jobs} == {
        ("original", "0"),
        ("original", "1"),
        ("learnable_gate", "0"),
        ("learnable_gate", "1"),
    }
    assert "4 jobs: 4 done, 0 skipped, 0 failed" in first.stdout


def test_same_sweep_again_skips_every_job(swept):
    out, _ = swept
    _, before = _runs(out)
    again = run_cli(ROOT / "run.py", *GRID, f"paths.output_dir={out}", cwd=ROOT)
    assert again.returncode == 0, explain(again, out)
    assert "4 jobs: 0 done, 4 skipped, 0 failed" in again.stdout
    parents, jobs = _runs(out)
    (parent,) = parents  # the same grid: the same parent, continued, no new run
    assert parent.info.status == "FINISHED" and parent.data.tags["glattn.launches"] == "2"
    assert parent.data.tags["glattn.jobs_skipped"] == "4"
    assert sorted(r.info.run_id for r in jobs) == sorted(r.info.run_id for r in before)
    second = sweep_dirs(out)[-1]
    for job_dir in sorted(p for p in second.iterdir() if p.is_dir() and p.name.isdigit()):
        status = json.loads((job_dir / "status.json").read_text())
        assert status["status"] == "skipped"
        assert status["run_id"] in {r.info.run_id for r in before}


def test_failing_job_is_reported_and_the_other_finishes(swept):
    out, _ = swept
    res = run_cli(
        ROOT / "run.py",
        "debug=smoke",
        "seed=2",
        "optimizer.lr=0.001,1e30",  # diverges while training (a config error: no launch)
        f"paths.output_dir={out}",
        cwd=ROOT,  # basic launcher: in-process, one after another
    )
    assert res.returncode == 1, (res.stdout[-3000:], res.stderr[-3000:])
    assert "2 jobs: 1 done, 0 skipped, 1 failed" in res.stdout
    assert "optimizer.lr" in res.stdout  # the job's own error, in the summary
    parents, jobs = _runs(out)
    assert parents[-1].info.status == "FAILED"
    mine = [r for r in jobs if r.data.tags.get("mlflow.parentRunId") == parents[-1].info.run_id]
    assert [r.info.status for r in mine if r.data.tags["seed"] == "2"].count("FINISHED") == 1
    sweep = sweep_dirs(out)[-1]
    statuses = {json.loads((sweep / n / "status.json").read_text())["status"] for n in "01"}
    assert statuses == {"finished", "failed"}


def test_finished_sweep_runs_meet_the_disk_target_and_print_the_ui_command(swept):
    """A finished job keeps one copy of its best weights (the MLflow artifact) and
    nothing else of size: run folder + checkpoint folder + artifacts <= 1.2 x fp32 + 5 MB."""
    out, first = swept
    sweep = sweep_dirs(out)[0]  # the fixture's sweep (other tests of this module add more)
    _, jobs = _runs(out)

    def size(folder):
        return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())

    job_dirs = {
        json.loads(s.read_text())["fingerprint"]: s.parent for s in sweep.glob("*/status.json")
    }
    jobs = [r for r in jobs if r.data.tags["fingerprint"] in job_dirs]
    assert len(jobs) == 4
    for run in jobs:
        fp = run.data.tags["fingerprint"]
        ckpt_dir = out / "checkpoints" / fp
        assert {p.name for p in ckpt_dir.iterdir()} == {".lock"}, fp  # no last.pt, no best.pt
        artifacts = Path(run.info.artifact_uri.removeprefix("file://")).parent
        assert (artifacts / "artifacts" / "checkpoints" / "best.pt").is_file()
        total = size(job_dirs[fp]) + size(ckpt_dir) + size(artifacts)
        fp32 = 4 * run.data.metrics["model/params_total"]
        assert total <= 1.2 * fp32 + 5 * 2**20, (run.info.run_name, total, fp32)
    assert f"mlflow ui --backend-store-uri sqlite:///{out.resolve()}/mlflow.db" in first.stdout
