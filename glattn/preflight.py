"""What a job (or a sweep) needs from the machine, checked before any MLflow run or parent
exists, in seconds: the output folder can be created and written, the device exists, the
tracking store answers (an http server answers a REST call and accepts the login within
``TIMEOUT_S``; a database's driver is installed and it answers a login within ``TIMEOUT_S``;
no form MLflow refuses later, such as its file store), and SLURM is usable for
``hydra/launcher=slurm``.

Each check returns one line that says what is wrong and what to do (the ``*_error``
functions), or None; ``check_*`` raise it as a ConfigError (one message, no traceback).
A URI is always shown masked (glattn.secrets). Nothing here retries: an unreachable server
fails once, in ``TIMEOUT_S`` at most, instead of MLflow's minutes of retries.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from glattn.config import ConfigError
from glattn.secrets import mask_text, mask_uri

#: seconds a tracking server, a database port or ``sinfo`` gets to answer
TIMEOUT_S = 10.0
#: the pip package that provides a DB-API module SQLAlchemy imports for a dialect
DRIVER_PACKAGES = {
    "psycopg": "psycopg[binary]",
    "psycopg2": "psycopg2-binary",
    "MySQLdb": "mysqlclient",
    "pymysql": "PyMySQL",
    "pyodbc": "pyodbc",
    "oracledb": "oracledb",
}
DEFAULT_PORTS = {"postgresql": 5432, "mysql": 3306, "mariadb": 3306, "mssql": 1433}
SLURM_HINT = (
    "run on this machine with hydra/launcher=local_gpus, or start a single-node cluster "
    "with python scripts/slurm_cluster.py start DIR (then export the SLURM_CONF it prints)"
)


def output_dir_error(folder: str | Path) -> str | None:
    """``paths.output_dir`` cannot be created or written (``/proc/...``, ``/sys/...``, a
    read-only mount): the folder is created and a probe file written and removed."""
    path = Path(str(folder)).expanduser().absolute()
    probe = path / f".glattn-probe-{os.getpid()}"
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        return (
            f"paths.output_dir={str(folder)!r}: cannot create or write {path} ({reason}): "
            "not a writable folder; give paths.output_dir=<a folder you can write>"
        )
    return None


def available_devices() -> list[str]:
    """The devices this process can train on: cpu, each cuda:N, mps."""
    import torch

    found = ["cpu"]
    if torch.cuda.is_available():
        found += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        found.append("mps")
    return found


def device_error(name: str) -> str | None:
    """``trainer.device`` names a device this machine does not have."""
    import torch

    name = str(name)
    if name in ("auto", "cpu"):
        return None
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        return f"trainer.device={name!r}: not a device; expected auto, cpu, cuda or cuda:N"
    found = available_devices()
    ok = device.type == "cpu" or (device.type == "cuda" and f"cuda:{device.index or 0}" in found)
    ok = ok or (device.type == "mps" and "mps" in found)
    if ok:
        return None
    cuda = "no CUDA device is visible" if not torch.cuda.is_available() else "no such GPU"
    if device.type == "cuda" and torch.version.cuda is None:
        cuda = "this torch is a CPU build"
    return (
        f"trainer.device={name!r}: {cuda} on this machine; available: {', '.join(found)}. "
        "Give trainer.device=auto (or one of those)"
    )


def _http_error(uri: str, timeout_s: float) -> str | None:
    """One REST call (search one experiment) with the run's credentials: no answer within
    ``timeout_s``, no connection, or a refused login is the error; any other answer is for
    MLflow to judge."""
    from glattn.tracking.uris import resolve_uri

    shown = mask_uri(uri)
    url = resolve_uri(uri)  # credentials moved into MLflow's environment variables
    api = url.rstrip("/") + "/api/2.0/mlflow/experiments/search?max_results=1"
    request = urllib.request.Request(api, headers=_auth_headers())
    try:
        urllib.request.urlopen(request, timeout=timeout_s).close()
        return None
    except urllib.error.HTTPError as exc:  # it answered
        if exc.code in (401, 403):
            return (
                f"tracking.uri={shown}: the MLflow tracking server refused the login (HTTP "
                f"{exc.code}); give the right user and password in MLFLOW_TRACKING_USERNAME / "
                "MLFLOW_TRACKING_PASSWORD (or MLFLOW_TRACKING_TOKEN)"
            )
        return None  # 404 (an older server, a proxy's path), 5xx: MLflow takes it from here
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        if "ssl" in type(reason).__module__.lower():  # TLS trouble is for MLflow to report
            return None
        if isinstance(reason, (TimeoutError, socket.timeout)):
            what = f"does not answer within {timeout_s:g} s"
        elif isinstance(reason, ConnectionRefusedError):
            what = "refuses the connection (nothing listens on that port)"
        else:
            what = f"cannot be reached ({mask_text(str(reason))})"
    return (
        f"tracking.uri={shown}: the MLflow tracking server {what}. Check that `mlflow "
        "server` runs there and the host and port are right, or use tracking.uri=sqlite:///"
        "<file> (a local store) or tracking=none"
    )


def _auth_headers() -> dict[str, str]:
    """The Authorization header MLflow's REST client sends for this environment (a user
    and password first, else a token, as mlflow.utils.rest_utils does)."""
    import base64

    user = os.environ.get("MLFLOW_TRACKING_USERNAME")
    password = os.environ.get("MLFLOW_TRACKING_PASSWORD")
    if user and password:
        basic = base64.standard_b64encode(f"{user}:{password}".encode()).decode()
        return {"Authorization": f"Basic {basic}"}
    token = os.environ.get("MLFLOW_TRACKING_TOKEN")
    return {"Authorization": f"Bearer {token}"} if token else {}


def _connect_args(backend: str, timeout_s: float) -> dict:
    """The driver's own connect (and first-answer) timeout for a login attempt."""
    seconds = max(1, int(timeout_s))
    if backend == "postgresql":
        return {"connect_timeout": seconds}
    if backend in ("mysql", "mariadb"):
        return {"connect_timeout": seconds, "read_timeout": seconds}
    return {}


def _login(url, timeout_s: float) -> BaseException | None:
    """Log in to the database once (in a thread, so that a driver without a timeout cannot
    hold the preflight): None when it worked, the driver's error, or TimeoutError."""
    import threading

    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    outcome: list[BaseException | None] = []

    def attempt() -> None:
        try:
            engine = create_engine(
                url,
                connect_args=_connect_args(url.get_backend_name(), timeout_s),
                poolclass=NullPool,
            )
            try:
                engine.connect().close()
            finally:
                engine.dispose()
            outcome.append(None)
        except Exception as exc:  # noqa: BLE001 - reported as one line by the caller
            outcome.append(exc)

    thread = threading.Thread(target=attempt, name="glattn-preflight-login", daemon=True)
    thread.start()
    thread.join(timeout_s + 1.0)
    return outcome[0] if outcome else TimeoutError()


def _database_error(uri: str, timeout_s: float) -> str | None:
    from sqlalchemy.engine.url import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    from glattn.tracking.uris import resolve_uri

    shown = mask_uri(uri)
    try:
        url = make_url(resolve_uri(uri))  # a PostgreSQL password moved to PGPASSWORD
        dialect = url.get_dialect()
    except (ArgumentError, NoSuchModuleError, ValueError) as exc:
        return f"tracking.uri={shown}: not a database URL SQLAlchemy knows ({mask_text(str(exc))})"
    try:
        dialect.import_dbapi()
    except ImportError as exc:
        module = (exc.name or "").split(".")[0]
        package = DRIVER_PACKAGES.get(module, module or "the database driver")
        return (
            f"tracking.uri={shown}: the {url.get_backend_name()} driver {module!r} is not "
            f"installed; pip install '{package}' (or give the driver in the URI, e.g. "
            f"{url.get_backend_name()}+<driver>://)"
        )
    port = url.port or DEFAULT_PORTS.get(url.get_backend_name())
    if not (url.host and port):
        return None
    where = f"the database at {url.host}:{port}"
    try:
        socket.create_connection((url.host, port), timeout=timeout_s).close()
    except OSError as exc:
        return (
            f"tracking.uri={shown}: {where} does not answer "
            f"({exc.strerror or type(exc).__name__}); check that it runs and the host and "
            "port are right"
        )
    error = _login(url, timeout_s)
    if error is None:
        return None
    if isinstance(error, TimeoutError) or "timeout" in str(error).lower():
        return (
            f"tracking.uri={shown}: {where} accepts the connection but does not answer the "
            f"login within {timeout_s:g} s; check that a {url.get_backend_name()} server (not "
            "another program) listens there"
        )
    said = mask_text(str(getattr(error, "orig", None) or error)).strip().splitlines()
    return (
        f"tracking.uri={shown}: {where} refused the login "
        f"({said[0] if said else type(error).__name__}); check the user, the password "
        "(PGPASSWORD, or the URI) and the database name"
    )


def _store_form_error(uri: str, scheme: str) -> str | None:
    """URI forms MLflow refuses only later, with a traceback: its file store (``file:`` or a
    bare path) and a ``sqlite:`` URI that is not ``sqlite:///`` + a path (a user, a
    password or a host, or an in-memory store)."""
    if scheme in ("", "file") and os.environ.get("MLFLOW_ALLOW_FILE_STORE", "").lower() not in (
        "true",
        "1",
    ):
        folder = urlsplit(uri).path if scheme == "file" else uri
        folder = str(Path(folder or ".").expanduser().absolute())
        return (
            f"tracking.uri={mask_uri(uri)}: MLflow's file store is not supported; give a "
            f"SQLite file instead: tracking.uri=sqlite:///{folder}/mlflow.db (or a tracking "
            "server, tracking.uri=http://host:port)"
        )
    if scheme == "sqlite" and not uri.startswith("sqlite:///"):
        return (
            f"tracking.uri={mask_uri(uri)}: a SQLite store is a file, with no user, password "
            "or host: give tracking.uri=sqlite:///<path> (sqlite:////abs/path/mlflow.db for an "
            "absolute path)"
        )
    return None


def tracking_error(uri: str | None, timeout_s: float = TIMEOUT_S) -> str | None:
    """The tracking store cannot be used: an http(s) server that does not answer a REST call
    or refuses the login (one try, ``timeout_s``), a database URL whose driver is missing,
    whose port does not answer or that refuses (or never answers) a login, a SQLite file
    whose folder cannot be created, or a URI form MLflow would refuse (`_store_form_error`).
    None for a usable store."""
    if not uri:
        return None
    uri = str(uri)
    scheme = urlsplit(uri).scheme.lower()
    form = _store_form_error(uri, scheme)
    if form:
        return form
    if scheme in ("http", "https"):
        return _http_error(uri, timeout_s)
    if scheme == "sqlite":
        from glattn.tracking.uris import sqlite_path

        db = sqlite_path(uri)
        if db is None or output_dir_error(db.parent) is None:
            return None
        return (
            f"tracking.uri={mask_uri(uri)}: cannot create or write the folder {db.parent} of "
            "its database; give tracking.uri=sqlite:///<a file in a folder you can write> "
            "(or a paths.output_dir you can write)"
        )
    if scheme in ("", "file", "databricks", "file-store") or scheme.startswith("databricks"):
        return None
    return _database_error(uri, timeout_s)


def slurm_error(timeout_s: float = TIMEOUT_S) -> str | None:
    """``sbatch`` is missing, or ``sinfo`` does not answer: no SLURM cluster to submit to."""
    if shutil.which("sbatch") is None:
        return f"hydra/launcher=slurm: sbatch is not on PATH (no SLURM client here); {SLURM_HINT}"
    try:
        done = subprocess.run(
            ["sinfo", "-h", "-o", "%P %a"],
            capture_output=True,
            text=True,
            timeout=timeout_s,
        )
    except FileNotFoundError:
        return f"hydra/launcher=slurm: sbatch exists but sinfo does not; {SLURM_HINT}"
    except subprocess.TimeoutExpired:
        return f"hydra/launcher=slurm: sinfo does not answer within {timeout_s:g} s; {SLURM_HINT}"
    if done.returncode != 0 or not done.stdout.strip():
        said = (done.stderr or done.stdout).strip().splitlines()
        why = said[-1] if said else f"exit status {done.returncode}, no partition"
        return f"hydra/launcher=slurm: no SLURM cluster answers (sinfo: {why}); {SLURM_HINT}"
    return None


def _raise(error: str | None) -> None:
    if error:
        raise ConfigError(error)


def check_slurm() -> None:
    _raise(slurm_error())


def check_job(cfg: DictConfig) -> None:
    """A job's machine checks, in the order their failures depend on: the output folder
    (the SQLite store lives in it), the device, the tracking store."""
    _raise(output_dir_error(cfg.paths.output_dir))
    _raise(device_error(OmegaConf.select(cfg, "trainer.device", default="auto")))
    if OmegaConf.select(cfg, "tracking.enabled", default=False):
        _raise(tracking_error(OmegaConf.select(cfg, "tracking.uri", default=None)))


class PreflightCallback(Callback):
    """Hydra creates a run's folder (``hydra.run.dir``, under ``paths.output_dir``) before
    the task starts, and fails with a traceback when it cannot: ``on_run_start`` comes first
    and ends the process with one line instead (SystemExit passes Hydra's callback guard).
    Registered in conf/config.yaml (``hydra.callbacks.glattn_preflight``)."""

    def on_run_start(self, config: DictConfig, **kwargs) -> None:
        for folder in (
            OmegaConf.select(config, "paths.output_dir"),
            OmegaConf.select(config, "hydra.run.dir"),
        ):
            error = output_dir_error(folder) if folder else None
            if error:
                raise SystemExit(f"Error: {error}")
