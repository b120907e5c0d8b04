"""The tracked runs a report reads, through glattn.tracking (its retrying client, its queries,
its one `default_tracking_uri`), as one pandas frame per experiment.

Tag and role names come from `glattn.tracking.names`: job runs carry ``glattn.role=job`` and
the group-choice tags (glattn.groups.FACTORS); a sweep's parent run ``glattn.role=sweep``.
`load_runs` returns the FINISHED job runs of the declared run set (`glattn.report.selection`:
one cell per configuration, debug runs left out unless asked, ``--where`` filters).
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from glattn.errors import UserError
from glattn.groups import FACTORS
from glattn.report import selection
from glattn.report.frames import col
from glattn.tracking import queries
from glattn.tracking.client import make_client
from glattn.tracking.names import JOB_ROLE, PARENT_TAG, ROLE_TAG, SWEEP_ROLE, debug_experiment
from glattn.tracking.uris import default_tracking_uri, mask_uri, sqlite_path

__all__ = [
    "ReportError",
    "default_tracking_uri",
    "load_runs",
    "mask",
    "metric_history",
    "stage_experiments",
    "sweep_runs",
]

#: Further tags the report reads as plain columns.
TAGS = FACTORS + ("seed", "task", "fingerprint", "eval_dataset", "eval_split", "source_run_id")

REPO_ROOT = Path(__file__).resolve().parents[2]


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


def _frame(runs: list, experiment: str) -> pd.DataFrame:
    rows = []
    for r in runs:
        row = {
            "run_id": r.info.run_id,
            "run_name": r.info.run_name,
            "experiment": experiment,
            "experiment_id": r.info.experiment_id,
            "status": r.info.status,
            "start_time": r.info.start_time,
            "artifact_uri": r.info.artifact_uri,
        }
        row.update({f"params.{k}": v for k, v in r.data.params.items()})
        row.update({f"metrics.{k}": v for k, v in r.data.metrics.items()})
        row.update({f"tags.{k}": v for k, v in r.data.tags.items()})
        rows.append(row)
    return pd.DataFrame(rows)


def load_all_runs(uri: str, experiment: str) -> pd.DataFrame:
    """Every run of `experiment` (any status, any role), oldest first."""
    exp = get_experiment(uri, experiment)
    client = client_for(uri)
    return _frame(queries.experiment_runs(client, exp.experiment_id), experiment)


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
    debug = selection.debug_mask(jobs)
    if debug.any() and not include_debug:
        notes.append(f"{int(debug.sum())} debug-preset run(s) left out (--include-debug)")
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
    """The group's tag as a conf/<group>/ option name. run.py tags runs with Hydra's
    choices; a run composed without Hydra's runtime may carry the class name instead, which
    is mapped back through the option's `_target_` (or `name`) param when that is unique."""
    tags = frame[group]
    options = _options(group)
    if not options:
        return tags
    out = tags.copy()
    for idx in tags.index[~tags.isin(list(options["names"]))]:
        for key, table in (("_target_", options["targets"]), ("name", options["by_name"])):
            col = f"params.{group}.{key}"
            value = frame.at[idx, col] if col in frame else None
            if isinstance(value, str) and value in table:
                out[idx] = table[value]
                break
    return out


def _options(group: str) -> dict:
    folder = REPO_ROOT / "conf" / group
    if not folder.is_dir():
        return {}
    from omegaconf import OmegaConf

    names, targets, by_name = set(), {}, {}
    for path in sorted(folder.glob("*.yaml")):
        names.add(path.stem)
        try:
            node = OmegaConf.load(path)
        except Exception:  # an unreadable option file only disables the mapping for it
            continue
        for key, table in (("_target_", targets), ("name", by_name)):
            value = node.get(key) if hasattr(node, "get") else None
            if isinstance(value, str):
                table[value] = None if value in table else path.stem  # None: ambiguous
    return {
        "names": names,
        "targets": {k: v for k, v in targets.items() if v},
        "by_name": {k: v for k, v in by_name.items() if v},
    }


def sweep_runs(uri: str, experiment: str) -> pd.DataFrame:
    """The experiment's parent sweep runs (tag glattn.role=sweep), newest first."""
    frame = load_all_runs(uri, experiment)
    if frame.empty:
        return frame
    sweeps = frame[col(frame, f"tags.{ROLE_TAG}") == SWEEP_ROLE]
    return sweeps.sort_values("start_time", ascending=False).reset_index(drop=True)


def stage_experiments(uri: str, numbers: list[int], notes: list, tables_for) -> dict[int, str]:
    """{table number: experiment name} of the `table<N>_*` experiments in the store
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
            notes.append(f"Table {n}: no experiment named table{n}_* in the store")
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
