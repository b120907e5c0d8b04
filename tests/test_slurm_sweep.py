"""Slow: a real sweep on a real (throw-away, single-node) SLURM cluster with accounting.

`python run.py -m hydra/launcher=slurm ...` trains 4 debug=smoke jobs through
hydra-submitit-launcher; one running job is requeued with `scontrol requeue` after its first
checkpoint and must resume from it (same MLflow run, every epoch logged once). The
cluster's daemons are stopped by their PIDs at the end, pass or fail.
"""

import json
import re
import subprocess
import time

import pytest
from conftest import load_script
from test_sweep_helpers import ROOT, SWEEP_HOOKS, env

pytestmark = pytest.mark.slow
EPOCHS = 6


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    mod = load_script("slurm_cluster")
    try:
        mod.require_binaries()
    except RuntimeError as e:
        pytest.skip(str(e))
    c = mod.Cluster(tmp_path_factory.mktemp("slurm"))
    try:
        c.start()
        yield c
    finally:
        c.stop()
        assert not any(c.status().values()), c.status()  # every daemon is gone


def _running_job_mid_training(cluster, out):
    """(SLURM id, job dir) of a RUNNING array task that has a checkpoint and has not ended."""
    squeue = cluster.run("squeue", "-h", "-o", "%i %T", check=False).stdout.split("\n")
    running = dict(line.split() for line in squeue if line.strip())
    for sweep in (out / "sweeps" / "glattn").glob("*"):
        for job_dir in sweep.glob("[0-9]*"):
            log = job_dir / "debug.log"
            suffix = f"_{job_dir.name}"
            ids = [i for i, s in running.items() if s == "RUNNING" and i.endswith(suffix)]
            if not ids or not log.is_file() or (job_dir / "status.json").exists():
                continue
            fp = re.search(r"fingerprint (\w{12})", log.read_text())
            if fp and (out / "checkpoints" / fp.group(1) / "last.pt").is_file():
                return ids[0], job_dir, fp.group(1)
    return None


def test_slurm_sweep_requeue_resumes(cluster, tmp_path):
    from mlflow.tracking import MlflowClient

    out = tmp_path / "out"
    cmd = [
        str(ROOT / ".venv/bin/python") if (ROOT / ".venv/bin/python").exists() else "python",
        str(ROOT / "run.py"),
        "-m",
        *SWEEP_HOOKS,
        "hydra/launcher=slurm",
        "hydra.launcher.gpus_per_node=null",
        "hydra.launcher.cpus_per_task=1",
        "hydra.launcher.mem_gb=1",
        "hydra.launcher.partition=debug",
        "hydra.launcher.timeout_min=60",
        "debug=smoke",
        f"trainer.max_epochs={EPOCHS}",
        "fusion=original,learnable_gate",
        "seed=0,1",
        f"paths.output_dir={out}",
    ]
    log = open(tmp_path / "sweep.log", "w")
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env(SLURM_CONF=str(cluster.conf)), stdout=log, stderr=subprocess.STDOUT
    )
    try:
        requeued = None
        deadline = time.monotonic() + 1200
        while requeued is None and proc.poll() is None and time.monotonic() < deadline:
            requeued = _running_job_mid_training(cluster, out)
            time.sleep(0.2)
        assert requeued is not None, (tmp_path / "sweep.log").read_text()[-3000:]
        slurm_id, job_dir, fingerprint = requeued
        cluster.run("scontrol", "requeue", slurm_id)
        # SLURM holds a requeued job back (BeginTime) for a while; no need to wait here
        cluster.run("scontrol", "update", f"JobId={slurm_id}", "BeginTime=now", check=False)
        proc.wait(timeout=1800)
    finally:
        if proc.poll() is None:
            proc.kill()
    text = (tmp_path / "sweep.log").read_text()
    assert proc.returncode == 0, text[-5000:]
    assert "4 jobs: 4 done, 0 skipped, 0 failed" in text

    # SLURM saw the requeue; the job resumed after the checkpointed epoch(s)
    states = cluster.run("sacct", "-D", "-X", "-n", "-j", slurm_id, "-o", "State").stdout
    assert "REQUEUED" in states, states
    debug_log = (job_dir / "debug.log").read_text()
    resumed = re.findall(r"resuming after epoch (\d+)", debug_log)
    assert "interrupted by SIGTERM" in debug_log  # scontrol requeue: SIGTERM, run KILLED
    assert resumed and int(resumed[-1]) >= 1

    client = MlflowClient(f"sqlite:///{out / 'mlflow.db'}")
    exp = client.get_experiment_by_name("glattn-debug")  # debug=smoke: <experiment>-debug
    runs = client.search_runs([exp.experiment_id], max_results=100)
    (parent,) = [r for r in runs if r.data.tags.get("glattn.role") == "sweep"]
    jobs = [r for r in runs if r.data.tags.get("glattn.role") == "job"]
    assert parent.info.status == "FINISHED" and len(jobs) == 4
    for run in jobs:
        assert run.info.status == "FINISHED"
        assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert {"best/val/balanced_acc", "test/balanced_acc"} <= set(run.data.metrics)
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "val/balanced_acc")]
        assert sorted(steps) == list(range(1, EPOCHS + 1))  # each epoch once, none redone
    (again,) = [r for r in jobs if r.data.tags["fingerprint"] == fingerprint]  # same run
    assert json.loads((job_dir / "status.json").read_text())["run_id"] == again.info.run_id
