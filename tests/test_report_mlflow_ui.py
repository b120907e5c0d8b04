"""Slow: a real 2-job sweep (run.py -m, debug=smoke), then `mlflow ui` on 127.0.0.1 with the
README's exact backend-store URI; through its REST API the runs carry the params and tags
the UI's compare view lines up, and the report reads the runs through the server."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from glattn.report.__main__ import main as report_main

ROOT = Path(__file__).resolve().parents[1]
FACTOR_TAGS = (
    "backbone",
    "attention",
    "fusion",
    "residual",
    "loss",
    "dataset",
    "seed",
    "fingerprint",
    "task",
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(base, route, **query):
    url = f"{base}{route}" + (f"?{urllib.parse.urlencode(query)}" if query else "")
    with urllib.request.urlopen(url, timeout=30) as r:
        return r.status, r.read().decode()


def post(base, route, body):
    req = urllib.request.Request(
        f"{base}{route}",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read().decode())


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_mlflow_ui_shows_sweep_runs_ready_for_compare(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    env.pop("MLFLOW_TRACKING_URI", None)
    sweep = [
        sys.executable,
        str(ROOT / "run.py"),
        "-m",
        "debug=smoke",
        "fusion=original,cross_attn",
        "tracking.experiment=ui_sweep",
        "trainer.gradcam_per_class=0",
        "++hydra.callbacks.glattn_sweep._target_=glattn.sweep.callbacks.SweepCallback",
    ]
    done = subprocess.run(
        sweep, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1500
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert (tmp_path / "outputs" / "mlflow.db").is_file()
    check_ui_and_report(tmp_path, env)


def check_ui_and_report(tmp_path: Path, env: dict) -> None:
    """Serve tmp_path/outputs/mlflow.db with `mlflow ui`, check the runs, run the report."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = open(tmp_path / "mlflow_ui.log", "w")
    ui = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "mlflow"),
            "ui",
            "--backend-store-uri",
            "sqlite:///outputs/mlflow.db",  # README's command, same cwd
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        cwd=tmp_path,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                if get(base, "/health")[0] == 200:
                    break
            except OSError:
                pass
            assert ui.poll() is None, (tmp_path / "mlflow_ui.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "mlflow ui did not answer /health in 300 s"
            time.sleep(1)
        assert get(base, "/")[0] == 200  # the UI page itself

        # debug=smoke: the sweep and its runs are in <experiment>-debug (issue 18)
        name = "ui_sweep-debug"
        _, body = get(base, "/api/2.0/mlflow/experiments/get-by-name", experiment_name=name)
        exp_id = json.loads(body)["experiment"]["experiment_id"]
        found = post(
            base, "/api/2.0/mlflow/runs/search", {"experiment_ids": [exp_id], "max_results": 100}
        )["runs"]
        tags = [{t["key"]: t["value"] for t in r["data"].get("tags", [])} for r in found]
        parents = [r for r, t in zip(found, tags) if t.get("glattn.role") == "sweep"]
        jobs = [(r, t) for r, t in zip(found, tags) if t.get("glattn.role") == "job"]
        assert len(parents) == 1, tags
        assert len(jobs) == 2
        parent_id = parents[0]["info"]["run_id"]
        params = []
        for run, t in jobs:
            assert run["info"]["status"] == "FINISHED"
            assert t["mlflow.parentRunId"] == parent_id  # nested under the sweep in the UI
            assert set(FACTOR_TAGS) <= set(t), set(FACTOR_TAGS) - set(t)
            metrics = {m["key"] for m in run["data"]["metrics"]}
            assert {
                "best/val/balanced_acc",
                "test/balanced_acc",
                "model/params_total",
                "model/gflops",
                "time/train_total_s",
            } <= metrics
            params.append({p["key"]: p["value"] for p in run["data"]["params"]})
        assert {t["fusion"] for _, t in jobs} == {"original", "cross_attn"}  # choice names
        assert len({t["attention"] for _, t in jobs} | {t["residual"] for _, t in jobs}) == 2
        names = {r["info"]["run_name"] for r, _ in jobs}
        assert len(names) == 2 and all(
            any(f in n for f in ("original", "cross_attn")) for n in names
        )
        # the compare view lines params up by key: they differ only in fusion.* (a key one
        # strategy lacks, like cross attention's num_heads, shows as a differing row too)
        keys = params[0].keys() | params[1].keys()
        differ = {k for k in keys if params[0].get(k) != params[1].get(k)}
        assert {"fusion._target_", "choice.fusion"} <= differ  # choice.*: the short names
        assert all(k.startswith(("fusion.", "choice.fusion")) for k in differ), differ
        assert {p["choice.fusion"] for p in params} == {"original", "cross_attn"}
        assert len(keys) > 50  # the whole resolved config, not a summary

        # the report reads the same runs through the server and logs to the parent run
        out = tmp_path / "report"
        argv = [name, "--tracking-uri", base, "--out", str(out), "--include-debug"]
        assert report_main(argv) == 0  # debug runs: only when asked
        table = (out / "table3_fusion.md").read_text()
        assert "| original |" in table and "| cross_attn |" in table
        assert (out / "figures" / "gradcam_fusion.png").is_file()
        _, body = get(base, "/api/2.0/mlflow/artifacts/list", run_id=parent_id, path="report")
        files = {f["path"] for f in json.loads(body).get("files", [])}
        assert "report/table3_fusion.tex" in files, files
    finally:
        os.killpg(ui.pid, signal.SIGTERM)
        try:
            ui.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(ui.pid, signal.SIGKILL)
            ui.wait()
        log.close()
    assert ui.poll() is not None
