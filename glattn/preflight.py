"""What a job (or a sweep) needs from the machine, checked before any MLflow run or parent
exists, in seconds: the output folder can be created and written, the device exists, the
tracking store answers (an http server within ``TIMEOUT_S``, a database's driver is
installed and its port answers), and SLURM is usable for ``hydra/launcher=slurm``.

Each check returns one line that says what is wrong and what to do (the ``*_error``
functions), or None; ``check_*`` raise it as a ConfigError (one message, no traceback).
A URI is always shown masked (glattn.secrets). Nothing here retries: an unreachable server
fails once, in ``TIMEOUT_S`` at most, instead of MLflow's minutes of retries (issue 19).
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
    shown = mask_uri(uri)
    parts = urlsplit(uri)
    netloc = parts.netloc.rsplit("@", 1)[-1]  # no user:password (MLflow sends it as auth)
    health = parts._replace(netloc=netloc, path=parts.path.rstrip("/") + "/health").geturl()
    try:
        urllib.request.urlopen(health, timeout=timeout_s).close()
        return None
    except urllib.error.HTTPError:  # it answered (401, 404, ...): MLflow takes it from here
        return None
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


def _database_error(uri: str, timeout_s: float) -> str | None:
    from sqlalchemy.engine.url import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    shown = mask_uri(uri)
    try:
        url = make_url(uri)
        dialect = url.get_dialect()
    except (ArgumentError, NoSuchModuleError, ValueError) as exc:
        return f"tracking.uri={shown}: not a database URL SQLAlchemy knows ({exc})"
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
    if url.host and port and url.get_backend_name() != "sqlite":
        try:
            socket.create_connection((url.host, port), timeout=timeout_s).close()
        except OSError as exc:
            return (
                f"tracking.uri={shown}: the database at {url.host}:{port} does not answer "
                f"({exc.strerror or type(exc).__name__}); check that it runs and the host and "
                "port are right"
            )
    return None


def tracking_error(uri: str | None, timeout_s: float = TIMEOUT_S) -> str | None:
    """The tracking store cannot be used: an http(s) server that does not answer (one try,
    ``timeout_s``), a database URL whose driver is missing or whose port does not answer,
    or a SQLite file whose folder cannot be created. None for a usable store."""
    if not uri:
        return None
    uri = str(uri)
    scheme = urlsplit(uri).scheme.lower()
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
