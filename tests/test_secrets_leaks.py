"""Leak nothing, hang never (fast tier): secret-like keys, sweeps over secrets, URI
credentials that no library receives, the masked console, network timeouts and the
preflight's real handshake, and the URI forms refused with what to use instead.

The end-to-end runs (run.py and the local_gpus launcher in subprocesses, a real MLflow
server, a listener that never answers) are in tests/test_secrets_leaks_slow.py.
"""

import base64
import io
import json
import os
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from urllib.parse import quote

import pytest
import yaml
from conftest import ROOT, compose_cfg
from omegaconf import OmegaConf

from glattn import preflight
from glattn.secrets import MASK, hide_argv_secrets, install_log_filter, is_secret_key
from glattn.tracking import uris

NEW_WORDS = ["db_pass", "pwd", "auth", "passphrase", "credential", "private_key", "cookie"]
NEW_WORDS += ["session", "dbPass", "DB_PASSPHRASE", "basic_auth", "session_id", "user_pwd"]


@pytest.fixture
def clean_env(monkeypatch):
    """The credential and timeout variables this module's functions set, restored after."""
    names = ["MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN"]
    names += ["PGPASSWORD", "PGCONNECT_TIMEOUT", "PGOPTIONS"]
    names += ["MLFLOW_HTTP_REQUEST_TIMEOUT", "MLFLOW_HTTP_REQUEST_MAX_RETRIES"]
    for name in names:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def _bytes_forms(secret: str) -> list[bytes]:
    """A secret as a grep of the disk or a stream looks for it: raw, URL-encoded, base64."""
    return [secret.encode(), quote(secret, safe="").encode(), base64.b64encode(secret.encode())]


# ------------------------------------------------------------------ secret-like keys
@pytest.mark.parametrize("key", NEW_WORDS)
def test_secret_like_key_words_are_secret(key):
    assert is_secret_key(f"trainer.{key}")


def _keys(node, prefix=""):
    if isinstance(node, dict):
        for k, v in node.items():
            yield f"{prefix}{k}"
            yield from _keys(v, f"{prefix}{k}.")
    elif isinstance(node, list):
        for v in node:
            yield from _keys(v, prefix)


def test_no_key_glattn_or_hydra_declares_looks_like_a_secret():
    """The wider patterns must not swallow a real setting (it would be masked everywhere):
    every key of the composed config with Hydra's, and of every YAML in conf/ and
    experiments/, is checked."""
    cfg = compose_cfg(return_hydra_config=True)
    keys = set(_keys(OmegaConf.to_container(cfg, resolve=False)))
    for path in [*(ROOT / "conf").rglob("*.yaml"), *(ROOT / "experiments").rglob("*.yaml")]:
        keys |= set(_keys(yaml.safe_load(path.read_text()) or {}))
    assert len(keys) > 300  # the walk saw the whole config
    assert [k for k in keys if is_secret_key(k)] == []
    for word in ("bypass", "author", "num_passes", "compass", "authority"):
        assert not is_secret_key(word)


def test_a_secret_like_key_leaves_the_command_line_for_the_environment():
    environ: dict[str, str] = {}
    argv = hide_argv_secrets(["run.py", "+trainer.db_pass=DbPassV4lue", "seed=1"], environ)
    assert "DbPassV4lue" not in " ".join(argv) and environ == {
        "GLATTN_SECRET_TRAINER_DB_PASS": "DbPassV4lue"
    }


# ------------------------------------------------------------------ sweeps over secrets
def test_a_sweep_over_secret_values_keeps_none_in_the_overrides(monkeypatch):
    from hydra.core.override_parser.overrides_parser import OverridesParser

    secrets = ["HfTokA1111", "HfTokB2222", "HfTokC3333"]
    uri_pws = ["UriPwA5555", "UriPwB6666"]
    environ: dict[str, str] = {}
    argv = [
        "run.py",
        "-m",
        f"+trainer.hf_token={','.join(secrets)}",
        "tracking.uri=" + ",".join(f"http://u:{pw}@127.0.0.1:5999" for pw in uri_pws),
        "seed=0,1",
    ]
    argv = hide_argv_secrets(argv, environ)
    for secret in secrets + uri_pws:
        assert secret not in " ".join(argv)
    assert argv[4] == "seed=0,1"
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    # each job's override, as a sweeper gives it, composes to that job's own value
    parser = OverridesParser.create()
    token = parser.parse_override(argv[2])
    uri = parser.parse_override(argv[3])
    key = token.get_key_element()
    got = []
    for text in token.sweep_string_iterator():
        cfg = compose_cfg(f"{key}={text}")
        got.append(cfg.trainer.hf_token)
    assert got == secrets
    for pw, text in zip(uri_pws, uri.sweep_string_iterator()):
        assert compose_cfg(f"tracking.uri={text}").tracking.uri == f"http://u:{pw}@127.0.0.1:5999"


# ------------------------------------------------------------------ URI credentials
def test_a_uri_password_stays_in_no_uri_a_library_receives(clean_env):
    clean_env.setenv("MLFLOW_TRACKING_PASSWORD", "OtherEnvPw99")  # the URI's value wins
    got = uris.resolve_uri("http://ann:UriPw7788@127.0.0.1:5999/prefix")
    assert got == "http://127.0.0.1:5999/prefix"
    assert os.environ["MLFLOW_TRACKING_USERNAME"] == "ann"
    assert os.environ["MLFLOW_TRACKING_PASSWORD"] == "UriPw7788"
    got = uris.resolve_uri("postgresql+psycopg2://pg:PgUriPw55@127.0.0.1:5432/mlflow")
    assert got == "postgresql+psycopg2://pg@127.0.0.1:5432/mlflow"
    assert os.environ["PGPASSWORD"] == "PgUriPw55"
    # a URI only shown is left alone (and changes nothing in the environment)
    assert "UriPw1" not in uris.ui_command("http://ann:UriPw1@h:1")
    assert os.environ["MLFLOW_TRACKING_PASSWORD"] == "UriPw7788"


def test_network_stores_get_connect_and_answer_timeouts(clean_env):
    clean_env.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "9")  # a user's own value stays
    uris.resolve_uri("http://127.0.0.1:5999")
    assert int(os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"]) <= 60
    assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "9"
    uris.resolve_uri("postgresql://pg@127.0.0.1/mlflow")
    assert int(os.environ["PGCONNECT_TIMEOUT"]) <= 10
    assert "statement_timeout" in os.environ["PGOPTIONS"]
    got = uris.resolve_uri("mysql+pymysql://my@127.0.0.1/mlflow?charset=utf8mb4")
    assert "charset=utf8mb4" in got and "connect_timeout=10" in got


class RunApi(BaseHTTPRequestHandler):
    """Enough of MLflow's REST API for ``set_terminated`` (update the run, read it back)."""

    seen: list[str] = []

    def _answer(self):
        RunApi.seen.append(self.path + " " + str(self.headers.get("Authorization")))
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        info = {"run_id": "r1", "run_uuid": "r1", "experiment_id": "3", "run_name": "job"}
        info.update(status="FINISHED", lifecycle_stage="active")
        body = json.dumps({"run": {"info": info, "data": {}}, "run_info": info}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PATCH = _answer  # noqa: N815 - http.server's names

    def log_message(self, *args):
        pass


@pytest.fixture
def rest_server():
    server = HTTPServer(("127.0.0.1", 0), RunApi)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    RunApi.seen = []
    yield server.server_port
    server.shutdown()


def test_mlflows_view_run_lines_carry_no_password(rest_server, clean_env, capfd):
    from glattn.tracking import make_client

    clean_env.setenv("MLFLOW_TRACKING_PASSWORD", "OtherEnvPw99")
    client = make_client(f"http://ann:ViewRunPw42@127.0.0.1:{rest_server}")
    client.set_terminated("r1", "FINISHED")  # MLflow writes "View run ... at: <uri>"
    out, err = capfd.readouterr()
    assert "View run job at: http://127.0.0.1" in out
    for form in _bytes_forms("ViewRunPw42"):
        assert form not in (out + err).encode()
    assert client.tracking_uri == f"http://127.0.0.1:{rest_server}"
    basic = base64.b64encode(b"ann:ViewRunPw42").decode()
    assert all(line.endswith(f"Basic {basic}") for line in RunApi.seen)  # sent as a header


def test_every_console_write_passes_the_masker(clean_env):
    from glattn.secrets import MaskedStream

    clean_env.setenv("GLATTN_SECRET_X_TOKEN", "EnvSecretTok55")
    install_log_filter({"KnownSecret77"})
    sink = io.StringIO()
    stream = MaskedStream(sink)
    stream.write("a http://u:UriPw3344@h/x EnvSecretTok55 KnownSecret77 ok\n")
    assert sink.getvalue() == f"a http://u:{MASK}@h/x {MASK} {MASK} ok\n"
    import sys

    assert getattr(sys.stdout, "_glattn_masking", False)  # installed with the log filter


# ------------------------------------------------------------------ the preflight
@pytest.fixture
def silent_listener():
    """A port that accepts connections (the kernel's backlog) and never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    yield sock.getsockname()[1]
    sock.close()


def test_the_preflight_default_is_ten_seconds():
    assert preflight.TIMEOUT_S <= 10


def test_a_database_that_accepts_and_never_answers_is_refused_in_time(silent_listener, clean_env):
    pytest.importorskip("psycopg2")
    uri = f"postgresql+psycopg2://u:SilentDbPw31@127.0.0.1:{silent_listener}/mlflow"
    t0 = time.monotonic()
    message = preflight.tracking_error(uri, timeout_s=2.0)
    assert time.monotonic() - t0 < 6
    assert f"127.0.0.1:{silent_listener} accepts the connection but does not answer" in message
    assert "SilentDbPw31" not in message and "\n" not in message


def test_a_database_that_refuses_the_login_is_named(clean_env):
    pytest.importorskip("psycopg2")

    def refuse(conn):
        """PostgreSQL's protocol: "no SSL/GSS" to those requests, an auth error to the
        login (the preflight's first connection is a bare TCP probe: nothing to read)."""
        msg = b'SFATAL\x00C28P01\x00Mpassword authentication failed for user "u"\x00\x00'
        with conn:
            while True:
                packet = conn.recv(1024)
                if not packet:
                    return
                if len(packet) == 8 and packet[4:] in (
                    (80877103).to_bytes(4, "big"),
                    (80877104).to_bytes(4, "big"),
                ):
                    conn.sendall(b"N")
                    continue
                conn.sendall(b"E" + (len(msg) + 4).to_bytes(4, "big") + msg)
                return

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(4)
    port = sock.getsockname()[1]

    def serve():
        for _ in range(4):
            try:
                conn, _ = sock.accept()
                refuse(conn)
            except OSError:
                return

    threading.Thread(target=serve, daemon=True).start()
    try:
        message = preflight.tracking_error(
            f"postgresql+psycopg2://u:BadLoginPw7@127.0.0.1:{port}/mlflow", timeout_s=3.0
        )
    finally:
        sock.close()
    assert "refused the login" in message and "password authentication failed" in message
    assert "BadLoginPw7" not in message


def test_a_tracking_server_that_refuses_the_login_is_named(clean_env):
    class Locked(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            self.send_response(401)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Locked)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        message = preflight.tracking_error(f"http://ann:WrongPw61@127.0.0.1:{server.server_port}")
    finally:
        server.shutdown()
    assert "refused the login (HTTP 401)" in message and "WrongPw61" not in message


@pytest.mark.parametrize(
    "uri,expected",
    [
        ("file:///tmp/glattn-mlruns", "tracking.uri=sqlite:////tmp/glattn-mlruns/mlflow.db"),
        ("/tmp/glattn-mlruns", "tracking.uri=sqlite:////tmp/glattn-mlruns/mlflow.db"),
        ("sqlite://user:SqlitePw12@/tmp/x.db", "tracking.uri=sqlite:///<path>"),
        ("sqlite://", "tracking.uri=sqlite:///<path>"),
    ],
)
def test_uri_forms_mlflow_refuses_later_say_what_to_use(uri, expected, clean_env):
    clean_env.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    message = preflight.tracking_error(uri)
    assert expected in message and "\n" not in message and "SqlitePw12" not in message


def test_a_sqlite_store_in_a_writable_folder_passes(tmp_path):
    assert preflight.tracking_error(f"sqlite:///{tmp_path}/mlflow.db") is None
    assert not Path(tmp_path, "mlflow.db").exists()  # checked, not created
