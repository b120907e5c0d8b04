"""Tracking URIs: the one resolve (relative SQLite paths made absolute) and the one mask.

Jobs may start in other directories than the command that launched them (SLURM, the
local_gpus workers), so a relative ``sqlite:///outputs/mlflow.db`` is made absolute against
the launching cwd once, here. Passwords in ``user:password@host`` URIs are masked by
`glattn.secrets.mask_uri` wherever a URI is printed or logged.
"""

from __future__ import annotations

import os
from pathlib import Path

from glattn.secrets import mask_uri

__all__ = [
    "DEFAULT_URI",
    "SQLITE",
    "default_tracking_uri",
    "mask_uri",
    "resolve_uri",
    "sqlite_path",
    "ui_command",
]

SQLITE = "sqlite:///"
#: conf/tracking/mlflow.yaml's ``uri`` with the default ``paths.output_dir`` (outputs).
DEFAULT_URI = "sqlite:///outputs/mlflow.db"


def sqlite_path(uri: str | None) -> Path | None:
    """The database file of a ``sqlite:///`` URI (absolute), None for other stores."""
    if uri is None or not str(uri).startswith(SQLITE):
        return None
    path = Path(str(uri)[len(SQLITE) :])
    return (path if path.is_absolute() else Path.cwd() / path).resolve()


def resolve_uri(uri: str | None, create_dir: bool = True) -> str | None:
    """A relative ``sqlite:///path`` becomes absolute (and its folder exists unless
    ``create_dir`` is false); other URIs are returned unchanged."""
    if uri is None:
        return None
    path = sqlite_path(uri)
    if path is None:
        return str(uri)
    if create_dir:
        path.parent.mkdir(parents=True, exist_ok=True)
    return f"{SQLITE}{path}"


def default_tracking_uri() -> str:
    """The store a reader looks in when given none (the report, ``load_model``):
    ``$MLFLOW_TRACKING_URI``, else the default config's store, ``sqlite:///<abs
    cwd>/outputs/mlflow.db``; made absolute, its folder not created."""
    return resolve_uri(os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_URI, create_dir=False)


def ui_command(uri: str | None) -> str:
    """How to open a store's runs in the MLflow UI: ``mlflow ui --backend-store-uri <uri>``
    (absolute, password masked); a tracking server is its own UI, so its address is given.
    Runs and sweeps print it when they end."""
    uri = resolve_uri(uri, create_dir=False)
    if uri is None:
        return "tracking is off (tracking=none): nothing to open in the MLflow UI"
    if uri.startswith(("http://", "https://")):
        return f"MLflow UI: open {mask_uri(uri)} (the tracking server serves it)"
    quoted = f"'{mask_uri(uri)}'" if any(c in uri for c in " $&;|<>()*?") else mask_uri(uri)
    return f"mlflow ui --backend-store-uri {quoted}"
