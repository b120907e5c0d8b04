"""Slow: the run record under real faults, through run.py in subprocesses (debug=smoke).

- SIGKILL before the first checkpoint, then SIGTERM mid-epoch, then a clean start: one
  MLflow run throughout, KILLED with status.json after SIGTERM, FINISHED with every epoch
  logged once at the end.
- A sweep whose launcher is SIGKILLed, launched again, then once more with nothing to do:
  one parent run for the grid, every child nested under it, no extra run.
- Secrets in three places of the config: not in clear anywhere under the output folder
  (Hydra's .hydra/ files, checkpoints, logs, artifacts) or in the database.
- A user error: one message, no traceback, exit status 1.
- N single runs started at once against a SQLite file that does not exist yet: N
  FINISHED runs with every param and metric (N=32; GLATTN_TEST_WRITERS changes it).
"""

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from test_sweep_helpers import PY, ROOT, SWEEP_HOOKS, env

from glattn.tracking.names import debug_experiment

pytestmark = pytest.mark.slow
SMALL = ["debug=smoke", "trainer.gradcam_per_class=0", "tracking.log_checkpoint=false"]


def run_py(*overrides, multirun=False, **kw):
    cmd = [PY, str(ROOT / "run.py"), *(["-m", *SWEEP_HOOKS] if multirun else []), *overrides]
    return subprocess.Popen(
        cmd, cwd=ROOT, env=env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw
    )


def wait_for(predicate, proc, timeout=600):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def text_of(paths) -> str:
    out = ""
    for p in paths:
        try:
            out += p.read_text(errors="replace")
        except OSError:
            pass
    return out


def job_runs(out: Path, experiment="glattn"):
    c = MlflowClient(f"sqlite:///{out / 'mlflow.db'}")
    # debug=smoke jobs are recorded in <experiment>-debug where the job routes debug presets
    exp = c.get_experiment_by_name(debug_experiment(experiment))
    exp = exp or c.get_experiment_by_name(experiment)
    every = c.search_runs([exp.experiment_id], max_results=1000)
    parents = [r for r in every if r.data.tags.get("glattn.role") == "sweep"]
    return c, [r for r in every if r.data.tags.get("glattn.role") == "job"], parents


def test_sigkill_before_checkpoint_then_sigterm_then_finish_is_one_run(tmp_path):
    out = tmp_path / "out"
    args = [*SMALL, f"paths.output_dir={out}", "trainer.max_epochs=3", "trainer.batch_size=8"]

    # 1. SIGKILL once the run exists, before any checkpoint
    proc = run_py(*args)
    logs = lambda: list(out.glob("runs/*/*/debug.log"))  # noqa: E731
    assert wait_for(lambda: "MLflow run" in text_of(logs()), proc), proc.communicate()[0]
    proc.kill()
    proc.communicate()
    assert not list(out.glob("checkpoints/*/last.pt"))
    _, (run,), _ = job_runs(out)
    assert run.info.status == "RUNNING"

    # 2. started again: SIGTERM in the middle of epoch 2
    proc = run_py(*args)
    assert wait_for(lambda: "epoch 2 step" in text_of(logs()), proc), proc.communicate()[0]
    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=120)
    assert proc.returncode != 0, output
    assert "Traceback" not in output and "ends KILLED" in output
    _, (again,), _ = job_runs(out)
    assert again.info.run_id == run.info.run_id and again.info.status == "KILLED"
    statuses = [json.loads(p.read_text()) for p in out.glob("runs/*/*/status.json")]
    assert [s["status"] for s in statuses] == ["killed"]
    assert statuses[0]["run_id"] == run.info.run_id

    # 3. started again: resumes after epoch 1 and finishes the same run
    proc = run_py(*args)
    output, _ = proc.communicate(timeout=900)
    assert proc.returncode == 0, output[-3000:]
    c, (done,), _ = job_runs(out)
    assert done.info.run_id == run.info.run_id and done.info.status == "FINISHED"
    for key in done.data.metrics:
        steps = [m.step for m in c.get_metric_history(done.info.run_id, key)]
        assert len(steps) == len(set(steps)), (key, steps)  # nothing logged twice
    steps = [m.step for m in c.get_metric_history(done.info.run_id, "val/balanced_acc")]
    assert sorted(steps) == [1, 2, 3]
    assert "resuming from" in text_of(logs()) and not list(out.glob("checkpoints/*/.*.tmp"))


def test_killed_launcher_rerun_has_one_parent_and_nothing_to_do_adds_no_run(tmp_path):
    out = tmp_path / "out"
    grid = [*SMALL, f"paths.output_dir={out}", "seed=0,1"]
    proc = run_py(*grid, multirun=True)
    second = lambda: list(out.glob("sweeps/glattn/*/1/.hydra"))  # noqa: E731
    assert wait_for(second, proc), proc.communicate()[0]
    proc.kill()  # SIGKILL: no handler runs, the parent stays RUNNING
    proc.communicate()
    _, jobs, (parent,) = job_runs(out)
    assert parent.info.status == "RUNNING"

    proc = run_py(*grid, multirun=True)
    output, _ = proc.communicate(timeout=900)
    assert proc.returncode == 0, output[-3000:]
    assert "2 jobs: 1 done, 1 skipped, 0 failed" in output
    _, jobs, parents = job_runs(out)
    (after,) = parents  # taken over, not a second parent
    assert after.info.run_id == parent.info.run_id and after.info.status == "FINISHED"
    assert len(jobs) == 2 and {r.info.status for r in jobs} == {"FINISHED"}
    assert {r.data.tags["mlflow.parentRunId"] for r in jobs} == {parent.info.run_id}
    assert len({r.data.tags["fingerprint"] for r in jobs}) == 2  # one run per job

    proc = run_py(*grid, multirun=True)  # nothing left to do
    output, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0 and "2 jobs: 0 done, 2 skipped, 0 failed" in output
    _, jobs_now, parents_now = job_runs(out)
    assert len(parents_now) == 1 and len(jobs_now) == 2


SECRETS = {"tracking": "sekr3t-tracking", "dataset": "sekr3t-dataset", "root": "sekr3t-root"}
SECRET_OVERRIDES = [
    f"+tracking.api_key={SECRETS['tracking']}",
    f"+dataset.access_token={SECRETS['dataset']}",
    f"+db_password={SECRETS['root']}",
    "+mirror=http://me:sekr3t-uri@example.org/",  # a user:password@ URI under any key
]


def _found(out: Path) -> list[str]:
    values = [*SECRETS.values(), "sekr3t-uri"]
    hits = []
    for path in out.rglob("*"):
        if path.is_file():
            blob = path.read_bytes()
            hits += [f"{path}: {v}" for v in values if v.encode() in blob]
    return hits


@pytest.mark.parametrize("multirun", [False, True], ids=["run", "sweep"])
def test_no_secret_in_clear_anywhere(tmp_path, multirun):
    out = tmp_path / "out"
    seeds = ["seed=0,1"] if multirun else []
    args = ["debug=smoke", "trainer.gradcam_per_class=0", "tracking.log_checkpoint=true"]
    proc = run_py(*args, f"paths.output_dir={out}", *SECRET_OVERRIDES, *seeds, multirun=multirun)
    output, _ = proc.communicate(timeout=900)
    assert proc.returncode == 0, output[-3000:]
    assert not [v for v in SECRETS.values() if v in output]  # nor on the console
    c, jobs, _ = job_runs(out)
    assert len(jobs) == (2 if multirun else 1)
    for run in jobs:
        assert run.data.params["tracking.api_key"] == "****"
        assert "api_key=****" in run.data.tags["overrides"]
        names = {a.path for a in c.list_artifacts(run.info.run_id)}
        assert {"config_resolved.yaml", "hydra", "checkpoints"} <= names
    assert list(out.rglob(".hydra/config.yaml")) and list(out.rglob("best.pt"))
    assert _found(out) == []  # the database, artifacts, checkpoints, .hydra/, logs


def test_refused_config_leaves_no_secret_in_its_run_folder(tmp_path):
    """Hydra writes .hydra/ before the job starts; a config refused at once is masked too."""
    out = tmp_path / "out"
    proc = run_py("debug=smoke", f"paths.output_dir={out}", "+trainer.epochs=3", *SECRET_OVERRIDES)
    output, _ = proc.communicate(timeout=300)
    assert proc.returncode == 1 and "did you mean trainer.max_epochs?" in output, output
    assert list(out.rglob(".hydra/overrides.yaml"))
    assert _found(out) == [] and "sekr3t" not in output


def test_user_error_is_one_message_without_traceback(tmp_path):
    args = [f"paths.output_dir={tmp_path}", "dataset=ham10000", "trainer.device=cpu"]
    proc = run_py(*args, "dataset.root=/no/such/folder")
    output, _ = proc.communicate(timeout=300)
    assert proc.returncode == 1
    assert "Traceback" not in output and "HYDRA_FULL_ERROR" not in output
    lines = [line for line in output.splitlines() if "dataset.root" in line]
    assert len(lines) == 1 and "/no/such/folder" in lines[0], output
    assert len(output.strip().splitlines()) <= 5, output
    assert not (tmp_path / "mlflow.db").exists()  # nothing created for a bad config


def test_concurrent_single_runs_on_a_fresh_sqlite_file(tmp_path):
    n = int(os.environ.get("GLATTN_TEST_WRITERS", "32"))
    available = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            available = int(line.split()[1]) * 1024
    if available < n * 450 * 2**20:
        pytest.skip(f"{n} processes need ~{n * 450} MiB; {available >> 20} MiB available")
    out = tmp_path / "out"
    args = [*SMALL, f"paths.output_dir={out}", "trainer.log_every_n_steps=1000"]
    # the data set and image cache once, so the N runs race on the database, not on these
    prep = run_py(*args, "seed=999", "tracking=none")
    assert prep.communicate(timeout=600) and prep.returncode == 0
    assert not (out / "mlflow.db").exists()
    procs = [run_py(*args, f"seed={i}") for i in range(n)]
    outputs = [p.communicate(timeout=1800)[0] for p in procs]
    failed = [o[-2000:] for p, o in zip(procs, outputs) if p.returncode != 0]
    assert not failed, failed[0]
    c, jobs, _ = job_runs(out)
    assert len(jobs) == n and {r.info.status for r in jobs} == {"FINISHED"}
    assert sorted(int(r.data.tags["seed"]) for r in jobs) == list(range(n))
    params = {len(r.data.params) for r in jobs}
    metrics = {frozenset(r.data.metrics) for r in jobs}
    assert len(params) == 1 and len(metrics) == 1  # every param and metric in every run
    assert "best/val/balanced_acc" in next(iter(metrics))
    # all logged the one data set as their input (MLflow's check-then-insert, retried)
    assert {len(r.inputs.dataset_inputs) for r in jobs} == {1}
    assert len({r.inputs.dataset_inputs[0].dataset.digest for r in jobs}) == 1
