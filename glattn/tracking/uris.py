"""Tracking URIs: the one resolve (relative SQLite paths made absolute, credentials moved
out, network timeouts set) and the one mask.

Jobs may start in other directories than the command that launched them (SLURM, the
local_gpus workers), so a relative ``sqlite:///outputs/mlflow.db`` is made absolute against
the launching cwd once, here. Passwords in ``user:password@host`` URIs are masked by
`glattn.secrets.mask_uri` wherever a URI is printed or logged.

No library receives a URI password: `resolve_uri` moves the ``user:password`` of an
http(s) tracking URI into ``MLFLOW_TRACKING_USERNAME`` / ``MLFLOW_TRACKING_PASSWORD`` (MLflow
reads them at every request; otherwise its own ``View run ... at: <uri>`` lines print the
password) and a PostgreSQL password into ``PGPASSWORD`` (libpq reads it), for this process.
The URI's value wins over a different value already in the environment: it is the one given
for this run (a sweep over two URIs sets each job's own). Every network store gets a connect
and a first-answer timeout (`network_timeouts`): an address that accepts the connection and
never answers fails instead of hanging.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

from glattn.secrets import mask_uri

__all__ = [
    "DEFAULT_URI",
    "SQLITE",
    "default_tracking_uri",
    "mask_uri",
    "move_credentials",
    "network_timeouts",
    "resolve_uri",
    "sqlite_path",
    "ui_command",
]

SQLITE = "sqlite:///"
#: conf/tracking/mlflow.yaml's ``uri`` with the default ``paths.output_dir`` (outputs).
DEFAULT_URI = "sqlite:///outputs/mlflow.db"
#: seconds to connect to (and to log in at) a database server, and to wait for an answer
CONNECT_TIMEOUT_S = 10
#: defaults for what the environment does not set (a user's own values win): MLflow's REST
#: client (its own defaults wait 120 s an answer and retry 7 times, minutes in all),
#: libpq (psycopg2, psycopg: no connect timeout at all; a statement never answered)
NETWORK_ENV = {
    "http": {"MLFLOW_HTTP_REQUEST_TIMEOUT": "60", "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "3"},
    "postgres": {
        "PGCONNECT_TIMEOUT": str(CONNECT_TIMEOUT_S),
        "PGOPTIONS": "-c statement_timeout=300000",  # milliseconds
    },
}
#: URL query arguments SQLAlchemy's MySQL drivers (pymysql, mysqlclient) read
MYSQL_TIMEOUTS = {"connect_timeout": str(CONNECT_TIMEOUT_S), "read_timeout": "300"}


def sqlite_path(uri: str | None) -> Path | None:
    """The database file of a ``sqlite:///`` URI (absolute), None for other stores."""
    if uri is None or not str(uri).startswith(SQLITE):
        return None
    path = Path(str(uri)[len(SQLITE) :])
    return (path if path.is_absolute() else Path.cwd() / path).resolve()


def _scheme(uri: str) -> str:
    return urlsplit(uri).scheme.lower().split("+")[0]


def move_credentials(uri: str, environ: MutableMapping[str, str] | None = None) -> str:
    """``http(s)://user:pw@host`` -> ``http(s)://host`` with MLFLOW_TRACKING_USERNAME /
    MLFLOW_TRACKING_PASSWORD set; ``postgresql://user:pw@host/db`` ->
    ``postgresql://user@host/db`` with PGPASSWORD set. The URI's values replace what the
    environment held. Other URIs are returned unchanged."""
    environ = os.environ if environ is None else environ
    parts = urlsplit(uri)
    if "@" not in parts.netloc or parts.password is None:
        return uri
    userinfo, _, host = parts.netloc.rpartition("@")
    user = unquote(userinfo.partition(":")[0])
    scheme = _scheme(uri)
    if scheme in ("http", "https"):
        environ["MLFLOW_TRACKING_USERNAME"] = user
        environ["MLFLOW_TRACKING_PASSWORD"] = unquote(parts.password)
        return parts._replace(netloc=host).geturl()
    if scheme.startswith("postgres"):
        environ["PGPASSWORD"] = unquote(parts.password)
        return parts._replace(netloc=f"{userinfo.partition(':')[0]}@{host}").geturl()
    return uri


def network_timeouts(uri: str, environ: MutableMapping[str, str] | None = None) -> str:
    """Give the client of a network store its connect and first-answer timeouts: MLflow's
    REST client and libpq through the environment (values already set stay), MySQL through
    the URI's query (arguments already there stay). Returns the URI."""
    environ = os.environ if environ is None else environ
    scheme = _scheme(uri)
    family = "http" if scheme in ("http", "https") else scheme
    family = "postgres" if family.startswith("postgres") else family
    for name, value in NETWORK_ENV.get(family, {}).items():
        environ.setdefault(name, value)
    if family in ("mysql", "mariadb"):
        parts = urlsplit(uri)
        query = dict(parse_qsl(parts.query))
        added = {k: v for k, v in MYSQL_TIMEOUTS.items() if k not in query}
        if added:
            return parts._replace(query=urlencode({**query, **added})).geturl()
    return uri


def resolve_uri(uri: str | None, create_dir: bool = True, for_client: bool = True) -> str | None:
    """The URI a library receives: a relative ``sqlite:///path`` becomes absolute (and its
    folder exists unless ``create_dir`` is false); a network store's credentials move to
    the environment (`move_credentials`) and its timeouts are set (`network_timeouts`),
    unless ``for_client`` is false (a URI only shown)."""
    if uri is None:
        return None
    path = sqlite_path(uri)
    if path is None:
        uri = str(uri)
        return network_timeouts(move_credentials(uri)) if for_client and "://" in uri else uri
    if create_dir:
        path.parent.mkdir(parents=True, exist_ok=True)
    return f"{SQLITE}{path}"


def default_tracking_uri() -> str:
    """The store a reader looks in when given none (the report, ``load_model``):
    ``$MLFLOW_TRACKING_URI``, else the default config's store, ``sqlite:///<abs
    cwd>/outputs/mlflow.db``; made absolute, its folder not created."""
    uri = os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_URI
    return resolve_uri(uri, create_dir=False, for_client=False)


def ui_command(uri: str | None) -> str:
    """How to open a store's runs in the MLflow UI: ``mlflow ui --backend-store-uri <uri>``
    (absolute, password masked); a tracking server is its own UI, so its address is given.
    Runs and sweeps print it when they end."""
    uri = resolve_uri(uri, create_dir=False, for_client=False)
    if uri is None:
        return "tracking is off (tracking=none): nothing to open in the MLflow UI"
    if uri.startswith(("http://", "https://")):
        return f"MLflow UI: open {mask_uri(uri)} (the tracking server serves it)"
    quoted = f"'{mask_uri(uri)}'" if any(c in uri for c in " $&;|<>()*?") else mask_uri(uri)
    return f"mlflow ui --backend-store-uri {quoted}"
