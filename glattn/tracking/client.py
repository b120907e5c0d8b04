"""The MLflow client every glattn process uses: the SQLite schema created once under a file
lock, transient ``database is locked`` errors retried with backoff, the experiment created
with its artifact location.

Measured: many processes opening a SQLite file that does not exist
yet race on MLflow's schema migration (16 of 16 failed, the file left unusable); with the
schema in place, concurrent writers still see an occasional ``database is locked``. And
MLflow's ``log_inputs`` checks for the data set, then inserts it: a sweep's jobs that log
one data set at the same moment fail on its unique key (2-3 of 8 jobs at once, SQLite and
PostgreSQL). It is idempotent, so that error is retried too: the retry finds the row.
"""

from __future__ import annotations

import logging
import random
import time
from pathlib import Path

from glattn.locks import file_lock
from glattn.tracking.uris import resolve_uri, sqlite_path

log = logging.getLogger(__name__)

RETRY_DELAYS = (0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0, 5.0, 5.0, 5.0, 5.0)
_READY: set[str] = set()  # URIs whose schema this process has seen in place


def is_locked_error(exc: BaseException) -> bool:
    text = str(exc).lower()
    return "database is locked" in text or "database table is locked" in text


# the unique-key violation of a concurrent insert, as SQLite, PostgreSQL and MySQL word it
DUPLICATE_KEY = (
    "UNIQUE constraint failed",
    "duplicate key value violates unique constraint",
    "Duplicate entry",
)
# client calls that insert only what is missing, so that a retry after a concurrent insert
# of the same row finds it and succeeds (MLflow's SqlAlchemyStore._log_inputs_impl)
IDEMPOTENT_INSERTS = frozenset({"log_inputs"})


def is_duplicate_error(exc: BaseException) -> bool:
    return any(text in str(exc) for text in DUPLICATE_KEY)


def retry_locked(func, *args, **kwargs):
    """Call ``func``; on SQLite's ``database is locked`` wait (exponential, jittered) and
    call again, up to ~45 s in all, then raise the last error."""
    return _retry(func, is_locked_error, args, kwargs)


def _retry(func, transient, args, kwargs):
    for delay in (*RETRY_DELAYS, None):
        try:
            return func(*args, **kwargs)
        except Exception as exc:
            if delay is None or not transient(exc):
                raise
            what = "database is locked" if is_locked_error(exc) else "concurrent insert"
            log.debug("%s: %s, retrying in %.2fs", func.__name__, what, delay)
            time.sleep(delay * (0.5 + random.random()))
    raise AssertionError("unreachable")


def _locked_or_duplicate(exc: BaseException) -> bool:
    return is_locked_error(exc) or is_duplicate_error(exc)


class RetryingClient:
    """An ``MlflowClient`` whose every call is retried on ``database is locked``, and the
    idempotent inserts (``IDEMPOTENT_INSERTS``) also on a concurrent insert's duplicate key.
    """

    def __init__(self, client) -> None:
        self._client = client

    @property
    def tracking_uri(self) -> str:
        return self._client.tracking_uri

    def __getattr__(self, name: str):
        attr = getattr(self._client, name)
        if not callable(attr):
            return attr
        transient = _locked_or_duplicate if name in IDEMPOTENT_INSERTS else is_locked_error
        return lambda *args, **kwargs: _retry(attr, transient, args, kwargs)


def _schema_lock(db: Path):
    """The lock ``<db>.lock`` beside the database (blocking)."""
    return file_lock(db.with_name(db.name + ".lock"))


def make_client(uri: str | None) -> RetryingClient:
    """A client for ``uri`` (made absolute). For SQLite, the first client of a process opens
    the store under the lock beside the database, so the schema is created exactly once
    however many processes start at the same moment."""
    from mlflow.tracking import MlflowClient

    uri = resolve_uri(uri)
    db = sqlite_path(uri)
    if db is None or uri in _READY:
        return RetryingClient(MlflowClient(tracking_uri=uri))
    with _schema_lock(db):  # MlflowClient opens the store (creating or upgrading the schema)
        client = RetryingClient(MlflowClient(tracking_uri=uri))
        client.search_experiments(max_results=1)
    _READY.add(uri)
    return client


def get_experiment_id(tracking_cfg, client: RetryingClient | None = None) -> str:
    """The experiment's id, created (with its artifact location) when missing."""
    client = client or make_client(tracking_cfg.uri)
    name = str(tracking_cfg.experiment)
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    location = None
    uri = resolve_uri(tracking_cfg.uri) or ""
    if tracking_cfg.get("artifact_location") and not uri.startswith(("http://", "https://")):
        path = Path(str(tracking_cfg.artifact_location)).absolute() / name
        path.mkdir(parents=True, exist_ok=True)
        location = path.as_uri()
    try:
        return client.create_experiment(name, artifact_location=location)
    except Exception:  # created concurrently by another process
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            raise
        return experiment.experiment_id
