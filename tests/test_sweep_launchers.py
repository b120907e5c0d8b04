"""local_gpus launcher, glattn sweeper and sweep callback, on a fake task (no training).

Real CLI in a subprocess (Hydra, plugins, callbacks, job subprocesses), fake GPU ids: the
pinning and the concurrency bound are checked from what each job recorded.
"""

import json
import os
from pathlib import Path

import pytest
from test_sweep_helpers import (
    FAKE_DEFAULTS,
    explain,
    fake_records,
    run_cli,
    sweep_dirs,
    write_fake_app,
)


def _overlaps(records, key=None):
    """Largest number of jobs running at one instant (optionally per value of `key`)."""
    events = []
    for r in records:
        k = r[key] if key else None
        events += [(r["start"], 1, k), (r["end"], -1, k)]
    best, cur = {}, {}
    for _, d, k in sorted(events, key=lambda e: (e[0], e[1])):
        cur[k] = cur.get(k, 0) + d
        best[k] = max(best.get(k, 0), cur[k])
    return best


@pytest.fixture
def app(tmp_path):
    return write_fake_app(tmp_path)


def test_local_gpus_pins_each_job_and_bounds_concurrency(app, tmp_path):
    out = tmp_path / "out"
    res = run_cli(
        app,
        *FAKE_DEFAULTS,
        "fake.sleep=2.5",
        f"paths.output_dir={out}",
        "hydra/launcher=local_gpus",
        "hydra.launcher.gpus=[3,5]",
        "hydra.launcher.jobs_per_gpu=2",
        "seed=0,1,2,3,4,5,6,7",
        "tracking=none",
        cwd=tmp_path,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    (sweep,) = sweep_dirs(out)
    recs = fake_records(sweep)
    assert len(recs) == 8
    assert {r["cuda"] for r in recs} == {"3", "5"}  # each job saw exactly one of its GPUs
    assert len({r["pid"] for r in recs}) == 8  # one process per job
    per_gpu = _overlaps(recs, "cuda")
    assert max(per_gpu.values()) <= 2, per_gpu  # never more than jobs_per_gpu on a GPU
    total = _overlaps(recs)[None]
    assert 2 < total <= 4, total  # ran in parallel, never more than 2 GPUs x 2 slots
    assert {r["omp"] for r in recs} == {str(max(1, (os.cpu_count() or 1) // 4))}
    assert "8 jobs: 8 done, 0 skipped, 0 failed" in res.stdout


def test_local_gpus_cpu_mode_splits_threads(app, tmp_path):
    out = tmp_path / "out"
    res = run_cli(
        app,
        *FAKE_DEFAULTS,
        "fake.sleep=1.5",
        f"paths.output_dir={out}",
        "tracking=none",
        "hydra/launcher=local_gpus",
        "hydra.launcher.gpus=[]",
        "hydra.launcher.n_jobs=2",
        "hydra.launcher.threads_per_job=3",
        "seed=0,1,2",
        cwd=tmp_path,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    recs = fake_records(sweep_dirs(out)[0])
    assert [r["cuda"] for r in recs] == ["", "", ""]  # no GPU for CPU jobs
    assert {r["omp"] for r in recs} == {"3"}
    assert _overlaps(recs)[None] == 2


@pytest.mark.parametrize("launcher", [pytest.param("basic", marks=pytest.mark.slow), "local_gpus"])
def test_failed_and_killed_jobs_are_reported_others_finish(app, tmp_path, launcher):
    from mlflow.tracking import MlflowClient

    out = tmp_path / "out"
    kill = ["fake.kill_seeds=[3]"] if launcher == "local_gpus" else []  # basic: in-process
    res = run_cli(
        app,
        *FAKE_DEFAULTS,
        f"paths.output_dir={out}",
        f"hydra/launcher={launcher}",
        "fake.fail_seeds=[1]",
        *kill,
        "seed=0,1,2,3",
        "+hydra.launcher.gpus=[0]" if launcher == "local_gpus" else "seed=0,1,2,3",
        cwd=tmp_path,
    )
    assert res.returncode == 1, (res.stdout[-2000:], res.stderr[-3000:])
    (sweep,) = sweep_dirs(out)
    n_failed = 2 if kill else 1
    assert f"4 jobs: {4 - n_failed} done, 0 skipped, {n_failed} failed" in res.stdout
    assert "RuntimeError: boom in seed 1" in res.stdout
    status = json.loads((sweep / "1" / "status.json").read_text())
    assert status["status"] == "failed" and "boom in seed 1" in status["error"]
    assert "Traceback" in (sweep / "1" / "traceback.log").read_text()
    if kill:
        assert "exited with code -9" in res.stdout
    assert {r["num"] for r in fake_records(sweep)} == {0, 1, 2, 3}  # every job ran
    # the parent run: created once, in the launching process, ended FAILED
    client = MlflowClient(f"sqlite:///{out / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("glattn").experiment_id])
    (parent,) = [r for r in runs if r.data.tags.get("glattn.role") == "sweep"]
    assert (sweep / "parent_run_id").read_text().strip() == parent.info.run_id
    assert parent.info.status == "FAILED"
    assert parent.info.run_name == f"glattn/{sweep.name}"
    assert parent.data.tags["glattn.jobs_failed"] == str(n_failed)


@pytest.mark.slow
@pytest.mark.parametrize("signame", ["SIGINT", "SIGTERM", "SIGHUP"])
def test_interrupted_sweep_stops_its_jobs_and_ends_parent_killed(app, tmp_path, signame):
    import signal
    import subprocess
    import time

    from mlflow.tracking import MlflowClient
    from test_sweep_helpers import PY, SWEEP_HOOKS, env, processes_with

    out = tmp_path / "out"
    cmd = [
        PY,
        str(app),
        "-m",
        *SWEEP_HOOKS,
        *FAKE_DEFAULTS,
        "fake.sleep=120",
        f"paths.output_dir={out}",
        "hydra/launcher=local_gpus",
        "hydra.launcher.gpus=[7]",
        "seed=0,1",
    ]
    proc = subprocess.Popen(
        cmd, cwd=tmp_path, env=env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    deadline = time.monotonic() + 120
    while not list(out.glob("sweeps/glattn/*/0/.hydra")) and time.monotonic() < deadline:
        time.sleep(0.2)  # job 0 is running (its Hydra job dir exists)
    proc.send_signal(getattr(signal, signame))
    try:  # the job gets KILL_WAIT_S (30 s) after SIGTERM; a loaded machine needs more
        output, _ = proc.communicate(timeout=150)
    except subprocess.TimeoutExpired:
        proc.kill()
        output, _ = proc.communicate()
        pytest.fail(f"the sweep did not end within 150 s of {signame}:\n{output[-3000:]}")
    # the sweep's summary and the shell's exit status for the signal, no traceback
    status = {"SIGINT": 130, "SIGTERM": 143, "SIGHUP": 129}[signame]  # 128 + the signal
    assert proc.returncode == status, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    assert f"interrupted by {signame}: 2 jobs: 0 done, 0 skipped, 1 killed" in output
    assert "1 not started" in output
    (sweep,) = sweep_dirs(out)
    assert not fake_records(sweep)  # the job was stopped before it could finish
    assert not processes_with(str(sweep / ".local_gpus"))  # the launcher stopped its jobs
    client = MlflowClient(f"sqlite:///{out / 'mlflow.db'}")
    parent = client.get_run((sweep / "parent_run_id").read_text().strip())
    assert parent.info.status == "KILLED"


# ------------------------------------------------------------- fail fast
def _fake_bin(folder: Path, name: str, body: str) -> None:
    folder.mkdir(exist_ok=True)
    (folder / name).write_text(f"#!/bin/sh\n{body}\n")
    (folder / name).chmod(0o755)


def _no_traceback(res) -> None:
    assert "Traceback" not in res.stdout + res.stderr, (res.stdout[-2000:], res.stderr[-3000:])


@pytest.mark.slow
def test_a_sweep_whose_tracking_server_refuses_is_one_masked_line(app, tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    out = tmp_path / "out"
    res = run_cli(
        app,
        *FAKE_DEFAULTS,
        f"paths.output_dir={out}",
        f"tracking.uri=http://bob:SweepUrlPw55@127.0.0.1:{port}",
        "seed=0,1",
        cwd=tmp_path,
    )
    assert res.returncode == 1
    _no_traceback(res)
    assert "SweepUrlPw55" not in res.stdout + res.stderr
    assert (
        f"[glattn sweep] tracking.uri=http://bob:****@127.0.0.1:{port}: the MLflow " in res.stderr
    )
    assert not (out / "sweeps").exists()  # no sweep folder, no job, no parent run


@pytest.mark.parametrize(
    "cluster", ["no sbatch", pytest.param("no cluster", marks=pytest.mark.slow)]
)
def test_slurm_without_a_usable_cluster_is_one_line_before_any_run(app, tmp_path, cluster):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    marker = tmp_path / "submitted"
    if cluster == "no cluster":
        _fake_bin(bin_dir, "sbatch", f"touch {marker}; exit 1")
        _fake_bin(
            bin_dir, "sinfo", "echo 'sinfo: fatal: Could not establish a config' >&2; exit 1"
        )
    out = tmp_path / "out"
    path = f"{bin_dir}:{os.path.dirname(os.sys.executable)}"  # no /usr/bin/sbatch
    res = run_cli(
        app,
        *FAKE_DEFAULTS,
        f"paths.output_dir={out}",
        "hydra/launcher=slurm",
        "seed=0,1",
        cwd=tmp_path,
        PATH=path,
    )
    assert res.returncode == 1, (res.stdout[-2000:], res.stderr[-3000:])
    _no_traceback(res)
    (line,) = [ln for ln in res.stderr.splitlines() if ln.startswith("[glattn sweep]")]
    assert "hydra/launcher=local_gpus" in line and "scripts/slurm_cluster.py" in line
    assert ("sbatch is not on PATH" if cluster == "no sbatch" else "no SLURM cluster") in line
    assert not marker.exists() and not (out / "mlflow.db").exists()  # no parent run


@pytest.mark.slow
def test_slurm_submits_nothing_for_jobs_already_finished(app, tmp_path):
    from conftest import compose_cfg
    from mlflow.tracking import MlflowClient

    from glattn.config import config_fingerprint
    from glattn.tracking import get_experiment_id

    out = tmp_path / "out"
    bin_dir, marker = tmp_path / "bin", tmp_path / "submitted"
    _fake_bin(bin_dir, "sbatch", f"touch {marker}; exit 1")
    _fake_bin(bin_dir, "sinfo", f"touch {marker}; exit 1")
    cfg = compose_cfg(*FAKE_DEFAULTS, f"paths.output_dir={out}")
    client = MlflowClient(f"sqlite:///{out / 'mlflow.db'}")
    exp = get_experiment_id(cfg.tracking)
    for seed in (0, 1):  # as if an earlier launch had trained both
        fp = config_fingerprint(
            compose_cfg(*FAKE_DEFAULTS, f"paths.output_dir={out}", f"seed={seed}")
        )
        tags = {"glattn.role": "job", "fingerprint": fp, "task": "train"}
        run = client.create_run(exp, run_name=f"done{seed}", tags=tags)
        client.set_terminated(run.info.run_id, "FINISHED")
    res = run_cli(
        app,
        *FAKE_DEFAULTS,
        f"paths.output_dir={out}",
        "hydra/launcher=slurm",
        "seed=0,1",
        cwd=tmp_path,
        PATH=f"{bin_dir}:{os.environ['PATH']}",
    )
    assert res.returncode == 0, explain(res, out)
    assert not marker.exists()  # neither sinfo nor sbatch was needed
    assert res.stdout.count("already FINISHED as MLflow run done") == 2
    assert "2 jobs: 0 done, 2 skipped, 0 failed" in res.stdout


@pytest.mark.slow
def test_sigterm_to_a_basic_sweep_prints_the_summary_and_exits_143(app, tmp_path):
    """The basic launcher runs the job in the launching process: the same summary."""
    import signal
    import subprocess
    import time

    from test_sweep_helpers import PY, SWEEP_HOOKS, env

    out = tmp_path / "out"
    cmd = [PY, str(app), "-m", *SWEEP_HOOKS, *FAKE_DEFAULTS, "fake.sleep=120"]
    cmd += [f"paths.output_dir={out}", "seed=0,1"]
    proc = subprocess.Popen(
        cmd, cwd=tmp_path, env=env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    deadline = time.monotonic() + 120
    while not list(out.glob("sweeps/glattn/*/0/.hydra")) and time.monotonic() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 143, output[-3000:]
    assert "Traceback" not in output
    summary = "interrupted by SIGTERM: 2 jobs: 0 done, 0 skipped, 1 killed, 0 failed, 1 not"
    assert summary in output and "ended KILLED" in output


SLOW_SETUP = """
import os, sys, time
from pathlib import Path
from hydra.core.plugins import Plugins

build = Plugins.instantiate_sweeper


def slow_build(self, **kwargs):  # Hydra builds the sweeper after the parent run is open
    Path(os.environ["MARKER"]).touch()
    time.sleep(120)
    return build(self, **kwargs)


Plugins.instantiate_sweeper = slow_build
from glattn.cli import main

sys.exit(main())
"""


@pytest.mark.slow
def test_sigterm_between_the_callback_and_the_sweeper_ends_the_parent_killed(tmp_path):
    """A stop signal while Hydra builds the sweeper (the parent run is open, no job has
    started): the parent ends KILLED, the status is 143, no traceback."""
    import signal
    import subprocess
    import time

    from mlflow.tracking import MlflowClient
    from test_sweep_helpers import PY, env

    out, marker, script = tmp_path / "out", tmp_path / "building", tmp_path / "slow_setup.py"
    script.write_text(SLOW_SETUP)
    cmd = [PY, str(script), "-m", "debug=smoke", "seed=0,1", f"paths.output_dir={out}"]
    proc = subprocess.Popen(
        cmd,
        cwd=tmp_path,
        env=env(MARKER=str(marker)),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 180
    while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 143, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    assert "interrupted by SIGTERM" in output and "ended KILLED" in output, output[-3000:]
    (parent_file,) = out.glob("sweeps/*/*/parent_run_id")
    client = MlflowClient(f"sqlite:///{out / 'mlflow.db'}")
    parent = client.get_run(parent_file.read_text().strip())
    assert parent.info.status == "KILLED"
    assert not list(parent_file.parent.glob("*/.hydra"))  # no job had started
