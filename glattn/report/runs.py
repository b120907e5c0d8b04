"""Load the tracked runs of one MLflow experiment into a pandas frame (mlflow.search_runs).

Tag and role names come from `glattn.tracking.names`: job runs carry tag `glattn.role=job`
and the group-choice tags below; the sweep's parent run carries `glattn.role=sweep`. URIs
are resolved and masked by `glattn.tracking.uris` (the same functions the jobs use).
"""

from __future__ import annotations

import contextlib
import math
import os
from pathlib import Path

import mlflow
import pandas as pd
from mlflow.tracking import MlflowClient

from glattn.tracking.names import FACTORS, JOB_ROLE, PARENT_TAG, ROLE_TAG, SWEEP_ROLE
from glattn.tracking.uris import mask_uri, resolve_uri

#: Further tags the report reads.
TAGS = FACTORS + ("seed", "task", "fingerprint", "eval_dataset", "eval_split", "source_run_id")

REPO_ROOT = Path(__file__).resolve().parents[2]


class ReportError(ValueError):
    """Bad input to the report (unknown experiment, no runs, bad option): one clear message."""


def default_tracking_uri() -> str:
    """The URI the training code writes to: $MLFLOW_TRACKING_URI, else conf/tracking's uri,
    else `sqlite:///<abs cwd>/outputs/mlflow.db` (conf/tracking's default), made absolute."""
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    uri = _configured_uri()
    if uri is None:
        uri = "sqlite:///outputs/mlflow.db"
    return resolve_uri(uri, create_dir=False)


def _configured_uri() -> str | None:
    """The tracking URI of the composed conf/config.yaml (None when it can't be composed)."""
    conf = REPO_ROOT / "conf"
    if not (conf / "tracking").is_dir():
        return None
    try:
        from hydra import compose, initialize_config_dir
        from hydra.core.global_hydra import GlobalHydra

        GlobalHydra.instance().clear()
        with initialize_config_dir(version_base="1.3", config_dir=str(conf)):
            cfg = compose("config")
        GlobalHydra.instance().clear()
        tracking = cfg.get("tracking") or {}
        uri = tracking.get("uri") or tracking.get("tracking_uri")
        return str(uri) if uri else None
    except Exception:  # a half-built config must not stop the report; fall back
        return None


@contextlib.contextmanager
def tracking_uri(uri: str):
    """Temporarily point mlflow's global client (used by mlflow.search_runs) at `uri`,
    restoring the previous URI and $MLFLOW_TRACKING_URI afterwards."""
    from mlflow.tracking._tracking_service.utils import _use_tracking_uri

    with _use_tracking_uri(uri):
        yield


def get_experiment(uri: str, name: str):
    """The experiment called `name`; ReportError listing the known ones otherwise."""
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not Path(uri[len(prefix) :]).is_file():
        raise ReportError(
            f"no MLflow database at {uri[len(prefix) :]} (tracking URI {uri!r}): train "
            "something first, or pass --tracking-uri"
        )
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(name)
    if exp is None:
        known = sorted(e.name for e in client.search_experiments())
        raise ReportError(
            f"MLflow experiment {name!r} not found at tracking URI {uri!r}; "
            f"experiments there: {known or 'none'}"
        )
    return exp


def load_all_runs(uri: str, experiment: str) -> pd.DataFrame:
    """Every run of `experiment` (any status, any role) as mlflow.search_runs returns it."""
    exp = get_experiment(uri, experiment)
    with tracking_uri(uri):
        frame = mlflow.search_runs(experiment_ids=[exp.experiment_id], output_format="pandas")
    return frame


def load_runs(uri: str, experiment: str) -> pd.DataFrame:
    """FINISHED job runs (tag glattn.role=job) of `experiment`, one row per run.

    Adds plain columns for the tags in TAGS (`seed` as int where it parses) and
    `parent_run_id`; metrics stay `metrics.<key>`, params `params.<key>`. When a
    configuration was run more than once for the same seed and target (a rerun; same
    fingerprint, task, eval data set and split), only the latest FINISHED run is kept.
    """
    frame = load_all_runs(uri, experiment)
    if frame.empty:
        raise ReportError(f"MLflow experiment {experiment!r} at {uri!r} has no runs")
    role = _col(frame, f"tags.{ROLE_TAG}")
    jobs = frame[(frame["status"] == "FINISHED") & (role == JOB_ROLE)].copy()
    if jobs.empty:
        counts = frame.assign(role=role).groupby(["status", "role"], dropna=False).size()
        raise ReportError(
            f"MLflow experiment {experiment!r} has no FINISHED runs tagged "
            f"{ROLE_TAG}=job; runs by (status, role): {counts.to_dict()}"
        )
    for tag in TAGS:
        jobs[tag] = _col(jobs, f"tags.{tag}")
    for factor in FACTORS:
        jobs[factor] = option_names(jobs, factor)
    jobs["parent_run_id"] = _col(jobs, f"tags.{PARENT_TAG}")
    jobs["task"] = jobs["task"].fillna("train")
    jobs["seed"] = jobs["seed"].map(_seed)
    jobs = jobs.sort_values("start_time")
    key = ["fingerprint", "task", "eval_dataset", "eval_split", "seed"]
    has_fp = jobs["fingerprint"].notna()
    deduped = jobs[has_fp].drop_duplicates(subset=key, keep="last")
    jobs = pd.concat([deduped, jobs[~has_fp]]).sort_values("start_time")
    return jobs.reset_index(drop=True)


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
    sweeps = frame[_col(frame, f"tags.{ROLE_TAG}") == SWEEP_ROLE]
    return sweeps.sort_values("start_time", ascending=False).reset_index(drop=True)


def metric_history(uri: str, run_ids, key: str) -> dict[str, dict[int, float]]:
    """{run_id: {step: value}} of metric `key` (per-epoch metrics use step=epoch)."""
    client = MlflowClient(uri)
    out = {}
    for run_id in run_ids:
        points = client.get_metric_history(run_id, key)
        out[run_id] = {int(m.step): float(m.value) for m in points}
    return out


def _col(frame: pd.DataFrame, name: str) -> pd.Series:
    if name in frame.columns:
        return frame[name].where(frame[name].notna(), None)
    return pd.Series([None] * len(frame), index=frame.index, dtype=object)


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
