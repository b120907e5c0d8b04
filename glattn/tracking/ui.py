"""The MLflow UI link a run, a sweep and the report print: it opens the comparison ready.

``<ui>/#/experiments/<id>/runs?workflowType=machine_learning&viewStateShareKey=<key>`` opens
the experiment's runs table (not the GenAI overview) on a saved view: the swept choices and
the seed as columns, the headline metrics (`HEADLINE`: best validation and test balanced
accuracy and AUC; the table shows Duration and the logged Models itself), grouped by the
first swept choice (mean per group), sorted by `SORT_METRIC`, filtered to the sweep's grid.

Only MLflow's own mechanisms, as its UI (3.17, ``mlflow/server/js``) reads them:

- ``workflowType=machine_learning`` in the URL picks model training over GenAI; the
  experiment tag ``mlflow.experimentKind=custom_model_development`` says the same for the UI's
  experiment lists.
- A view is an experiment tag ``mlflow.sharedViewState.<key>`` (the "Save & share view" and
  "Views" menu's format, ``savedViewEnvelope.ts``): ``{"name", "createdAt", "state"}``, where
  ``state`` is the JSON of the search facets (``searchFilter``, ``orderByKey``,
  ``orderByAsc``) and the runs table's UI state (``selectedColumns``, ``columnWidths``,
  ``groupBy``, ``runsHiddenMode``, ...). The URL names it by ``viewStateShareKey=<key>``
  and carries no search facet (the UI would then ignore the view).
- Column ids are ``<attributes|params|metrics|tags>.`<key>```; ``groupBy`` is
  ``{"aggregateFunction": "average", "groupByKeys": [{"mode": "tag", "groupByData": k}]}``.

The key is a hash of the view, so writing the same view again changes nothing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from urllib.parse import urlsplit

from glattn import groups
from glattn.tracking.names import (
    CHOICE_PARAM_PREFIX,
    FACTORS,
    JOB_ROLE,
    ROLE_TAG,
    grid_member_tag,
    lead_order,
    names_a_config,
)
from glattn.tracking.uris import resolve_uri, ui_command

log = logging.getLogger(__name__)

#: where ``mlflow ui`` serves by default
LOCAL_UI = "http://127.0.0.1:5000"
WORKFLOW_PARAM = "workflowType=machine_learning"
SHARE_PARAM = "viewStateShareKey"
SHARE_TAG_PREFIX = "mlflow.sharedViewState."
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"
#: the headline metrics, shown as columns
HEADLINE = ("best/val/balanced_acc", "best/val/auc", "test/balanced_acc", "test/auc")
#: the runs (and groups, by their mean) are sorted by it, best first
SORT_METRIC = "best/val/balanced_acc"
#: the run name column's width in pixels: long enough for a name's grid keys, seed and more
NAME_WIDTH = 300
#: the runs table's Duration column (always shown; its id is its field)
DURATION_COLUMN = "duration"


def column(kind: str, key: str) -> str:
    """The runs table's column id (``makeCanonicalSortKey``): ``tags.`fusion```."""
    return f"{kind}.`{key}`"


def key_column(key: str) -> tuple[str, str]:
    """(mode, key) of a grid key's column: a factor or the seed is a tag, another group's
    choice its ``choice.<group>`` param, a setting its param."""
    if key in FACTORS or key == "seed":
        return "tag", key
    if key in groups.BY_NAME:
        return "param", f"{CHOICE_PARAM_PREFIX}{key}"
    return "param", key


def view_state(keys: Sequence[str], search_filter: str = "") -> dict:
    """The runs table's state: ``keys`` (what differs, `lead_order`) and the seed as columns,
    the `HEADLINE` metrics, grouped by the first key that is not the seed, sorted by
    `SORT_METRIC` (best first), every run shown in the charts."""
    keys = [k for k in keys if k != "seed"]
    shown = [key_column(k) for k in keys] + [("tag", "seed")]
    chosen = [column("tags" if mode == "tag" else "params", k) for mode, k in shown]
    metrics = [column("metrics", m) for m in HEADLINE]
    models, name = column("attributes", "Models"), column("attributes", "Run Name")
    group = None
    if keys:
        mode, key = key_column(keys[0])
        group = {
            "aggregateFunction": "average",
            "groupByKeys": [{"mode": mode, "groupByData": key}],
        }
    return {
        "searchFilter": search_filter,
        "orderByKey": column("metrics", SORT_METRIC),
        "orderByAsc": False,
        "selectedColumns": [models, *metrics, *chosen],
        # the run name, what differs, the seed, the metrics, the duration first (the UI applies
        # widths to the columns it orders)
        "columnOrder": [name, *chosen, *metrics, DURATION_COLUMN, models],
        "columnWidths": {name: NAME_WIDTH},
        "groupBy": group,
        "groupsExpanded": {},
        "runsHiddenMode": "SHOW_ALL",
        "useGroupedValuesInCharts": True,
        "hideEmptyCharts": True,
    }


def share_key(state: Mapping) -> str:
    """The view's key: ``glattn-`` + a hash of its state (the same view, the same key)."""
    blob = json.dumps(state, sort_keys=True)
    return "glattn-" + hashlib.sha256(blob.encode()).hexdigest()[:12]


def write_view(client, experiment_id: str, name: str, state: Mapping) -> str:
    """Store ``state`` as the experiment's saved view ``name`` (unless it is there already)
    and mark the experiment as model training; returns the view's key."""
    key = share_key(state)
    tags = client.get_experiment(experiment_id).tags
    if f"{SHARE_TAG_PREFIX}{key}" not in tags:
        envelope = {"name": name, "createdAt": int(time.time() * 1000), "state": json.dumps(state)}
        client.set_experiment_tag(experiment_id, f"{SHARE_TAG_PREFIX}{key}", json.dumps(envelope))
    if EXPERIMENT_KIND_TAG not in tags:
        client.set_experiment_tag(experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
    return key


def ui_base(uri: str | None) -> str:
    """The UI's address: a tracking server's own (no user or password), else `LOCAL_UI`
    (``mlflow ui``'s default)."""
    uri = resolve_uri(uri, create_dir=False) or ""
    if uri.startswith(("http://", "https://")):
        parts = urlsplit(uri)
        port = f":{parts.port}" if parts.port else ""
        return f"{parts.scheme}://{parts.hostname}{port}{parts.path.rstrip('/')}"
    return LOCAL_UI


def runs_url(uri: str | None, experiment_id: str, key: str | None = None) -> str:
    """``<ui>/#/experiments/<id>/runs?workflowType=machine_learning[&viewStateShareKey=k]``."""
    query = WORKFLOW_PARAM + (f"&{SHARE_PARAM}={key}" if key else "")
    return f"{ui_base(uri)}/#/experiments/{experiment_id}/runs?{query}"


def hint(uri: str | None, url: str) -> str:
    """What glattn prints: the command that serves the store (none for a tracking server,
    which is its own UI) and the link."""
    if ui_base(uri) != LOCAL_UI:
        return f"open {url}"
    return f"{ui_command(uri)}, then open {url}"


def grid_filter(grid: str) -> str:
    """The runs-table search that keeps a sweep grid's job runs."""
    return f"tags.`{grid_member_tag(grid)}` = 'true'"


def jobs_filter() -> str:
    """The runs-table search that keeps job runs (no sweep parent runs)."""
    return f"tags.`{ROLE_TAG}` = '{JOB_ROLE}'"


def run_view(client, experiment_id: str, uri: str | None, keys: Sequence[str]) -> str:
    """The hint of one run: the experiment's job runs, ``keys`` (the run's lead) as columns
    and the first as the grouping."""
    label = ", ".join(keys) or "all runs"
    key = write_view(client, experiment_id, f"glattn: by {label}", view_state(keys, jobs_filter()))
    return hint(uri, runs_url(uri, experiment_id, key))


def run_hint(tracker, keys: Sequence[str]) -> str | None:
    """`run_view` of a Tracker's run (None with tracking off); a view that cannot be written
    leaves the plain ``mlflow ui`` command (the run is recorded either way)."""
    if not tracker.enabled:
        return None
    try:
        return run_view(tracker.client, tracker.ensure_experiment(), tracker.cfg.uri, keys)
    except Exception as exc:  # noqa: BLE001 - a link must not fail a finished run
        log.warning("MLflow UI view not written (%s)", exc)
        return ui_command(tracker.cfg.uri)


def experiment_hint(uri: str | None, experiment: str) -> str:
    """The hint of an experiment (the report's): its FINISHED job runs, what differs between
    them as columns and grouping; the plain ``mlflow ui`` command if there is nothing."""
    from glattn.tracking.client import make_client

    client = make_client(uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return ui_command(uri)
    search = f"{jobs_filter()} and attributes.status = 'FINISHED'"
    runs = client.search_runs([found.experiment_id], search, max_results=5000)
    keys = varying_keys(runs)
    state = view_state(keys, jobs_filter())
    key = write_view(client, found.experiment_id, f"glattn: {experiment}", state)
    return hint(uri, runs_url(uri, found.experiment_id, key))


def mark_grid(client, grid: str, runs: Iterable) -> None:
    """Tag each run (an MLflow Run) a member of the grid, once."""
    tag = grid_member_tag(grid)
    for run in runs:
        if run.data.tags.get(tag) != "true":
            client.set_tag(run.info.run_id, tag, "true")


def varying_keys(runs: Sequence) -> list[str]:
    """What differs between ``runs`` (MLflow Runs), in `lead_order`: factor tags, other
    groups' ``choice.<group>`` params, then settings every run has (not one option's own,
    as ``fusion.init_logit``) that make another configuration."""

    def differs(values) -> bool:
        return len(set(values)) > 1

    keys = [f for f in FACTORS if differs(r.data.tags.get(f) for r in runs)]
    params = sorted({k for r in runs for k in r.data.params})
    for key in params:
        if not differs(r.data.params.get(key) for r in runs):
            continue
        if key.startswith(CHOICE_PARAM_PREFIX):
            group = key[len(CHOICE_PARAM_PREFIX) :]
            if group in groups.RECORDED_GROUPS and group not in FACTORS:
                keys.append(group)
        elif names_a_config(key) and all(key in r.data.params for r in runs):
            keys.append(key)  # a setting every run has (not one option's own)
    if differs(r.data.tags.get("seed") for r in runs):
        keys.append("seed")
    return lead_order(keys)


def sweep_view(client, experiment_id: str, uri: str | None, grid: str, name: str, runs) -> str:
    """The hint of a sweep: its job runs ``runs`` tagged members of ``grid``, the view
    filtered to them, what differs between them as columns and grouping."""
    runs = list(runs)
    mark_grid(client, grid, runs)
    keys = varying_keys(runs)
    key = write_view(client, experiment_id, f"glattn: {name}", view_state(keys, grid_filter(grid)))
    return hint(uri, runs_url(uri, experiment_id, key))
