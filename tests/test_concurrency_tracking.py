"""Slow: >= 8 jobs at once logging to one tracking store, SQLite and an MLflow server backed
by PostgreSQL (both started here, on 127.0.0.1); no run, param or metric is lost."""

import shutil

import pytest
from conftest import load_script
from test_sweep_helpers import FAKE_DEFAULTS, explain, fake_records, run_cli, write_fake_app

pytestmark = pytest.mark.slow
N_JOBS, N_PARAMS, N_STEPS = 8, 150, 40


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    if shutil.which("initdb") is None and not list(
        __import__("pathlib").Path("/usr/lib/postgresql").glob("*/bin/initdb")
    ):
        pytest.skip("PostgreSQL is not installed")
    srv = load_script("tracking_server").TrackingServer(tmp_path_factory.mktemp("pg"))
    try:
        srv.start()
        yield srv
    finally:
        srv.stop()
        assert not any(srv._alive(pid) for pid in srv.info["pids"].values())


@pytest.mark.parametrize("store", ["sqlite", "server"])
def test_parallel_jobs_lose_nothing(store, request, tmp_path):
    from mlflow.tracking import MlflowClient

    out = tmp_path / "out"
    uri = f"sqlite:///{out / 'mlflow.db'}"
    if store == "server":
        uri = request.getfixturevalue("server").uri
    app = write_fake_app(tmp_path)
    seeds = ",".join(map(str, range(N_JOBS)))
    res = run_cli(
        app,
        *FAKE_DEFAULTS,
        "fake.mlflow=true",
        f"fake.n_params={N_PARAMS}",
        f"fake.n_steps={N_STEPS}",
        f"fake.barrier={N_JOBS}",
        f"paths.output_dir={out}",
        f"tracking.uri={uri}",
        "tracking.experiment=concurrency",
        "hydra/launcher=local_gpus",
        "hydra.launcher.gpus=[]",
        f"hydra.launcher.n_jobs={N_JOBS}",
        f"seed={seeds}",
        cwd=tmp_path,
    )
    assert res.returncode == 0, explain(res, out)
    sweep = next((out / "sweeps" / "concurrency").iterdir())
    recs = fake_records(sweep)
    assert len(recs) == N_JOBS
    # all N_JOBS were alive together when they started logging
    assert max(r["barrier"] for r in recs) < min(r["end"] for r in recs)
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("concurrency")
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    (parent,) = [r for r in runs if r.data.tags.get("glattn.role") == "sweep"]
    jobs = [r for r in runs if r.data.tags.get("glattn.role") == "job"]
    assert parent.info.status == "FINISHED" and len(jobs) == N_JOBS
    for run in jobs:
        num = int(run.data.tags["job_num"])
        assert run.info.status == "FINISHED"
        assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert run.data.params == {f"p{i}": f"{num}-{i}" for i in range(N_PARAMS)}
        (logged,) = run.inputs.dataset_inputs  # all at once; none failed on its unique key
        assert (logged.dataset.name, logged.dataset.source_type) == ("shared", "local")
        history = client.get_metric_history(run.info.run_id, "m")
        assert sorted((m.step, m.value) for m in history) == [
            (s, float(num * 1000 + s)) for s in range(N_STEPS)
        ]
