"""Helpers for the sweep tests: run the real CLI (run.py or a fake-task app) in a subprocess.

The fake task composes the project's real conf/ but only records what the job saw (its
CUDA_VISIBLE_DEVICES, OMP_NUM_THREADS, pid, start and end time), optionally logs to MLflow
under the sweep's parent run, and fails on request: launcher and sweep logic can then be
tested in seconds, without training.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
# what conf/config.yaml should register (see README, sweeps); harmless when it already does
SWEEP_HOOKS = [
    "hydra/sweeper=glattn",
    "++hydra.callbacks.glattn_sweep._target_=hydra_plugins.glattn_sweeper.callback.GlattnSweepCallback",
]

FAKE_APP = """
import json, os, signal, sys, time
from pathlib import Path
import hydra
from omegaconf import OmegaConf

@hydra.main(version_base="1.3", config_path=%(conf)r, config_name="config")
def main(cfg):
    from hydra.core.hydra_config import HydraConfig
    from glattn.job import protocol
    hc = HydraConfig.get()
    job_dir = Path(hc.runtime.output_dir)
    fake = cfg.fake
    rec = {"num": hc.job.num, "cuda": os.environ.get("CUDA_VISIBLE_DEVICES"),
           "omp": os.environ.get("OMP_NUM_THREADS"), "pid": os.getpid(), "start": time.time()}
    run_id = None

    def barrier(name):  # wait until fake.barrier jobs are here: all go on at once
        arrived = Path(hc.sweep.dir) / name
        arrived.mkdir(exist_ok=True)
        (arrived / str(hc.job.num)).touch()
        deadline = time.time() + 300
        while len(list(arrived.iterdir())) < int(fake.barrier) and time.time() < deadline:
            time.sleep(0.005)
        return time.time()

    if int(fake.get("barrier", 0)):  # all log at once
        rec["barrier"] = barrier("barrier")
    if fake.get("mlflow", False):
        from mlflow.tracking import MlflowClient
        from mlflow.entities import Metric, Param
        from glattn.tracking import get_experiment_id, resolve_uri
        from glattn.tracking.models import log_dataset
        from glattn.tracking.tracker import Tracker
        client = MlflowClient(resolve_uri(cfg.tracking.uri))
        parent = protocol.read_parent_run_id()
        run = client.create_run(get_experiment_id(cfg.tracking), run_name=f"job{hc.job.num}",
                                tags={"glattn.role": "job", "mlflow.parentRunId": parent,
                                      "job_num": str(hc.job.num)})
        run_id = run.info.run_id
        # as a training job does, the (shared) data set as the run's input; all jobs at
        # the same moment (MLflow checks for the row, then inserts it)
        tracker = Tracker(cfg.tracking)
        tracker.run_id = run_id
        split, mine = Path(hc.sweep.dir) / "split.csv", job_dir / "split.csv"
        mine.write_text("image_id,split\\n")
        os.replace(mine, split)  # the same bytes from every job, never half written
        if int(fake.get("barrier", 0)):
            barrier("barrier_dataset")
        log_dataset(tracker, "shared", str(hc.sweep.dir), split, {"train": 1})
        params = [Param(f"p{i}", f"{hc.job.num}-{i}") for i in range(int(fake.n_params))]
        for i in range(0, len(params), 100):
            client.log_batch(run_id, params=params[i:i + 100])
        for step in range(int(fake.n_steps)):
            client.log_metric(run_id, "m", float(hc.job.num * 1000 + step), step=step)
        client.set_terminated(run_id, "FINISHED")
    time.sleep(float(fake.sleep))
    rec["end"] = time.time()
    (job_dir / "fake.json").write_text(json.dumps(rec))
    if int(cfg.seed) in list(fake.fail_seeds):
        raise RuntimeError(f"boom in seed {cfg.seed}")
    if int(cfg.seed) in list(fake.kill_seeds):
        os.kill(os.getpid(), signal.SIGKILL)
    protocol.write_status(job_dir, "finished", run_id=run_id)
    return rec

if __name__ == "__main__":
    main()
"""

FAKE_DEFAULTS = [
    "+fake.sleep=0.2",
    "+fake.fail_seeds=[]",
    "+fake.kill_seeds=[]",
    "+fake.mlflow=false",
    "+fake.n_params=0",
    "+fake.n_steps=0",
    "+fake.barrier=0",
]


def write_fake_app(tmp: Path) -> Path:
    app = tmp / "fake_app.py"
    app.write_text(FAKE_APP % {"conf": str(ROOT / "conf")})
    return app


def env(**extra: str) -> dict:
    e = dict(os.environ)
    e["OMP_NUM_THREADS"] = "1"  # 2 shared cores: oversubscribed OpenMP threads spin
    e["PYTHONPATH"] = os.pathsep.join([str(ROOT), e.get("PYTHONPATH", "")])
    e.update(extra)
    return e


def run_cli(
    script: Path, *overrides: str, cwd: Path, timeout: int = 900, **extra_env: str
) -> subprocess.CompletedProcess:
    cmd = [PY, str(script), "-m", *SWEEP_HOOKS, *overrides]
    return subprocess.run(
        cmd, cwd=cwd, env=env(**extra_env), capture_output=True, text=True, timeout=timeout
    )


def processes_with(text: str) -> list[str]:
    """The pids of the running processes whose command line contains ``text``."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if text in cmdline.read_bytes().decode(errors="replace"):
                found.append(cmdline.parent.name)
        except OSError:
            pass
    return found


def sweep_dirs(out: Path, experiment: str = "glattn") -> list[Path]:
    return sorted((out / "sweeps" / experiment).iterdir())


def fake_records(sweep_dir: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(sweep_dir.glob("*/fake.json"))]


def explain(res: subprocess.CompletedProcess, out: Path | None = None, tail: int = 4000) -> str:
    """Why a CLI call failed, as one string (pytest prints a string message whole, where it
    shortens a tuple's repr to its ends): the exit code, the whole stdout and stderr, and
    the end of every job log (worker.log, glattn.log, debug.log) and status.json below
    `out`."""
    parts = [f"exit code {res.returncode}"]
    parts += [f"--- stdout\n{res.stdout}", f"--- stderr\n{res.stderr}"]
    if out is not None and Path(out).is_dir():
        names = ("worker.log", "glattn.log", "debug.log", "status.json")
        for log in sorted(p for p in Path(out).rglob("*") if p.name in names and p.is_file()):
            text = log.read_text(errors="replace")
            parts.append(f"--- {log} (last {tail} characters)\n{text[-tail:]}")
    return "\n".join(parts)
