"""The tracked runs a report reads, one pandas frame per experiment: `load_runs` keeps the
FINISHED job runs (``glattn.role=job``) of the declared run set."""

from __future__ import annotations

import mlflow
import pandas as pd

from glattn.errors import UserError
from glattn.groups import FACTORS
from glattn.report import selection
from glattn.report.frames import col
from glattn.tracking import names, queries, uris
from glattn.tracking.client import make_client, retry_locked
from glattn.tracking.models import use_tracking_uri

ROLE = f"tags.{names.ROLE_TAG}"
CHOICE = f"params.{names.CHOICE_PARAM_PREFIX}"
#: Further tags the report reads as plain columns.
TAGS = FACTORS + ("seed", "task", "fingerprint", "eval_dataset", "eval_split", "source_run_id")


class ReportError(UserError, ValueError):
    """Bad input to the report (unknown experiment, no runs, bad option): one clear message."""


def client_for(uri: str):
    """The retrying client of `uri`; a missing SQLite file is an error, not a new store."""
    db = uris.sqlite_path(uri)
    if db is not None and not db.is_file():
        raise ReportError(
            f"no MLflow database at {db} (tracking URI {uris.mask_uri(uri)!r}): train something "
            "first, or pass --tracking-uri"
        )
    return make_client(uri)


def _all_runs(uri: str, exp) -> pd.DataFrame:
    """Every run of the experiment `exp`, oldest first: info, data set digest, params, metrics,
    tags (`mlflow.search_runs` as a list: its frame leaves out the data set inputs)."""
    with use_tracking_uri(uris.resolve_uri(uri)):  # search_runs reads the global tracking URI
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
    frame.insert(min(1, frame.shape[1]), "experiment", exp.name)
    # a run's class is its ``class.<group>`` tag (older runs logged it as a _target_ param)
    prefix = f"tags.{names.CLASS_TAG_PREFIX}"
    for tag in [c for c in frame.columns if c.startswith(prefix)]:
        param = f"params.{tag.removeprefix(prefix)}._target_"
        frame[param] = col(frame, param).fillna(frame[tag])
    return frame


def _finished_jobs(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[(col(frame, "status") == "FINISHED") & (col(frame, ROLE) == names.JOB_ROLE)]


def _jobs(frame: pd.DataFrame, experiment: str, uri: str) -> pd.DataFrame:
    if frame.empty:
        raise ReportError(
            f"MLflow experiment {experiment!r} at {uris.mask_uri(uri)!r} has no runs"
        )
    jobs = _finished_jobs(frame)
    if jobs.empty:
        counts = frame.groupby(["status", col(frame, ROLE).rename("role")], dropna=False).size()
        raise ReportError(
            f"MLflow experiment {experiment!r} has no FINISHED runs tagged "
            f"{names.ROLE_TAG}=job; runs by (status, role): {counts.to_dict()}"
        )
    jobs = jobs.assign(**{tag: col(jobs, f"tags.{tag}") for tag in TAGS})
    # the option as logged: its choice.<group> param, else its tag
    jobs = jobs.assign(**{f: col(jobs, f"{CHOICE}{f}").fillna(jobs[f]) for f in FACTORS})
    return jobs.assign(task=jobs["task"].fillna("train"), seed=jobs["seed"].map(_seed))


def _read(uri: str, experiment: str, include_debug: bool) -> pd.DataFrame:
    """Every run of `experiment` and of its ``-debug`` twin; either may be missing, not both."""
    client = client_for(uri)
    twin = names.debug_experiment(experiment)
    there = {n: e for n in (experiment, twin) if (e := client.get_experiment_by_name(n))}
    if experiment not in there and not (include_debug and there):
        why = f"experiments there: {queries.experiment_names(client) or 'none'}"
        if twin in there:
            why = f"its debug-preset runs are in {twin!r}: add --include-debug to read them"
        raise ReportError(
            f"MLflow experiment {experiment!r} not found at tracking URI "
            f"{uris.mask_uri(uri)!r}; {why}"
        )
    return pd.concat([_all_runs(uri, exp) for exp in there.values()], ignore_index=True)


def load_runs(
    uri: str, experiment: str, where=(), include_debug: bool = False, notes: list | None = None
) -> pd.DataFrame:
    """FINISHED job runs of `experiment` with ``cell`` and ``variant`` (`selection`); debug
    runs only with `include_debug`; `where` (KEY=VALUE) keeps runs whose param matches."""
    notes = [] if notes is None else notes
    read = _read(uri, experiment, include_debug)
    mine = read["experiment"] == experiment
    jobs = _jobs(read if include_debug else read[mine], experiment, uri)
    # debug runs: those of a debug preset in `experiment` and every job run of its twin
    debug = selection.debug_mask(jobs) & (jobs["experiment"] == experiment)
    flagged = pd.concat([jobs[debug], _finished_jobs(read[~mine])], ignore_index=True)
    what = "included (--include-debug)"
    if not include_debug:
        jobs, what = jobs[~debug], "left out (--include-debug reads them)"
    if not flagged.empty:
        notes.append(selection.debug_note(flagged, what))
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


def source_experiments(frames) -> list[str]:
    """The experiments the runs of `frames` ({name asked for: run set}) came from, in order."""
    found = [e for f in frames.values() if "experiment" in f for e in f["experiment"].dropna()]
    return list(dict.fromkeys(found)) or list(frames)


def home_sweep(uri: str, experiment: str, frames, what: str) -> tuple[str | None, str]:
    """The newest parent sweep run of the experiments `frames`' runs came from that are
    `experiment` or its debug twin, and a note: where `what` is logged, or why it is not."""
    own = (experiment, names.debug_experiment(experiment))
    home = [e for e in source_experiments(frames) if e in own] or [experiment]
    client = client_for(uri)
    ids = {e.experiment_id: e.name for n in home if (e := client.get_experiment_by_name(n))}
    found = ids and client.search_runs(  # no experiment, no query
        list(ids),
        filter_string=f"tags.`{names.ROLE_TAG}` = '{names.SWEEP_ROLE}'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    if not found:
        where = " or ".join(map(repr, home))
        return None, f"no parent sweep run ({ROLE[5:]}=sweep) in {where}: the {what} is not logged"
    run_id, there = found[0].info.run_id, ids[found[0].info.experiment_id]
    return run_id, f"the {what} logged as 'report/' of parent sweep run {run_id} in {there!r}"


def table_sources(uri: str, experiment: str, numbers, notes: list, catalog) -> dict[int, str]:
    """{table number: experiment}: a stages file (`paper`) reads each table from the store's
    experiment whose file declares it, with a note where none or several do."""
    if experiment not in catalog.stages:
        return {n: experiment for n in numbers}
    known = queries.experiment_names(client_for(uri))
    hits = {n: [x for x in known if catalog.tables_for(x) == [n]] for n in numbers}
    for n, found in hits.items():
        if not found:
            notes.append(f"Table {n}: no experiment in the store declares it")
        elif len(found) > 1:
            notes.append(f"Table {n}: several experiments {found}; used {found[0]!r}")
    out = {n: found[0] for n, found in hits.items() if found}
    if not out:
        names = ", ".join(catalog.stages[experiment])
        raise ReportError(f"none of {names} at {uris.mask_uri(uri)} for {experiment!r}")
    return out


def _seed(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return None if pd.isna(value) else value
