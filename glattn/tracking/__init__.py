"""MLflow tracking, the one place: URIs (`uris`), tag and role names (`names`), the client
(`client`: schema lock, retries, experiment), the `Tracker` of one run (`tracker`) and the
run queries of jobs, sweeps and plan mode (`queries`)."""

from glattn.secrets import MASK, mask_uri
from glattn.tracking import names
from glattn.tracking.client import get_experiment_id, make_client
from glattn.tracking.queries import (
    find_finished_run,
    find_parent,
    finished_job_run,
    finished_runs,
    job_runs,
)
from glattn.tracking.tracker import (
    NullTracker,
    Tracker,
    class_tags,
    flatten_config,
    git_commit,
    make_tracker,
)
from glattn.tracking.uris import resolve_uri, sqlite_path, ui_command

__all__ = [
    "MASK",
    "NullTracker",
    "Tracker",
    "class_tags",
    "find_finished_run",
    "find_parent",
    "finished_job_run",
    "finished_runs",
    "flatten_config",
    "get_experiment_id",
    "git_commit",
    "job_runs",
    "make_client",
    "make_tracker",
    "mask_uri",
    "names",
    "resolve_uri",
    "sqlite_path",
    "ui_command",
]
