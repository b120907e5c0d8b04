"""Leak nothing, hang never (slow tier): the real command line in subprocesses.

- a local_gpus sweep over a secret: nothing secret in its job files (none on disk), its
  files owner-only, and its workers gone within seconds of a SIGKILL of the launcher;
- secret-like keys of a refused run: not in Hydra's ``.hydra/`` files;
- a sweep over two tracking-server URIs (and another MLFLOW_TRACKING_PASSWORD in the
  environment) against a real ``mlflow server``: no password on either console stream
  (MLflow's ``View run ... at:`` lines included), in any file, or in any process's argv;
- a database that accepts the connection and never answers, ``file:`` and credentialed
  ``sqlite:`` URIs: one message, no traceback, within ~10 s of the check.

Every grep looks for the raw, URL-encoded and base64 forms of each secret.
"""

import base64
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import pytest
from test_sweep_helpers import (
    FAKE_DEFAULTS,
    PY,
    ROOT,
    SWEEP_HOOKS,
    env,
    explain,
    processes_with,
    write_fake_app,
)

pytestmark = pytest.mark.slow


def forms(secret: str) -> list[bytes]:
    return [secret.encode(), quote(secret, safe="").encode(), base64.b64encode(secret.encode())]


def leaks(secrets, folder: Path | None = None, *texts: str) -> list[str]:
    """Where any form of any secret is: files under ``folder``, then the given texts."""
    hits = []
    files = [p for p in folder.rglob("*") if p.is_file()] if folder and folder.exists() else []
    for path in files:
        blob = path.read_bytes()
        hits += [f"{path}: {s}" for s in secrets for f in forms(s) if f in blob]
    for i, text in enumerate(texts):
        hits += [f"text {i}: {s}" for s in secrets for f in forms(s) if f in text.encode()]
    return hits


def test_local_gpus_keeps_no_secret_on_disk_and_its_workers_die_with_it(tmp_path):
    secrets = ["SweptTokA81", "SweptTokB82"]
    out = tmp_path / "out"
    cmd = [
        PY,
        str(write_fake_app(tmp_path)),
        "-m",
        *SWEEP_HOOKS,
        *FAKE_DEFAULTS,
        "fake.sleep=900",  # killed long before
        f"paths.output_dir={out}",
        "hydra/launcher=local_gpus",
        "hydra.launcher.gpus=[]",
        "hydra.launcher.n_jobs=2",
        f"+fake.hf_token={','.join(secrets)}",
    ]
    proc = subprocess.Popen(
        cmd, cwd=tmp_path, env=env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 600
        while len(list(out.glob("sweeps/glattn/*/[01]/.hydra"))) < 2:
            assert time.monotonic() < deadline and proc.poll() is None, proc.stdout.read()
            time.sleep(0.2)  # both jobs run
        (work,) = out.glob("sweeps/glattn/*/.local_gpus")
        assert processes_with(str(work))  # the workers, found by their folder
        assert leaks(secrets, work) == []
        assert not list(work.rglob("*.pkl"))  # job and result go through pipes
        assert work.stat().st_mode & 0o777 == 0o700
        for path in work.rglob("*"):
            assert path.stat().st_mode & 0o077 == 0, path  # the owner's only
        for pid in processes_with(str(work)):
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
            assert leaks(secrets, None, cmdline) == []
        proc.send_signal(signal.SIGKILL)  # no handler runs: the kernel tells the workers
        proc.wait(timeout=30)
        deadline = time.monotonic() + 10
        while processes_with(str(work)) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert processes_with(str(work)) == []  # no orphan keeps its job's lock
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def run_py(*args: str, timeout: int = 300, **extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [PY, str(ROOT / "run.py"), *args],
        cwd=ROOT,
        env=env(**extra),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_secret_like_keys_of_a_refused_run_are_not_in_hydras_files(tmp_path):
    values = {"db_pass": "DbPass9931x", "pwd": "PwdVal7712x", "auth": "AuthVal5523x"}
    values |= {"passphrase": "Phrase4411x", "session": "Sess2255x", "cookie": "Cook1e3366x"}
    out = tmp_path / "out"
    res = run_py(
        "debug=smoke",
        f"paths.output_dir={out}",
        *(f"+trainer.{k}={v}" for k, v in values.items()),
        "trainer.amp=fp17",  # refused after Hydra wrote .hydra/
    )
    assert res.returncode == 1, explain(res, out)
    assert "trainer.amp='fp17'" in res.stdout + res.stderr
    assert list(out.rglob(".hydra/overrides.yaml"))  # Hydra did write its files
    assert leaks(values.values(), out, res.stdout, res.stderr) == []


@pytest.fixture
def mlflow_server(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    store = tmp_path / "server"
    store.mkdir()
    cmd = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--backend-store-uri", f"sqlite:///{store}/mlflow.db", "--workers", "1"]
    cmd += ["--artifacts-destination", str(store / "artifacts")]
    log = (store / "server.log").open("wb")
    server = subprocess.Popen(cmd, cwd=store, stdout=log, stderr=subprocess.STDOUT, env=env())
    deadline = time.monotonic() + 300  # a cold start on a loaded machine
    import urllib.request

    try:
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2).close()
                break
            except OSError:
                alive = time.monotonic() < deadline and server.poll() is None
                assert alive, (store / "server.log").read_text(errors="replace")[-3000:]
                time.sleep(0.5)
        yield port, store
    finally:  # also when it never answered: no server left behind
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


def test_a_sweep_over_two_tracking_server_uris_prints_no_password(tmp_path, mlflow_server):
    port, store = mlflow_server
    pws = ["UriPwA7001x", "UriPwB7002x"]
    other = "EnvOtherPw7003x"  # MLFLOW_TRACKING_PASSWORD already set to another value
    out = tmp_path / "out"
    uris = ",".join(f"http://u:{pw}@127.0.0.1:{port}" for pw in pws)
    res = run_py(
        "-m",
        "debug=smoke",
        f"paths.output_dir={out}",
        "seed=7",
        f"tracking.uri={uris}",
        timeout=900,
        MLFLOW_TRACKING_USERNAME="u",
        MLFLOW_TRACKING_PASSWORD=other,
    )
    assert res.returncode == 0, explain(res, out)
    # MLflow's own lines (the two jobs have one fingerprint: the second may find the first)
    assert "View run" in res.stdout, explain(res, out)
    assert leaks(pws, out, res.stdout, res.stderr) == [], explain(res, out)
    assert leaks(pws, store) == []  # the server's store and log


def test_a_database_that_never_answers_is_one_message_within_the_timeout(tmp_path):
    pytest.importorskip("psycopg2")
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)  # accepts (the kernel's backlog), never answers
    port = sock.getsockname()[1]
    out = tmp_path / "out"
    try:
        t0 = time.monotonic()
        res = run_py(
            "debug=smoke",
            f"paths.output_dir={out}",
            f"tracking.uri=postgresql+psycopg2://u:NeverPw6161x@127.0.0.1:{port}/mlflow",
            timeout=240,
        )
        took = time.monotonic() - t0
    finally:
        sock.close()
    text = res.stdout + res.stderr
    assert res.returncode == 1, explain(res, out)
    assert "accepts the connection but does not answer the login within 10 s" in text
    assert "Traceback" not in text and leaks(["NeverPw6161x"], out, text) == []
    assert took < 200  # start-up under load included; the check itself waits 10 s


@pytest.mark.parametrize(
    "uri,expected",
    [
        ("file:///tmp/glattn-file-store", "tracking.uri=sqlite:////tmp/glattn-file-store/"),
        ("sqlite://user:SqlPw5151x@/tmp/glattn-x.db", "tracking.uri=sqlite:///<path>"),
    ],
)
def test_uri_forms_mlflow_refuses_are_one_message(tmp_path, uri, expected):
    out = tmp_path / "out"
    res = run_py("debug=smoke", f"paths.output_dir={out}", f"tracking.uri={uri}")
    text = res.stdout + res.stderr
    assert res.returncode == 1, explain(res, out)
    assert expected in text and "Traceback" not in text, explain(res, out)
    assert leaks(["SqlPw5151x"], out, text) == []
