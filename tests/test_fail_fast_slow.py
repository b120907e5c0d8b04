"""Slow: no secret in clear on any path, and each failing case is one line.

Every secret form at once - URI ``user:password@`` for http, https, postgresql and mysql,
``+*.api_key``, ``+*token``, ``+*password``, and ``MLFLOW_TRACKING_PASSWORD`` /
``MLFLOW_TRACKING_TOKEN`` in the environment - through ``run.py`` in a subprocess: a single
run, a sweep (local_gpus), and each failing case (an http(s) tracking server that does not
answer, PostgreSQL and MySQL URLs without their drivers, an output folder under /proc,
``trainer.device=cuda`` without CUDA, ``hydra/launcher=slurm`` without a cluster). The test
greps the whole output folder (every file: Hydra's ``.hydra/``, ``status.json``, logs,
checkpoints, artifacts), the SQLite database and the captured stdout/stderr.
"""

import socket
import subprocess

import pytest
import torch
from mlflow.tracking import MlflowClient
from test_sweep_helpers import PY, ROOT, SWEEP_HOOKS, env, explain

pytestmark = pytest.mark.slow

SECRETS = {
    "http": "HttpUrlPw5521",
    "https": "HttpsUrlPw7731",
    "pg": "PgUrlPw8812",
    "mysql": "MyUrlPw4477",
    "api_key": "ApiKey9931x",
    "token": "Tok3n8821x",
    "password": "DbPw6601x",
    "env_password": "EnvTrackPw3141",
    "env_token": "EnvTrackTok2718",
}
SECRET_ARGS = [
    f"+mirror_http=http://ann:{SECRETS['http']}@example.org/",
    f"+mirror_https=https://ann:{SECRETS['https']}@example.org/",
    f"+mirror_pg=postgresql://pguser:{SECRETS['pg']}@db.example.org/mlflow",
    f"+mirror_mysql=mysql://my:{SECRETS['mysql']}@db.example.org/mlflow",
    f"+tracking.api_key={SECRETS['api_key']}",
    f"+tracking.token={SECRETS['token']}",
    f"+dataset.db_password={SECRETS['password']}",
]
SMALL = ["debug=smoke", "trainer.gradcam_per_class=0", "tracking.log_checkpoint=true"]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_py(*args: str, multirun: bool = False, timeout: int = 900, path: str | None = None):
    cmd = [PY, str(ROOT / "run.py"), *(["-m", *SWEEP_HOOKS] if multirun else []), *args]
    extra = {
        "MLFLOW_TRACKING_PASSWORD": SECRETS["env_password"],
        "MLFLOW_TRACKING_TOKEN": SECRETS["env_token"],
    }
    if path is not None:
        extra["PATH"] = path
    return subprocess.run(
        cmd, cwd=ROOT, env=env(**extra), capture_output=True, text=True, timeout=timeout
    )


def leaks(out, res) -> list[str]:
    """Every place a secret is in clear: files under ``out`` (the DB included), stdout,
    stderr."""
    hits = []
    for path in out.rglob("*") if out.exists() else []:
        if path.is_file():
            blob = path.read_bytes()
            hits += [f"{path}: {k}" for k, v in SECRETS.items() if v.encode() in blob]
    for name, text in (("stdout", res.stdout), ("stderr", res.stderr)):
        hits += [f"{name}: {k}" for k, v in SECRETS.items() if v in text]
    return hits


@pytest.mark.parametrize("multirun", [False, True], ids=["run", "sweep"])
def test_no_secret_form_in_clear_after_a_run_or_a_sweep(tmp_path, multirun):
    out = tmp_path / "out"
    sweep = ["hydra/launcher=local_gpus", "hydra.launcher.gpus=[]", "seed=0,1"]
    res = run_py(
        *SMALL,
        f"paths.output_dir={out}",
        *SECRET_ARGS,
        *(sweep if multirun else []),
        multirun=multirun,
    )
    assert res.returncode == 0, explain(res, out)
    assert leaks(out, res) == []
    client = MlflowClient(f"sqlite:///{out / 'mlflow.db'}")
    exp = client.get_experiment_by_name("glattn-debug") or client.get_experiment_by_name("glattn")
    runs = client.search_runs([exp.experiment_id])
    jobs = [r for r in runs if r.data.tags.get("glattn.role") == "job"]
    assert len(jobs) == (2 if multirun else 1) and {r.info.status for r in jobs} == {"FINISHED"}
    assert all(r.data.params["tracking.api_key"] == "****" for r in jobs)


def _failing_cases():
    port = _closed_port()
    no_sbatch = "/nonexistent-bin"  # PATH for the slurm case: the venv's python is absolute
    cases = {
        "http server": ([f"tracking.uri=http://bob:{SECRETS['http']}@127.0.0.1:{port}"], None),
        "https server": ([f"tracking.uri=https://ann:{SECRETS['https']}@127.0.0.1:{port}"], None),
        "postgresql": ([f"tracking.uri=postgresql://pg:{SECRETS['pg']}@127.0.0.1:{port}/m"], None),
        "mysql": ([f"tracking.uri=mysql://my:{SECRETS['mysql']}@127.0.0.1:{port}/m"], None),
        "proc folder": (["paths.output_dir=/proc/glattn_out"], None),
        "cuda": (["trainer.device=cuda"], None),
        "slurm": (["hydra/launcher=slurm", "seed=0,1"], no_sbatch),
    }
    return cases


FAILING = _failing_cases()
EXPECTED = {
    "http server": "tracking server refuses the connection",
    "https server": "tracking server refuses the connection",
    "postgresql": "pip install",
    "mysql": "pip install",
    "proc folder": "cannot create or write",
    "cuda": "available: cpu",
    "slurm": "hydra/launcher=local_gpus",
}


@pytest.mark.parametrize("multirun", [False, True], ids=["run", "sweep"])
@pytest.mark.parametrize("case", list(FAILING))
def test_each_failing_case_is_one_line_and_leaks_nothing(tmp_path, case, multirun):
    if case == "cuda" and torch.cuda.is_available():
        pytest.skip("needs a machine without CUDA")
    if case == "slurm" and not multirun:
        pytest.skip("a launcher is a sweep's")
    args, path = FAILING[case]
    out = tmp_path / "out"
    given = [a for a in args if not a.startswith("paths.output_dir=")]
    folder = [a for a in args if a.startswith("paths.output_dir=")] or [f"paths.output_dir={out}"]
    seeds = [] if not multirun or "seed=0,1" in args else ["seed=0,1"]
    res = run_py(
        *SMALL, *folder, *SECRET_ARGS, *given, *seeds, multirun=multirun, path=path, timeout=300
    )
    text = res.stdout + res.stderr
    assert res.returncode == 1, text[-3000:]
    assert "Traceback" not in text, text[-3000:]
    assert leaks(out, res) == []
    said = [line for line in text.splitlines() if EXPECTED[case] in line]
    assert len(said) >= 1, text[-3000:]
    client_db = out / "mlflow.db"
    if client_db.exists():  # no run was created for a refused job
        client = MlflowClient(f"sqlite:///{client_db}")
        for exp in client.search_experiments():
            assert client.search_runs([exp.experiment_id]) == [], case
