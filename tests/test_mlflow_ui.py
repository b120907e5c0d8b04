"""The MLflow UI link (glattn.tracking.ui): the saved runs-table view in the format MLflow's UI
reads, the URL, the grid's membership tag and its search filter, against a real SQLite store.
The real browser opening the link is tests/test_report_mlflow_ui.py (slow)."""

import json

import pytest
from conftest import store_client

from glattn.tracking import names, ui


@pytest.fixture(scope="module")
def one_store(tmp_path_factory):
    out = tmp_path_factory.mktemp("ui_store")
    return out, store_client(out)


@pytest.fixture
def store(one_store, request):
    """A fresh experiment (named after the test) in the module's SQLite store."""
    out, client = one_store
    exp = client.create_experiment(request.node.name, artifact_location=str(out / "art"))
    return out, client, exp


def job_run(client, exp, fusion, seed, **extra):
    tags = {
        names.ROLE_TAG: names.JOB_ROLE,
        "backbone": "resnet18",
        "attention": "cbam",
        "fusion": fusion,
        "residual": "original",
        "loss": "focal",
        "dataset": "synthetic",
        "seed": str(seed),
        **extra,
    }
    run = client.create_run(exp, run_name=f"{fusion}_s{seed}", tags=tags)
    client.log_param(run.info.run_id, "choice.fusion", fusion)
    client.log_param(run.info.run_id, "optimizer.lr", "0.001")
    client.log_metric(run.info.run_id, "best/val/balanced_acc", 0.5 + seed / 10)
    return client.get_run(run.info.run_id)


def test_view_state_columns_grouping_sort_and_filter():
    state = ui.view_state(["fusion", "seed"], "tags.`x` = 'true'")
    cols = state["selectedColumns"]
    assert "tags.`fusion`" in cols and "tags.`seed`" in cols
    assert {f"metrics.`{m}`" for m in ui.HEADLINE} <= set(cols)
    assert state["groupBy"] == {
        "aggregateFunction": "average",
        "groupByKeys": [{"mode": "tag", "groupByData": "fusion"}],
    }
    assert state["orderByKey"] == "metrics.`best/val/balanced_acc`" and not state["orderByAsc"]
    assert state["searchFilter"] == "tags.`x` = 'true'"
    assert state["columnWidths"]["attributes.`Run Name`"] >= 250
    # a group without a factor tag is its choice param; a setting is its param
    assert ui.view_state(["optimizer"])["groupBy"]["groupByKeys"][0] == {
        "mode": "param",
        "groupByData": "choice.optimizer",
    }
    assert "params.`optimizer.lr`" in ui.view_state(["optimizer.lr"])["selectedColumns"]
    assert ui.view_state(["seed"])["groupBy"] is None  # seeds are not a grouping


def test_the_view_is_an_experiment_tag_mlflow_reads_and_is_written_once(store):
    _, client, exp = store
    state = ui.view_state(["fusion"])
    key = ui.write_view(client, exp, "glattn: by fusion", state)
    assert ui.write_view(client, exp, "glattn: by fusion", state) == key  # same view, same key
    tags = client.get_experiment(exp).tags
    views = [k for k in tags if k.startswith("mlflow.sharedViewState.")]
    assert views == [f"mlflow.sharedViewState.{key}"]
    envelope = json.loads(tags[views[0]])  # savedViewEnvelope.ts: name, createdAt, state
    assert envelope["name"] == "glattn: by fusion" and isinstance(envelope["createdAt"], int)
    assert json.loads(envelope["state"]) == state
    assert tags["mlflow.experimentKind"] == "custom_model_development"


def test_url_opens_the_runs_table_in_model_training_mode():
    url = ui.runs_url("sqlite:////tmp/x/mlflow.db", "3", "glattn-abc")
    assert url == (
        "http://127.0.0.1:5000/#/experiments/3/runs"
        "?workflowType=machine_learning&viewStateShareKey=glattn-abc"
    )
    server = ui.runs_url("https://me:secret@mlflow.lab:8443/", "3", "k")
    assert (
        server.startswith("https://mlflow.lab:8443/#/experiments/3/runs?")
        and "secret" not in server
    )
    local = ui.hint("sqlite:////tmp/x/mlflow.db", url)
    assert (
        local.startswith("mlflow ui --backend-store-uri sqlite:////tmp/x/mlflow.db")
        and url in local
    )
    assert "mlflow ui" not in ui.hint("http://127.0.0.1:5005", "http://127.0.0.1:5005/#/x")


def test_sweep_view_tags_its_runs_and_its_filter_finds_exactly_them(store):
    out, client, exp = store
    grid = [job_run(client, exp, f, s) for f in ("original", "learnable_gate") for s in (0, 1)]
    other = job_run(client, exp, "weighted_add", 0)
    text = ui.sweep_view(client, exp, f"sqlite:///{out}/mlflow.db", "g123", "exp/sweep", grid)
    key = text.rsplit("viewStateShareKey=", 1)[1]
    state = json.loads(
        json.loads(client.get_experiment(exp).tags[ui.SHARE_TAG_PREFIX + key])["state"]
    )
    assert state["groupBy"]["groupByKeys"] == [{"mode": "tag", "groupByData": "fusion"}]
    found = client.search_runs([exp], state["searchFilter"])  # the UI searches the same way
    assert {r.info.run_id for r in found} == {r.info.run_id for r in grid}
    assert other.info.run_id not in {r.info.run_id for r in found}
    # the same sweep again: the same link, no second view
    again = ui.sweep_view(client, exp, f"sqlite:///{out}/mlflow.db", "g123", "exp/sweep", grid)
    assert again == text


def test_varying_keys_are_what_differs_in_order():
    class Run:
        def __init__(self, tags, params):
            self.data = type("D", (), {"tags": tags, "params": params})

    runs = [
        Run({"fusion": f, "seed": s, "backbone": "r18"}, {"optimizer.lr": lr, "paths.x": p})
        for f, s, lr, p in [("a", "0", "1", "p"), ("b", "1", "2", "q")]
    ]
    assert ui.varying_keys(runs) == ["fusion", "optimizer.lr", "seed"]  # paths.* never


def test_the_reports_link_groups_an_experiments_finished_job_runs(store):
    out, client, exp = store
    runs = [job_run(client, exp, f, 0) for f in ("original", "cross_attn")]
    for run in runs:
        client.set_terminated(run.info.run_id)
    client.create_run(exp, run_name="sweep", tags={names.ROLE_TAG: names.SWEEP_ROLE})
    uri = f"sqlite:///{out}/mlflow.db"
    text = ui.experiment_hint(uri, client.get_experiment(exp).name)
    assert text.startswith(f"mlflow ui --backend-store-uri {uri}, then open ")
    key = text.rsplit("viewStateShareKey=", 1)[1]
    envelope = json.loads(client.get_experiment(exp).tags[ui.SHARE_TAG_PREFIX + key])
    state = json.loads(envelope["state"])
    assert state["groupBy"]["groupByKeys"][0]["groupByData"] == "fusion"
    assert {r.info.run_name for r in client.search_runs([exp], state["searchFilter"])} == {
        "original_s0",
        "cross_attn_s0",
    }  # job runs only, no sweep parent
    assert ui.experiment_hint(uri, "absent").startswith("mlflow ui --backend-store-uri")
