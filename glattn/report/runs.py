"""The tracked runs a report reads, through glattn.tracking (its retrying client, its queries,
its one `default_tracking_uri`), as one pandas frame per experiment.

Tag and role names come from `glattn.tracking.names`: job runs carry ``glattn.role=job`` and
the group-choice tags (glattn.groups.FACTORS); a sweep's parent run ``glattn.role=sweep``.
`load_runs` returns the FINISHED job runs of the declared run set (`glattn.report.selection`:
one cell per configuration, debug runs left out unless asked, ``--where`` filters).
"""

from __future__ import annotations

import math

import mlflow
import pandas as pd

from glattn.errors import UserError
from glattn.groups import FACTORS
from glattn.report import selection
from glattn.report.frames import col
from glattn.tracking import names, queries
from glattn.tracking.client import make_client, retry_locked
from glattn.tracking.models import use_tracking_uri
from glattn.tracking.names import (
    CHOICE_PARAM_PREFIX,
    JOB_ROLE,
    PARENT_TAG,
    ROLE_TAG,
    SWEEP_ROLE,
    debug_experiment,
)
from glattn.tracking.uris import default_tracking_uri, mask_uri, resolve_uri, sqlite_path

__all__ = [
    "ReportError",
    "default_tracking_uri",
    "load_runs",
    "mask",
    "metric_history",
    "newest_sweep",
    "report_home",
    "source_experiments",
    "stage_experiments",
    "sweep_runs",
]

#: Further tags the report reads as plain columns.
TAGS = FACTORS + ("seed", "task", "fingerprint", "eval_dataset", "eval_split", "source_run_id")


class ReportError(UserError, ValueError):
    """Bad input to the report (unknown experiment, no runs, bad option): one clear message."""


def client_for(uri: str):
    """The retrying client of `uri`; a missing SQLite file is an error (a client would
    create an empty store)."""
    db = sqlite_path(uri)
    if db is not None and not db.is_file():
        raise ReportError(
            f"no MLflow database at {db} (tracking URI {mask_uri(uri)!r}): train something "
            "first, or pass --tracking-uri"
        )
    return make_client(uri)


def get_experiment(uri: str, name: str):
    """The experiment called `name`; ReportError listing the known ones otherwise."""
    client = client_for(uri)
    exp = client.get_experiment_by_name(name)
    if exp is None:
        known = queries.experiment_names(client)
        raise ReportError(
            f"MLflow experiment {name!r} not found at tracking URI {mask_uri(uri)!r}; "
            f"experiments there: {known or 'none'}"
        )
    return exp


def load_all_runs(uri: str, experiment: str) -> pd.DataFrame:
    """Every run of `experiment` (any status, any role), oldest first, one row per run:
    its info (``run_id``, ``run_name``, ``status``, ``start_time`` ...), ``experiment`` (the
    name), the data set digest (`selection.dataset_digest`), ``params.*``, ``metrics.*``,
    ``tags.*`` and the class params (`_class_params`). `mlflow.search_runs` pages; its
    list, not its frame, as the frame leaves out the runs' data set inputs."""
    exp = get_experiment(uri, experiment)
    with use_tracking_uri(resolve_uri(uri)):  # search_runs reads the global tracking URI
        found = retry_locked(
            mlflow.search_runs,
            [exp.experiment_id],
            order_by=["attributes.start_time ASC"],
            output_format="list",
        )
    records = [
        {**dict(r.info), selection.DIGEST: selection.dataset_digest(r), **r.data.to_dictionary()}
        for r in found
    ]
    frame = pd.json_normalize(records)  # {"params": {k: v}} -> column params.<k>
    frame.insert(min(1, frame.shape[1]), "experiment", experiment)
    return _class_params(frame)


def _class_params(frame: pd.DataFrame) -> pd.DataFrame:
    """``params.<group>._target_`` from the ``class.<group>`` tag of a run that logs the
    class as a tag (older runs logged it as that param): one column for both."""
    prefix = f"tags.{names.CLASS_TAG_PREFIX}"
    for tag in [c for c in frame.columns if c.startswith(prefix)]:
        param = f"params.{tag[len(prefix) :]}._target_"
        frame[param] = col(frame, param).fillna(frame[tag])
    return frame


def _jobs(frame: pd.DataFrame, experiment: str, uri: str) -> pd.DataFrame:
    if frame.empty:
        raise ReportError(f"MLflow experiment {experiment!r} at {mask_uri(uri)!r} has no runs")
    role = col(frame, f"tags.{ROLE_TAG}")
    jobs = frame[(frame["status"] == "FINISHED") & (role == JOB_ROLE)].copy()
    if jobs.empty:
        counts = frame.assign(role=role).groupby(["status", "role"], dropna=False).size()
        raise ReportError(
            f"MLflow experiment {experiment!r} has no FINISHED runs tagged "
            f"{ROLE_TAG}=job; runs by (status, role): {counts.to_dict()}"
        )
    for tag in TAGS:
        jobs[tag] = col(jobs, f"tags.{tag}")
    for factor in FACTORS:
        jobs[factor] = option_names(jobs, factor)
    jobs["parent_run_id"] = col(jobs, f"tags.{PARENT_TAG}")
    jobs["task"] = jobs["task"].fillna("train")
    jobs["seed"] = jobs["seed"].map(_seed)
    return jobs


def _experiments(uri: str, experiment: str, include_debug: bool) -> list[str]:
    """The experiments a report reads: `experiment`, and with ``include_debug`` its
    ``<experiment>-debug`` too; either may be missing, not both. A missing `experiment`
    whose debug twin exists names --include-debug (debug=smoke runs go there)."""
    client = client_for(uri)
    debug_exp = debug_experiment(experiment)
    names = [experiment] + ([debug_exp] if include_debug and debug_exp != experiment else [])
    found = [name for name in names if client.get_experiment_by_name(name) is not None]
    if found:
        return found
    if client.get_experiment_by_name(debug_exp) is not None:
        raise ReportError(
            f"MLflow experiment {experiment!r} not found at tracking URI {mask_uri(uri)!r}; "
            f"its debug-preset runs are in {debug_exp!r}: add --include-debug to read them"
        )
    get_experiment(uri, experiment)  # raises, listing the experiments there
    return found


def _twin_jobs(uri: str, experiment: str) -> pd.DataFrame:
    """The FINISHED job runs of ``<experiment>-debug``, which a report without
    --include-debug does not read (empty when there is no such experiment)."""
    twin = debug_experiment(experiment)
    if twin == experiment or client_for(uri).get_experiment_by_name(twin) is None:
        return pd.DataFrame()
    frame = load_all_runs(uri, twin)
    if frame.empty:
        return frame
    return frame[(frame["status"] == "FINISHED") & (col(frame, f"tags.{ROLE_TAG}") == JOB_ROLE)]


def load_runs(
    uri: str,
    experiment: str,
    where=(),
    include_debug: bool = False,
    notes: list | None = None,
) -> pd.DataFrame:
    """FINISHED job runs (tag glattn.role=job) of `experiment`, one row per run, with the
    columns of `frames` and `selection` (``cell``, ``variant``). ``include_debug`` adds the
    debug presets' runs and the ``<experiment>-debug`` experiment; ``where`` (KEY=VALUE
    strings) keeps the runs whose param or tag has that value."""
    notes = [] if notes is None else notes
    frames = [load_all_runs(uri, name) for name in _experiments(uri, experiment, include_debug)]
    jobs = _jobs(pd.concat(frames, ignore_index=True), experiment, uri)
    debug = selection.debug_mask(jobs) | (jobs["experiment"] != experiment)
    if include_debug and debug.any():
        notes.append(selection.debug_note(jobs[debug], "included (--include-debug)"))
    elif not include_debug:
        left = pd.concat([jobs[debug], _twin_jobs(uri, experiment)], ignore_index=True)
        if not left.empty:
            notes.append(selection.debug_note(left, "left out (--include-debug reads them)"))
        jobs = jobs[~debug]
    try:
        jobs = selection.apply_where(jobs, where)
        if jobs.empty:
            raise ReportError(
                f"no FINISHED job run of {experiment!r} left after "
                + (f"--where {list(where)}" if where else "leaving out debug runs")
                + ("" if include_debug else " (debug runs need --include-debug)")
            )
        jobs = selection.add_cells(jobs)
    except selection.SelectionError as err:
        raise ReportError(f"experiment {experiment!r}: {err}") from None
    return selection.dedupe(jobs, notes).reset_index(drop=True)


def option_names(frame: pd.DataFrame, group: str) -> pd.Series:
    """The group's option of each run, as the job logged it: its ``choice.<group>`` param
    (Hydra's choice, glattn.job.spec), else its factor tag; nothing is read from conf/ or
    imported."""
    choice = col(frame, f"params.{CHOICE_PARAM_PREFIX}{group}")
    return choice.where(choice.notna(), frame[group])


def sweep_runs(uri: str, experiment: str) -> pd.DataFrame:
    """The experiment's parent sweep runs (tag glattn.role=sweep), newest first."""
    frame = load_all_runs(uri, experiment)
    if frame.empty:
        return frame
    sweeps = frame[col(frame, f"tags.{ROLE_TAG}") == SWEEP_ROLE]
    return sweeps.sort_values("start_time", ascending=False).reset_index(drop=True)


def source_experiments(frames) -> list[str]:
    """The experiments the runs of `frames` ({name asked for: run set}) came from, in order:
    a ``<name>-debug`` twin read with --include-debug is named as itself."""
    found = [e for f in frames.values() if "experiment" in f for e in f["experiment"].dropna()]
    return list(dict.fromkeys(found)) or list(frames)


def report_home(experiment: str, frames) -> list[str]:
    """Where a report of `experiment` may be logged: the experiments its runs came from
    that are `experiment` or its ``-debug`` twin (`paper` reads other experiments' runs and
    is logged to none of them)."""
    own = (experiment, debug_experiment(experiment))
    return [e for e in source_experiments(frames) if e in own] or [experiment]


def newest_sweep(uri: str, experiments) -> tuple[str | None, str | None]:
    """(run id, experiment) of the newest parent sweep run in any of `experiments`; (None,
    None) when none has one (or none exists: `paper` is no experiment itself)."""
    best = None
    for name in experiments:
        try:
            sweeps = sweep_runs(uri, name)
        except ReportError:
            continue
        if not sweeps.empty and (best is None or sweeps.iloc[0]["start_time"] > best[0]):
            best = (sweeps.iloc[0]["start_time"], str(sweeps.iloc[0]["run_id"]), name)
    return (best[1], best[2]) if best else (None, None)


def stage_experiments(uri: str, numbers: list[int], notes: list, tables_for) -> dict[int, str]:
    """{table number: experiment name} of the experiments in the store that declare them
    (`tables_for(name)` gives the numbers an experiment name stands for)."""
    names = queries.experiment_names(client_for(uri))
    out = {}
    for n in numbers:
        hits = [x for x in names if tables_for(x) == [n]]
        if hits:
            out[n] = hits[0]
            if len(hits) > 1:
                notes.append(f"Table {n}: several experiments {hits}; used {hits[0]!r}")
        else:
            notes.append(f"Table {n}: no experiment in the store declares it")
    return out


def metric_history(uri: str, run_ids, key: str) -> dict[str, dict[int, float]]:
    """{run_id: {step: value}} of metric `key` (per-epoch metrics use step=epoch)."""
    return queries.metric_history(client_for(uri), list(run_ids), key)


def _seed(value):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return value


def mask(uri: str) -> str:
    """Hide a password in a database/server URI before printing it."""
    return mask_uri(uri)
