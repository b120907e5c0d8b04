"""Fail fast, leak nothing: each bad input or missing piece of the machine ends in
one line that says what is true and what to do, before any run exists; secrets leave the
command line for the environment before Hydra sees it.

Fast tier: the checks themselves (glattn.preflight, glattn.checkpoint.load_checkpoint,
glattn.data), the command-line rewrite and the stale build folders. The end-to-end runs,
sweeps and the secrets grep are in tests/test_fail_fast_slow.py.
"""

import os
import pickle
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from conftest import compose_cfg
from omegaconf import OmegaConf

from glattn import preflight
from glattn.checkpoint import CheckpointError, load_checkpoint
from glattn.config import ConfigError, config_fingerprint
from glattn.data._atomic import build_once, remove_stale_tmp
from glattn.data.options import check_options, root_error
from glattn.secrets import MASK, hide_argv_secrets, mask_text


# ------------------------------------------------------------------------ checkpoints (4)
class Unsafe:  # a pickled class: weights_only=True refuses it
    pass


@pytest.fixture
def saved(tmp_path):
    path = tmp_path / "ok.pt"
    torch.save({"model": {"w": torch.zeros(500)}}, path)
    return path


def test_random_bytes_are_not_a_pytorch_checkpoint(tmp_path):
    path = tmp_path / "random.pt"
    path.write_bytes(os.urandom(5000))
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    message = str(err.value)
    assert message.startswith(f"not a PyTorch checkpoint: {path}") and "5000 bytes" in message
    assert "weights_only" not in message and "trainer.resume=false" in message


def test_truncated_and_empty_checkpoints_say_truncated(tmp_path, saved):
    blob = saved.read_bytes()
    for size in (len(blob) // 2, 0):
        saved.write_bytes(blob[:size])
        with pytest.raises(CheckpointError, match="truncated") as err:
            load_checkpoint(saved)
        assert str(saved) in str(err.value) and "weights_only" not in str(err.value)


def test_unsafe_objects_name_weights_only_and_never_advise_false(tmp_path):
    for name, module in (("zip.pt", torch), ("legacy.pt", None)):
        path = tmp_path / name
        if module is None:  # torch's legacy (non-zip) format
            torch.save(
                {"model": Unsafe()},
                path,
                pickle_module=pickle,
                _use_new_zipfile_serialization=False,
            )
        else:
            torch.save({"model": Unsafe()}, path, pickle_module=pickle)
        with pytest.raises(CheckpointError) as err:
            load_checkpoint(path)
        message = str(err.value)
        assert "weights_only=True" in message and "Unsafe" in message, message
        assert "weights_only=False" not in message and "False" not in message


def test_a_good_checkpoint_still_loads(saved):
    assert load_checkpoint(saved)["model"]["w"].shape == (500,)


# ------------------------------------------------------------------------------- data (5)
def test_missing_roots_name_the_key_and_the_environment_variable(tmp_path, monkeypatch):
    for name, env in (("ham10000", "GLATTN_HAM10000_ROOT"), ("isic2018", "GLATTN_ISIC2018_ROOT")):
        monkeypatch.delenv(env, raising=False)
        options = check_options(compose_cfg(f"dataset={name}", f"paths.output_dir={tmp_path}"))
        message = root_error(options)
        assert "dataset.root=" in message and f"export {env}=" in message
        assert f"${env} is unset" in message
        monkeypatch.setenv(env, str(tmp_path / "nowhere"))
        options = check_options(compose_cfg(f"dataset={name}", f"paths.output_dir={tmp_path}"))
        message = root_error(options)
        assert "no such folder" in message and f"(from ${env})" in message
        monkeypatch.setenv(env, str(tmp_path))
        options = check_options(compose_cfg(f"dataset={name}", f"paths.output_dir={tmp_path}"))
        assert root_error(options) is None


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_stale_build_folders_of_dead_processes_are_removed_at_the_next_start(tmp_path):
    old = time.time() - 3600
    dead = tmp_path / f".synthetic-abc.tmp-{_dead_pid()}-0123abcd"
    live_proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    live = tmp_path / f".synthetic-abc.tmp-{live_proc.pid}-89abcdef"
    young = tmp_path / f".cache-x.tmp-{_dead_pid()}-00000000"
    try:
        for folder in (dead, live, young):
            folder.mkdir()
            (folder / "img.png").write_bytes(b"x")
        for folder in (dead, live):
            os.utime(folder, (old, old))
        built = build_once(tmp_path / "synthetic-abc", lambda tmp: (tmp / "done").touch())
        assert (built / "done").is_file()
        assert not dead.exists()  # a killed process's folder: gone
        assert live.exists()  # a live builder's (another machine's lock may not hold)
        assert young.exists()  # younger than this process: not ours to judge
        assert remove_stale_tmp(tmp_path) == []
    finally:
        live_proc.kill()
        live_proc.wait()


# ---------------------------------------------------------------------- command line (1)
SECRET_ARGS = {
    "tracking.uri=http://user:S3cretPass@127.0.0.1:5999": "S3cretPass",
    "tracking.uri=https://ann:HttpsPw771@mlflow.example:443": "HttpsPw771",
    "tracking.uri=postgresql://pguser:PgPw8812@127.0.0.1:5432/mlflow": "PgPw8812",
    "tracking.uri=mysql+pymysql://my:MyPw4477@127.0.0.1/mlflow": "MyPw4477",
    "+tracking.api_key=ApiKey9931": "ApiKey9931",
    "+tracking.token=Tok3n8821": "Tok3n8821",
    "+tracking.db_password=DbPw6601": "DbPw6601",
    "+tracking.pin_token=20261204": "20261204",  # a number stays a number
}


@pytest.mark.parametrize("arg,secret", SECRET_ARGS.items())
def test_the_command_line_keeps_no_secret_and_the_config_resolves_the_same(arg, secret):
    environ: dict[str, str] = {}
    argv = hide_argv_secrets(["run.py", "-m", arg, "seed=0,1"], environ)
    assert secret not in " ".join(argv) and argv[1] == "-m" and argv[3] == "seed=0,1"
    assert secret in environ.values()
    key, _, value = arg.partition("=")
    old = {k: os.environ.get(k) for k in environ}
    os.environ.update(environ)
    try:
        cfg = compose_cfg(argv[2])
        got = str(cfg[key.lstrip("+").split(".")[0]][key.split(".", 1)[1]])
        if key.endswith("uri") and ("http" in value or "postgres" in value):
            # the client reads the credentials from the environment instead of the URI
            user, pw = value.split("://")[1].split("@")[0].split(":")
            assert secret not in got and f"{user}:" not in got
            assert pw in (environ.get("MLFLOW_TRACKING_PASSWORD"), environ.get("PGPASSWORD"))
        else:
            assert got == value
            assert cfg[key.lstrip("+").split(".")[0]][key.split(".", 1)[1]] == (
                int(value) if value.isdigit() else value
            )
        assert mask_text(f"error: {got} {value}").count(secret) == 0  # env secrets masked
    finally:
        for k, v in old.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)


def test_a_command_line_without_secrets_is_untouched_and_fingerprints_stay():
    argv = [
        "run.py",
        "-m",
        "fusion=original,learnable_gate",
        "tracking.uri=sqlite:///x.db",
        "seed=1",
    ]
    environ: dict[str, str] = {}
    assert hide_argv_secrets(list(argv), environ) == argv and environ == {}
    before = config_fingerprint(compose_cfg("seed=1"))
    assert config_fingerprint(compose_cfg(*hide_argv_secrets(["x", "seed=1"], {})[1:])) == before


# ------------------------------------------------------------------------- preflight (2)
def test_an_output_folder_that_cannot_be_created_is_one_line():
    for folder in ("/proc/glattn_out", "/sys/glattn_out"):
        message = preflight.output_dir_error(folder)
        assert message.startswith(f"paths.output_dir={folder!r}: cannot create or write")
        assert "\n" not in message
    cfg = compose_cfg("paths.output_dir=/proc/glattn_out")
    with pytest.raises(ConfigError, match="paths.output_dir='/proc/glattn_out'"):
        preflight.check_job(cfg)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_cuda_lists_the_devices_there_are():
    message = preflight.device_error("cuda")
    assert message.startswith("trainer.device='cuda':") and "available: cpu" in message
    assert preflight.device_error("cpu") is None and preflight.device_error("auto") is None
    assert "not a device" in preflight.device_error("gpu0")


@pytest.fixture
def silent_server():
    """A port that accepts connections (the kernel's backlog) and never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    yield sock.getsockname()[1]
    sock.close()


def test_a_tracking_server_that_does_not_answer_fails_once_within_the_timeout(silent_server):
    uri = f"http://bob:SilentPw42@127.0.0.1:{silent_server}"
    t0 = time.monotonic()
    message = preflight.tracking_error(uri, timeout_s=1.0)
    assert time.monotonic() - t0 < 5  # one try, no retry storm
    assert "does not answer within 1 s" in message and "SilentPw42" not in message
    assert f"http://bob:{MASK}@127.0.0.1:{silent_server}" in message
    assert "mlflow" in message and "\n" not in message


def test_a_tracking_server_that_refuses_is_one_line():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    message = preflight.tracking_error(f"http://127.0.0.1:{port}")
    assert "refuses the connection" in message


def test_a_tracking_server_that_answers_passes():
    from http.server import BaseHTTPRequestHandler, HTTPServer

    class Health(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            self.send_response(200 if self.path == "/health" else 404)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        assert preflight.tracking_error(f"http://127.0.0.1:{server.server_port}") is None
    finally:
        server.shutdown()


def test_a_database_url_without_its_driver_names_the_package():
    pytest.importorskip("sqlalchemy")
    import importlib.util

    if importlib.util.find_spec("psycopg") is not None:
        pytest.skip("psycopg is installed here")
    message = preflight.tracking_error("postgresql://pguser:PgPw8812@127.0.0.1:1/mlflow")
    assert "driver 'psycopg' is not installed; pip install 'psycopg[binary]'" in message
    assert "PgPw8812" not in message and "\n" not in message


def test_sqlite_stores_pass_and_an_unwritable_one_is_named(tmp_path):
    assert preflight.tracking_error(f"sqlite:///{tmp_path}/mlflow.db") is None
    message = preflight.tracking_error("sqlite:////proc/glattn/mlflow.db")
    assert message.startswith("tracking.uri=sqlite:////proc/glattn/mlflow.db: cannot create")


def _fake_bin(folder: Path, name: str, body: str) -> None:
    folder.mkdir(exist_ok=True)
    path = folder / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)


def test_slurm_without_sbatch_or_without_a_cluster_points_to_local_gpus(tmp_path, monkeypatch):
    """No sbatch, an sbatch without a cluster, a sinfo that hangs: one line each."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", str(bin_dir))
    message = preflight.slurm_error()
    assert "sbatch is not on PATH" in message
    assert "hydra/launcher=local_gpus" in message and "scripts/slurm_cluster.py" in message
    _fake_bin(bin_dir, "sbatch", "exit 1")
    _fake_bin(
        bin_dir, "sinfo", "echo 'sinfo: error: Could not establish a configuration' >&2; exit 1"
    )
    message = preflight.slurm_error()
    assert "no SLURM cluster answers (sinfo: sinfo: error: Could not establish" in message
    assert "hydra/launcher=local_gpus" in message
    _fake_bin(bin_dir, "sinfo", f"exec {shutil.which('sleep', path=os.defpath)} 5")
    assert "does not answer within 0.5 s" in preflight.slurm_error(timeout_s=0.5)
    _fake_bin(bin_dir, "sinfo", "echo 'debug* up'")
    assert preflight.slurm_error() is None


def test_a_run_folder_hydra_cannot_create_is_one_line_without_traceback(tmp_path):
    """Hydra makes hydra.run.dir before the task: the preflight callback speaks first."""
    root = Path(__file__).resolve().parents[1]
    res = subprocess.run(
        [sys.executable, str(root / "run.py"), "debug=smoke", "paths.output_dir=/proc/glattn_x"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1"},
    )
    assert res.returncode == 1
    assert res.stderr.strip().splitlines() == [
        "Error: paths.output_dir='/proc/glattn_x': cannot create or write /proc/glattn_x "
        "(No such file or directory): not a writable folder; give paths.output_dir=<a folder "
        "you can write>"
    ], res.stderr[-3000:]


def test_a_scheduler_gets_only_contiguous_runs_of_unfinished_jobs(monkeypatch):
    from hydra_plugins.glattn_sweeper import guard

    class Launcher:
        def __init__(self):
            self.calls = []

        def launch(self, jobs, initial_job_idx):
            self.calls.append(([j[0] for j in jobs], initial_job_idx))
            return [f"ran {j[0]}" for j in jobs]

    slurm = {"submitit_folder": "x/%j", "partition": None, "timeout_min": 60}
    local = {"submitit_folder": "x/%j", "timeout_min": 60}  # submitit_local: no partition
    monkeypatch.setattr(guard, "_skipped", lambda s, o, num, run: f"skipped {o[0]}")
    batch = [[f"seed={i}"] for i in range(5)]
    done = {10, 13}  # FINISHED already (job numbers start at 10)
    monkeypatch.setattr(guard, "finished_run", lambda s, o, num: "run" if num in done else None)
    sweeper = SimpleNamespace(launcher=Launcher(), config=OmegaConf.create({"hydra": {}}))
    sweeper.config.hydra.launcher = slurm  # recognised by its config, whatever its class
    results = guard.launch_unfinished(sweeper, batch, 10)
    assert sweeper.launcher.calls == [(["seed=1", "seed=2"], 11), (["seed=4"], 14)]
    assert results[0] == "skipped seed=0" and results[3] == "skipped seed=3"
    assert results[1:3] == ["ran seed=1", "ran seed=2"] and results[4] == "ran seed=4"
    sweeper.launcher, sweeper.config.hydra.launcher = Launcher(), local
    assert guard.launch_unfinished(sweeper, batch, 10) == [f"ran seed={i}" for i in range(5)]
    assert sweeper.launcher.calls == [([f"seed={i}" for i in range(5)], 10)]


# ---------------------------------------------------------------- the job's lifecycle (2)
FAST = ["trainer.gradcam_per_class=0", "tracking.log_checkpoint=false"]


def _runs(out: Path) -> list:
    from mlflow.tracking import MlflowClient

    if not (out / "mlflow.db").exists():
        return []
    client = MlflowClient(f"sqlite:///{out / 'mlflow.db'}")
    return [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])]


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_cuda_creates_no_run_then_a_finished_cpu_run_is_named(tmp_path, caplog):
    from conftest import smoke_cfg

    from glattn.job import main

    with pytest.raises(ConfigError, match=r"trainer.device='cuda': .*available: cpu"):
        main(smoke_cfg(tmp_path, *FAST, "trainer.device=cuda", hydra=True))
    assert _runs(tmp_path) == []  # refused before any MLflow run
    main(smoke_cfg(tmp_path, *FAST, "trainer.device=cpu", hydra=True))
    (run,) = _runs(tmp_path)
    assert run.info.status == "FINISHED" and run.data.tags["glattn.device"] == "cpu"
    caplog.clear()
    with caplog.at_level("INFO", logger="glattn"):
        main(smoke_cfg(tmp_path, *FAST, "trainer.device=cuda", hydra=True))  # nothing to do
    said = [r.getMessage() for r in caplog.records if "already FINISHED on cpu" in r.getMessage()]
    assert len(said) == 1 and f"({run.info.run_name}, MLflow run" in said[0]
    assert "trainer.device=cuda does not change the result" in said[0]
    assert said[0].endswith("sweep.rerun=true trains again")
    assert len(_runs(tmp_path)) == 1  # no run added


def test_a_refused_job_writes_a_masked_status_and_no_run(tmp_path, monkeypatch):
    """status.json of a job refused before its run (a sweep's): the URI's password masked."""
    from conftest import smoke_cfg
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode
    from omegaconf import open_dict

    from glattn.job import main

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    uri = f"tracking.uri=http://bob:JobUrlPw77@127.0.0.1:{port}"
    cfg = smoke_cfg(tmp_path, *FAST, uri, hydra=True)
    with open_dict(cfg):
        cfg.hydra.mode = RunMode.MULTIRUN
        cfg.hydra.runtime.output_dir = str(tmp_path / "job0")
    HydraConfig.instance().set_config(cfg)
    with pytest.raises(ConfigError, match="refuses the connection"):
        main(cfg)
    status = (tmp_path / "job0" / "status.json").read_text()
    assert '"failed"' in status and "refuses the connection" in status
    assert "JobUrlPw77" not in status and f"bob:{MASK}@" in status


@pytest.mark.parametrize("signame,status", [("SIGTERM", 143), ("SIGHUP", 129)])
def test_a_stop_signal_interrupts_the_job_and_gives_the_shells_exit_status(signame, status):
    """SIGHUP (the closed ssh terminal of a weekend sweep) stops a job as SIGTERM does: its
    run ends KILLED and the command exits 128 + the signal, not by the default action
    (which leaves the run RUNNING and writes no status.json); the handlers are restored."""
    import signal

    from glattn.job.lifecycle import JobInterrupted, cli_exit, interrupt_on_signals

    signum = getattr(signal, signame)
    calls = []

    def mine(*args):
        calls.append(args)

    original = signal.signal(signum, mine)  # whatever happens, never pytest's death
    try:
        with pytest.raises(JobInterrupted) as caught, interrupt_on_signals():
            os.kill(os.getpid(), signum)
            time.sleep(5)  # the handler raises here, at once
        assert len(calls) == 1 and signal.getsignal(signum) is mine  # chained, put back
    finally:
        signal.signal(signum, original)
    assert caught.value.signal_name == signame and str(caught.value) == f"interrupted by {signame}"
    with pytest.raises(SystemExit) as ended:
        cli_exit(caught.value)
    assert ended.value.code == status
    with pytest.raises(SystemExit) as ctrl_c:
        cli_exit(KeyboardInterrupt())
    assert ctrl_c.value.code == 130
