"""Slow: a real 4-job sweep (run.py -m, debug=smoke, two fusions x two seeds), then `mlflow ui`
on 127.0.0.1 with the README's exact backend-store URI. Through its REST API the runs carry
the params and tags the UI's compare view lines up, and the report reads the runs through the
server; in headless Chromium (Debian's, driven by playwright: no browser download) the link
the sweep printed opens the comparison: the runs table, readable names, the headline metric,
one group per fusion with its run count. The screenshot is kept as the test's artifact."""

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from glattn import cli
from glattn.tracking import ui

ROOT = Path(__file__).resolve().parents[1]
FUSIONS = ("original", "learnable_gate")
SEEDS = (0, 1)
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
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


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


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """The sweep's folder and what it printed."""
    tmp_path = tmp_path_factory.mktemp("ui_sweep")
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    env.pop("MLFLOW_TRACKING_URI", None)
    sweep = [
        sys.executable,
        str(ROOT / "run.py"),
        "-m",
        "debug=smoke",
        f"fusion={','.join(FUSIONS)}",
        f"seed={','.join(map(str, SEEDS))}",
        "tracking.experiment=ui_sweep",
        "trainer.gradcam_per_class=0",
        "++hydra.callbacks.glattn_sweep._target_=hydra_plugins.glattn_sweeper.callback.GlattnSweepCallback",
    ]
    done = subprocess.run(
        sweep, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1500
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert (tmp_path / "outputs" / "mlflow.db").is_file()
    return tmp_path, env, done.stdout


@contextlib.contextmanager
def serve(tmp_path: Path, env: dict):
    """`mlflow ui` on tmp_path/outputs/mlflow.db (README's command, same cwd): its base URL."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = open(tmp_path / f"mlflow_ui_{port}.log", "w")
    server = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "mlflow"),
            "ui",
            "--backend-store-uri",
            "sqlite:///outputs/mlflow.db",
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
            assert server.poll() is None, Path(log.name).read_text()[-3000:]
            assert time.monotonic() < deadline, "mlflow ui did not answer /health in 300 s"
            time.sleep(1)
        yield base
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        log.close()
    assert server.poll() is not None


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_mlflow_ui_shows_sweep_runs_ready_for_compare(swept):
    tmp_path, env, _ = swept
    with serve(tmp_path, env) as base:
        assert get(base, "/")[0] == 200  # the UI page itself
        check_runs_and_report(tmp_path, base)


def check_runs_and_report(tmp_path: Path, base: str) -> None:
    # debug=smoke: the sweep and its runs are in <experiment>-debug
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
    assert len(jobs) == len(FUSIONS) * len(SEEDS)
    parent_id = parents[0]["info"]["run_id"]
    params = {}
    for run, t in jobs:
        assert run["info"]["status"] == "FINISHED"
        assert t["mlflow.parentRunId"] == parent_id  # nested under the sweep in the UI
        assert set(FACTOR_TAGS) <= set(t), set(FACTOR_TAGS) - set(t)
        assert t["class.fusion"].startswith("glattn.models.fusion.")  # the class: a tag
        metrics = {m["key"] for m in run["data"]["metrics"]}
        assert {
            "best/val/balanced_acc",
            "test/balanced_acc",
            "model/params_total",
            "model/gflops",
            "time/train_total_s",
        } <= metrics
        params[t["seed"], t["fusion"]] = {p["key"]: p["value"] for p in run["data"]["params"]}
    assert {t["fusion"] for _, t in jobs} == set(FUSIONS)  # choice names
    assert len({t["attention"] for _, t in jobs} | {t["residual"] for _, t in jobs}) == 2
    # what differs within the grid, then the seed, within the name column's ~22 characters
    names = {r["info"]["run_name"] for r, _ in jobs}
    assert names == {
        f"{f}_s{s}_resnet18_cbam_original_synthetic_smoke" for f in FUSIONS for s in SEEDS
    }
    # the compare view lines params up by key: runs of one seed differ only in fusion.* (a
    # key one strategy lacks, like cross attention's num_heads, shows as a differing row too)
    one, two = (params["0", f] for f in FUSIONS)
    keys = one.keys() | two.keys()
    differ = {k for k in keys if one.get(k) != two.get(k)}
    assert "choice.fusion" in differ and all(k.startswith(("fusion.", "choice.")) for k in differ)
    assert not [k for k in keys if k.endswith(("_target_", "_partial_")) or k == "seed"]
    assert len(keys) > 50  # the config's settings, not a summary

    # the report reads the same runs through the server and logs to the parent run
    out = tmp_path / "report"
    argv = [name, "--tracking-uri", base, "--out", str(out), "--include-debug"]
    assert cli.main(["report", *argv]) == 0  # debug runs: only when asked
    table = (out / "table3_fusion.md").read_text()
    assert "| original |" in table and "| learnable_gate |" in table
    assert (out / "figures" / "gradcam_fusion.png").is_file()
    _, body = get(base, "/api/2.0/mlflow/artifacts/list", run_id=parent_id, path="report")
    files = {f["path"] for f in json.loads(body).get("files", [])}
    assert "report/table3_fusion.tex" in files, files


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_the_printed_link_opens_the_comparison_in_a_browser(swept, tmp_path):
    """What a person sees on opening the link the sweep printed, in a fresh browser."""
    if os.environ.get("CI"):  # .ci/run installs both: there the test must run, not skip
        assert Path(CHROMIUM).is_file(), "CI: Debian's chromium is not installed"
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).is_file():
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    sweep_dir, env, stdout = swept
    (line,) = [s for s in stdout.splitlines() if s.startswith("open the runs in the MLflow UI:")]
    assert "mlflow ui --backend-store-uri sqlite:///" in line  # the command stays in the hint
    printed = re.search(r"then open (\S+)", line).group(1)
    assert printed.startswith(ui.LOCAL_UI + "/#/experiments/") and "workflowType=" in printed
    shot = tmp_path / "mlflow-compare.png"
    with serve(sweep_dir, env) as base, sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 720})
            page.goto(printed.replace(ui.LOCAL_UI, base))
            group = page.get_by_text(re.compile(r"^Group: ")).first
            group.wait_for(timeout=300_000)  # the runs table, grouped
            with contextlib.suppress(sync_api.Error):  # the assistant's side panel, if open
                page.get_by_role("button", name="Close").first.click(timeout=3000)
            page.wait_for_timeout(1000)
            page.screenshot(path=str(shot))
            text, url = page.inner_text("body"), page.url
            headers = page.get_by_role("columnheader").all_inner_texts()
        finally:
            browser.close()
    print(f"screenshot: {shot}")
    assert "/runs?" in url and "Model training" in text
    assert "Detect issues" not in text and "Token usage" not in text  # not the GenAI overview
    assert "best/val/balanced_acc" in headers and "seed" in headers and "fusion" in headers
    for fusion in FUSIONS:  # one group per choice, with its run count
        assert re.search(rf"Group: {fusion}\s+{len(SEEDS)}\b", text), text[:2000]
        for seed in SEEDS:  # the name column shows the choice and the seed
            assert f"{fusion}_s{seed}_" in text
    assert text.count("Group: ") == len(FUSIONS)
    assert f"{len(FUSIONS) * len(SEEDS)} matching runs" in text  # filtered to the grid
    assert shot.stat().st_size > 20_000
