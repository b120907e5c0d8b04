"""The best weights as an MLflow model and the data set as an MLflow dataset input
(glattn.tracking.models), against a real SQLite store read back through MlflowClient."""

from __future__ import annotations

import hashlib
import json
import shutil
import zipfile
from dataclasses import asdict
from pathlib import Path

import mlflow
import mlflow.pytorch
import pytest
import torch
from conftest import smoke_cfg, store_client

from glattn.models import build_model
from glattn.tracking import Tracker
from glattn.tracking.models import (
    PT2_FILE,
    WEIGHTS_KEY,
    load_weights,
    log_dataset,
    log_model,
    slim_record,
    use_tracking_uri,
)

pytestmark = pytest.mark.usefixtures("one_thread")
MB = 1 << 20
SPLIT = "image_id,lesion_id,label,split\na,l1,nv,train\nb,l2,mel,val\nc,l3,bcc,test\n"


@pytest.fixture(scope="module")
def logged(tmp_path_factory):
    out = tmp_path_factory.mktemp("model")
    cfg = smoke_cfg(out)
    tracker = Tracker(cfg.tracking)
    tracker.start("resnet18_smoke", {"glattn.role": "job"})
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    weights = log_model(tracker, model, int(cfg.dataset.image_size), register_as="glattn-test")
    (out / "split.csv").write_text(SPLIT)
    counts = {"train": 150, "val": 30, "test": 30}
    log_dataset(tracker, "synthetic", str(out / "data"), out / "split.csv", counts)
    tracker.end()
    return out, cfg, model, weights, tracker.run_id


def batch(cfg, n=3):
    return torch.randn(n, 3, cfg.dataset.image_size, cfg.dataset.image_size)


def test_mlflow_loads_the_model_without_pickle(logged, monkeypatch):
    out, cfg, model, weights, run_id = logged
    monkeypatch.delenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", raising=False)  # the default
    with use_tracking_uri(f"sqlite:///{out}/mlflow.db"):
        loaded = mlflow.pytorch.load_model(weights.model_uri)
        info = mlflow.models.get_model_info(weights.model_uri)
    x = batch(cfg, 3)  # another batch size than the example's: the batch dim is dynamic
    with torch.no_grad():
        assert torch.allclose(loaded(x), model(x), atol=1e-5)
    (spec,) = info.signature.inputs.inputs
    assert list(spec.shape) == [-1, 3, cfg.dataset.image_size, cfg.dataset.image_size]
    assert list(info.signature.outputs.inputs[0].shape) == [-1, 7]
    assert info.saved_input_example_info is not None


def test_model_belongs_to_the_run_and_is_registered(logged):
    out, cfg, model, weights, run_id = logged
    client = store_client(out)
    assert client.get_logged_model(weights.model_id).source_run_id == run_id
    run = client.get_run(run_id)
    assert [m.model_id for m in run.outputs.model_outputs] == [weights.model_id]
    (version,) = client.search_model_versions("name='glattn-test'")
    assert version.run_id == run_id and int(version.version) == weights.version == 1
    assert weights.model_id in version.source  # models:/<model id>


def test_glattn_loading_path_rebuilds_from_config_and_refuses_pickle(
    logged, tmp_path, monkeypatch
):
    out, cfg, model, weights, run_id = logged
    state = load_weights(asdict(weights))
    assert set(state) == set(model.state_dict())
    # a store that is not a local folder: downloaded through the record's tracking URI
    remote = {**asdict(weights), "artifact_uri": weights.model_uri}
    assert weights.tracking_uri == f"sqlite:///{out}/mlflow.db"
    downloaded = load_weights(remote)
    assert all(torch.equal(downloaded[k], state[k]) for k in state)
    fresh = build_model(cfg).eval()
    fresh.load_state_dict(state)  # strict: every tensor, the original names
    x = batch(cfg, 2)
    with torch.no_grad():
        assert torch.equal(fresh(x), model(x))
    # a tampered archive (a pickled record added) is refused even where MLflow would unpickle
    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "true")
    src = Path(weights.artifact_uri.removeprefix("file://"))
    copy = tmp_path / "artifacts"
    shutil.copytree(src, copy)
    with zipfile.ZipFile(copy / PT2_FILE, "a") as archive:
        name = archive.namelist()[0].split("/")[0]
        archive.writestr(f"{name}/data/constants/evil.pkl", b"cos\nsystem\n(S'true'\ntR.")
    with pytest.raises(Exception, match="pickle"):
        load_weights({**asdict(weights), "artifact_uri": f"file://{copy}"})


def test_one_copy_of_the_weights(logged):
    out, cfg, model, weights, run_id = logged
    fp32 = 4 * sum(p.numel() for p in model.parameters())
    folder = Path(weights.artifact_uri.removeprefix("file://"))
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    assert size <= 1.05 * fp32 + 1 * MB, (size / MB, fp32 / MB)
    record = slim_record({"model": model.state_dict(), "config": {"a": 1}}, weights)
    assert "model" not in record and record[WEIGHTS_KEY]["model_uri"] == weights.model_uri
    assert record["config"] == {"a": 1}


def test_dataset_input_of_the_run(logged):
    out, cfg, model, weights, run_id = logged
    (entry,) = store_client(out).get_run(run_id).inputs.dataset_inputs
    ds = entry.dataset
    assert ds.name == "synthetic"
    assert ds.digest == hashlib.sha256(SPLIT.encode()).hexdigest()[:16]
    assert json.loads(ds.source)["uri"].endswith("/data")
    profile = json.loads(ds.profile)
    assert profile == {
        "train_images": 150,
        "val_images": 30,
        "test_images": 30,
        "split_sha256": hashlib.sha256(SPLIT.encode()).hexdigest(),
    }
    assert {t.key: t.value for t in entry.tags} == {"mlflow.data.context": "training"}


@pytest.mark.parametrize("env", [None, "sqlite:////somewhere/else.db"])
def test_tracking_uri_and_environment_put_back(monkeypatch, env):
    """mlflow.set_tracking_uri writes (or deletes) MLFLOW_TRACKING_URI: both come back."""
    import os

    from mlflow.tracking._tracking_service import utils

    if env is None:
        monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    else:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", env)
    before = utils._tracking_uri
    with use_tracking_uri("sqlite:////tmp/glattn-test.db"):
        assert mlflow.get_tracking_uri() == "sqlite:////tmp/glattn-test.db"
    assert os.environ.get("MLFLOW_TRACKING_URI") == env and utils._tracking_uri == before


# ----------------------------------------------------------------------- a wired run
@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One real debug=smoke training run with tracking.register_model set."""
    import logging

    from glattn.job import main

    out = tmp_path_factory.mktemp("run")
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logging.getLogger("glattn").addHandler(handler)
    try:
        metrics = main(smoke_cfg(out, "tracking.register_model=glattn-smoke"))
    finally:
        logging.getLogger("glattn").removeHandler(handler)
    client = store_client(out)
    (run,) = client.search_runs([e.experiment_id for e in client.search_experiments()])
    return out, metrics, run, [r.getMessage() for r in records]


def test_run_logs_its_model_dataset_and_one_copy(trained):
    import glattn
    from glattn.checkpoint import load_checkpoint

    out, metrics, run, _ = trained
    client = store_client(out)
    (output,) = run.outputs.model_outputs
    (version,) = client.search_model_versions("name='glattn-smoke'")
    assert version.run_id == run.info.run_id and output.model_id in version.source
    (entry,) = run.inputs.dataset_inputs
    assert entry.dataset.name == "synthetic"
    profile = json.loads(entry.dataset.profile)
    assert profile["train_images"] + profile["val_images"] + profile["test_images"] == 210
    split = (out / "runs").rglob("split.csv")
    assert profile["split_sha256"] == hashlib.sha256(next(split).read_bytes()).hexdigest()
    # the artifact best.pt is the record; its weights are the model's (one copy)
    artifacts = Path(run.info.artifact_uri.removeprefix("file://"))
    best = artifacts / "checkpoints" / "best.pt"
    assert best.stat().st_size < 1 * MB
    assert "model" not in torch.load(best, weights_only=True)
    assert load_checkpoint(best)["model"]  # filled from the MLflow model
    fp32 = 4 * metrics["model/params_total"]
    experiment = artifacts.parents[1]  # <artifact_location>/<experiment>/: runs and models
    on_disk = sum(p.stat().st_size for p in experiment.rglob("*") if p.is_file())
    on_disk += sum(p.stat().st_size for p in (out / "runs").rglob("*") if p.is_file())
    on_disk += sum(p.stat().st_size for p in (out / "checkpoints").rglob("*") if p.is_file())
    assert on_disk <= 1.2 * fp32 + 5 * MB, (on_disk / MB, fp32 / MB)
    # both loaders, same outputs
    x = torch.randn(2, 3, 32, 32)
    mine = glattn.load_model(run.info.run_id, tracking_uri=f"sqlite:///{out}/mlflow.db")
    with use_tracking_uri(f"sqlite:///{out}/mlflow.db"):
        theirs = mlflow.pytorch.load_model(f"models:/{output.model_id}")
    with torch.no_grad():
        assert torch.allclose(mine(x), theirs(x), atol=1e-5)


def test_run_ends_with_one_summary_line(trained):
    out, metrics, run, messages = trained
    (line,) = [m for m in messages if m.startswith("done: ")]
    assert f"best val (epoch {metrics['best_epoch']})" in line
    assert f"balanced_acc {metrics['best/val/balanced_acc']:.3f}" in line
    assert f"test balanced_acc {metrics['test/balanced_acc']:.3f}" in line
    command = f"mlflow ui --backend-store-uri sqlite:///{out}/mlflow.db, then open "
    assert command in line and line.split(command)[1].startswith("http://127.0.0.1:5000/#/")
    assert "?workflowType=machine_learning&viewStateShareKey=glattn-" in line  # the comparison


def test_a_finished_config_elsewhere_is_reused_from_its_model(trained):
    """Another experiment of the same store reuses the finished run: its best.pt record gets
    the weights from the first run's MLflow model; the new run logs its own model."""
    from glattn.job import main

    out, metrics, run, _ = trained
    again = main(smoke_cfg(out, "tracking.experiment=again"))
    assert "time/train_total_s" not in again  # reused: the source run measured the training
    assert again["test/balanced_acc"] == metrics["test/balanced_acc"]  # the same weights
    client = store_client(out)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    (new,) = [r for r in runs if r.info.run_id != run.info.run_id]
    assert new.info.status == "FINISHED"
    (mine,), (first,) = new.outputs.model_outputs, run.outputs.model_outputs
    assert mine.model_id != first.model_id


def test_an_eval_run_logs_its_data_set_as_evaluation(logged):
    out, cfg, model, weights, run_id = logged
    tracker = Tracker(cfg.tracking)
    tracker.start("resnet18_smoke_eval", {"glattn.role": "job", "task": "eval"})
    log_dataset(
        tracker, "isic2018", str(out / "isic"), out / "split.csv", {"test": 3}, "evaluation"
    )
    log_dataset(
        tracker, "isic2018", str(out / "isic"), out / "split.csv", {"test": 3}, "evaluation"
    )
    tracker.end()
    (entry,) = store_client(out).get_run(tracker.run_id).inputs.dataset_inputs  # once
    assert (
        entry.dataset.name == "isic2018" and json.loads(entry.dataset.profile)["test_images"] == 3
    )
    assert {t.key: t.value for t in entry.tags} == {"mlflow.data.context": "evaluation"}


@pytest.fixture(scope="module")
def described(tmp_path_factory):
    """A run as a job leaves it before its model: params, data set, best and test metrics;
    then a partial model (a kill while logging), then the model logged twice (a retry)."""
    out = tmp_path_factory.mktemp("described")
    cfg = smoke_cfg(out)
    tracker = Tracker(cfg.tracking)
    tracker.start("learnable_gate_s1_resnet18", {"glattn.role": "job", "fusion": "x", "seed": 1})
    tracker.log_params({"optimizer.lr": "0.001", "choice.fusion": "x"})
    (out / "split.csv").write_text(SPLIT)
    log_dataset(tracker, "synthetic", str(out / "data"), out / "split.csv", {"train": 3})
    tracker.log_metrics({"val/balanced_acc": 0.4, "train/loss": 1.0}, step=1)
    tracker.log_metrics({"val/balanced_acc": 0.3, "best/val/balanced_acc": 0.4}, step=2)
    tracker.log_metrics({"test/balanced_acc": 0.35, "test/auc": 0.7}, step=2)
    partial = tracker.client.create_logged_model(
        tracker.ensure_experiment(), name="partial", source_run_id=tracker.run_id
    )
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    size = int(cfg.dataset.image_size)
    first = log_model(tracker, model, size, register_as="glattn-retry")
    again = log_model(tracker, model, size, register_as="glattn-retry")  # a retry: same weights
    tracker.end()
    return out, tracker.run_id, partial.model_id, first, again


def test_a_retried_job_finds_its_model_and_logs_no_second_copy(described):
    out, run_id, partial, first, again = described
    client = store_client(out)
    exp = client.get_run(run_id).info.experiment_id
    models = client.search_logged_models([exp], filter_string=f"source_run_id = '{run_id}'")
    assert [m.model_id for m in models] == [first.model_id] == [again.model_id]
    assert again == first and first.version == 1  # one registry version too
    assert partial not in {m.model_id for m in models}  # the partial one is gone


def test_the_model_is_named_after_its_run_and_carries_params_and_metrics(described):
    out, run_id, _, first, _ = described
    client = store_client(out)
    model = client.get_logged_model(first.model_id)
    assert model.name == "learnable_gate_s1_resnet18"  # the Models tab tells models apart
    assert model.params == {"optimizer.lr": "0.001", "choice.fusion": "x"}
    assert model.tags["fusion"] == "x" and model.tags["seed"] == "1"
    metrics = {m.key: m for m in model.metrics}
    assert set(metrics) == {"best/val/balanced_acc", "test/balanced_acc", "test/auc"}
    assert metrics["test/auc"].value == 0.7 and metrics["test/auc"].step == 2
    (entry,) = client.get_run(run_id).inputs.dataset_inputs  # the model's data set
    assert {(m.dataset_name, m.dataset_digest) for m in metrics.values()} == {
        (entry.dataset.name, entry.dataset.digest)
    }
    # linking the metrics to the model did not add points to the run's history
    assert len(client.get_metric_history(run_id, "test/auc")) == 1
