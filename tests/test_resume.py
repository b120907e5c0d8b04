"""A run killed with SIGKILL in the middle of an epoch and started again with the same
command resumes from its last checkpoint, continues the same MLflow run, and ends with
exactly the metrics and weights of an uninterrupted run (trainer.deterministic=true, CPU).
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from mlflow.tracking import MlflowClient

from glattn.tracking.names import debug_experiment

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def command(out: Path) -> list[str]:
    return [
        sys.executable,
        "run.py",
        "debug=smoke",
        f"paths.output_dir={out}",
        "trainer.deterministic=true",
        "trainer.max_epochs=3",
        "trainer.batch_size=8",
        "trainer.gradcam_per_class=0",
        "tracking.log_checkpoint=false",
        "trainer.keep_last=true",  # the finished runs' last.pt weights are compared
    ]


def env() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def only_run(out: Path):
    c = MlflowClient(tracking_uri=f"sqlite:///{out}/mlflow.db")
    # debug=smoke runs are recorded in glattn-debug where the job routes debug presets
    exp = c.get_experiment_by_name(debug_experiment("glattn"))
    exp = exp or c.get_experiment_by_name("glattn")
    (run,) = c.search_runs([exp.experiment_id])
    return c, run


def test_sigkill_mid_epoch_then_restart_equals_uninterrupted(tmp_path):
    full, killed = tmp_path / "full", tmp_path / "killed"
    subprocess.run(
        command(full), cwd=ROOT, env=env(), check=True, capture_output=True, timeout=600
    )

    proc = subprocess.Popen(
        command(killed), cwd=ROOT, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 600
    try:
        while time.time() < deadline and proc.poll() is None:
            logs = list(killed.glob("runs/*/*/debug.log"))
            if logs and "epoch 2 step" in logs[0].read_text():
                break
            time.sleep(0.05)
        assert proc.poll() is None, "the run ended before it could be killed mid-epoch"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    (last,) = killed.glob("checkpoints/*/last.pt")
    assert torch.load(last, weights_only=True)["epoch"] == 1  # killed inside epoch 2
    _, run = only_run(killed)
    assert run.info.status == "RUNNING"

    subprocess.run(
        command(killed), cwd=ROOT, env=env(), check=True, capture_output=True, timeout=600
    )

    c_full, run_full = only_run(full)
    c_kill, run_kill = only_run(killed)  # the same run was continued, no second run
    assert run_kill.info.run_id == run.info.run_id and run_kill.info.status == "FINISHED"

    def portable(params):  # the two runs differ only in their output directories
        return {k: v for k, v in params.items() if str(full) not in v and str(killed) not in v}

    assert len(run_kill.data.params) == len(run_full.data.params)  # logged once
    assert portable(run_kill.data.params) == portable(run_full.data.params)
    skip = ("time/", "perf/")
    final_full = {k: v for k, v in run_full.data.metrics.items() if not k.startswith(skip)}
    final_kill = {k: v for k, v in run_kill.data.metrics.items() if not k.startswith(skip)}
    assert final_kill == final_full  # exactly equal
    for key in ("val/balanced_acc", "train/loss", "val/loss"):
        h_full = [(m.step, m.value) for m in c_full.get_metric_history(run_full.info.run_id, key)]
        h_kill = [(m.step, m.value) for m in c_kill.get_metric_history(run_kill.info.run_id, key)]
        assert sorted(h_kill) == sorted(h_full) and [s for s, _ in h_full] == [1, 2, 3]
    (w_full,) = full.glob("checkpoints/*/last.pt")
    a, b = (torch.load(p, weights_only=True)["model"] for p in (w_full, last))
    assert w_full.parent.name == last.parent.name  # same fingerprint: paths are excluded
    for key in a:
        assert torch.equal(a[key], b[key]), key
