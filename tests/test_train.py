"""End to end through the compose API (debug=smoke, temporary dirs): the MLflow run holds
the params, tags, metrics and artifacts README "MLflow" names; eval runs; the Grad-CAM CLI;
the non-finite-loss path; bad config values; the sweep hooks (nesting, skip, status.json).
"""

import json
import math
from pathlib import Path

import pytest
from conftest import smoke_cfg, store_client
from hydra.core.hydra_config import HydraConfig
from hydra.errors import MissingConfigException
from mlflow.tracking import MlflowClient
from omegaconf import open_dict

from glattn.config import ConfigError
from glattn.data import CLASS_NAMES
from glattn.engine import NonFiniteLossError
from glattn.job import main

CLASSES = CLASS_NAMES


pytestmark = pytest.mark.usefixtures("one_thread")


client = store_client


def runs(out: Path, experiment: str = "glattn-debug"):  # debug=smoke: <experiment>-debug
    c = client(out)
    exp = c.get_experiment_by_name(experiment)
    return c.search_runs([exp.experiment_id], order_by=["attributes.start_time ASC"])


def artifact_paths(c: MlflowClient, run_id: str, path: str | None = None) -> set[str]:
    out = set()
    for item in c.list_artifacts(run_id, path):
        out |= artifact_paths(c, run_id, item.path) if item.is_dir else {item.path}
    return out


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("train")
    cfg = smoke_cfg(out, hydra=True)
    metrics = main(cfg)
    (run,) = runs(out)
    return out, cfg, metrics, run


def test_run_has_params_tags_and_metrics(trained):
    out, cfg, metrics, run = trained
    assert run.info.status == "FINISHED"
    assert run.info.run_name == "resnet18_cbam_original_original_synthetic_s0_smoke"
    tags = run.data.tags
    expected = dict(
        backbone="resnet18",
        attention="cbam",
        fusion="original",
        residual="original",
        loss="focal",
        dataset="synthetic",
        seed="0",
        task="train",
    )
    assert {k: tags[k] for k in expected} == expected
    assert tags["glattn.role"] == "job" and len(tags["fingerprint"]) == 12
    assert tags["git_commit"] and "mlflow.parentRunId" not in tags
    params = run.data.params
    assert params["optimizer.lr"] == "0.001" and params["trainer.batch_size"] == "16"
    assert run.data.tags["class.fusion"] == cfg.fusion._target_ and "seed" not in params
    assert params["loss.gamma"] == "2.0" and not any(k.startswith("hydra") for k in params)
    m = run.data.metrics
    for key in (
        "best/val/balanced_acc",
        "best/val/acc",
        "best/val/macro_f1",
        "best/val/auc",
        "best_epoch",
        "test/balanced_acc",
        "test/auc",
        "time/train_total_s",
        "model/gflops",
        "perf/infer_latency_ms",
        "perf/peak_mem_mb",
        "model/params_total",
        "model/params_glsa",
        "model/params_head",
        "val/recall_mel",
        "test/recall_vasc",
    ):
        assert key in m and math.isfinite(m[key]), key
    assert m["model/gflops"] > 0 and m["model/params_total"] > 1e6
    assert metrics["best/val/balanced_acc"] == pytest.approx(m["best/val/balanced_acc"])
    history = client(out).get_metric_history(run.info.run_id, "val/balanced_acc")
    assert [h.step for h in history] == [1]
    for key in (
        "train/loss",
        "train/acc",
        "val/loss",
        "val/acc",
        "val/macro_f1",
        "val/auc",
        "lr",
        "time/epoch_s",
        "perf/train_img_s",
    ):
        assert key in m, key


def test_run_artifacts_and_run_dir(trained):
    out, cfg, metrics, run = trained
    c = client(out)
    names = artifact_paths(c, run.info.run_id)
    for name in (
        "val_probabilities.csv",
        "val_confusion_matrix.png",
        "val_per_class_report.csv",
        "test_probabilities.csv",
        "training_curves.png",
        "training_log.csv",
        "split.csv",
        "gradcam.png",
        "config_resolved.yaml",
        "checkpoints/best.pt",
    ):
        assert name in names, (name, names)
    assert run.info.artifact_uri.startswith((out / "mlartifacts").as_uri())
    assert not (Path.cwd() / "mlruns").exists()
    probs = Path(c.download_artifacts(run.info.run_id, "val_probabilities.csv", str(out)))
    import pandas as pd

    frame = pd.read_csv(probs)
    assert list(frame.columns) == ["image", "MEL", "NV", "BCC", "AKIEC", "BKL", "DF", "VASC"]
    assert frame.iloc[:, 1:].sum(axis=1).round(4).eq(1).all()
    run_dir = next((out / "runs").iterdir())
    status = json.loads((run_dir / "status.json").read_text())
    assert status == {
        "status": "finished",
        "error": None,
        "run_id": run.info.run_id,
        "fingerprint": run.data.tags["fingerprint"],
    }
    assert len(pd.read_csv(run_dir / "training_log.csv")) == 1
    assert "DEBUG" in (run_dir / "debug.log").read_text()
    ckpt_dir = out / "checkpoints" / run.data.tags["fingerprint"]
    # FINISHED: the MLflow artifact is the one copy of the weights; no last.pt, no .tmp
    assert {p.name for p in ckpt_dir.iterdir()} == {".lock"}


def test_eval_task_logs_an_eval_run(trained):
    out, cfg, metrics, run = trained
    ckpt = f"runs:/{run.info.run_id}/checkpoints/best.pt"  # the run's artifact
    eval_metrics = main(smoke_cfg(out, "task=eval", f"ckpt_path='{ckpt}'", hydra=True))
    assert 0 <= eval_metrics["eval/balanced_acc"] <= 1
    (ev,) = [r for r in runs(out) if r.data.tags.get("task") == "eval"]
    assert ev.info.status == "FINISHED"
    assert ev.data.tags["source_run_id"] == run.info.run_id
    assert ev.data.tags["eval_dataset"] == "synthetic"
    assert ev.data.tags["eval_split"] == "holdout" and ev.data.tags["fusion"] == "original"
    # the holdout test split is what eval_split=holdout evaluates: same model, same numbers
    assert ev.data.metrics["eval/balanced_acc"] == pytest.approx(metrics["test/balanced_acc"])
    assert all(f"eval/recall_{c}" in ev.data.metrics for c in CLASSES)


def test_finished_checkpoint_is_reused_in_another_experiment(trained):
    out, cfg, metrics, run = trained
    again = main(smoke_cfg(out, "tracking.experiment=reuse", hydra=True))
    (new,) = runs(out, "reuse-debug")
    assert new.info.run_id != run.info.run_id and new.info.status == "FINISHED"
    assert new.data.tags["fingerprint"] == run.data.tags["fingerprint"]
    for key in ("best/val/balanced_acc", "test/balanced_acc", "best_epoch"):
        assert again[key] == metrics[key] == new.data.metrics[key]
    history = client(out).get_metric_history(new.info.run_id, "val/balanced_acc")
    assert [h.step for h in history] == [1]  # the epoch history was logged, not retrained
    assert {**new.data.params, "tracking.experiment": "glattn-debug"} == run.data.params
    assert "time/train_total_s" not in again  # reused: the source run measured the training


def test_gradcam_cli_on_given_images(trained, tmp_path):
    from glattn.gradcam import main as gradcam_main

    out, cfg, metrics, run = trained
    ckpt = run.info.run_id  # glattn.load_model: a run id in the store of tracking_uri
    images = sorted((out / "data").rglob("*.jpg"))[:3]
    target = tmp_path / "cam.png"
    uri = f"sqlite:///{out}/mlflow.db"
    args = [ckpt, *map(str, images), "--out", str(target), "--tracking-uri", uri]
    assert gradcam_main(args) == 0
    assert target.stat().st_size > 1000
    with pytest.raises(SystemExit, match="glattn gradcam CKPT IMAGE"):  # the older form
        gradcam_main([f"ckpt_path={ckpt}"])


def test_non_finite_loss_fails_clearly_and_marks_run_failed(trained):
    out = trained[0]
    cfg = smoke_cfg(out, "loss.alpha=nan", "tracking.experiment=nan_test", hydra=True)
    with pytest.raises(NonFiniteLossError, match="non-finite training loss"):
        main(cfg)
    (run,) = runs(out, "nan_test-debug")
    assert run.info.status == "FAILED"
    statuses = [json.loads(p.read_text()) for p in (out / "runs").glob("*/status.json")]
    failed = [s for s in statuses if s["run_id"] == run.info.run_id]
    assert failed[0]["status"] == "failed" and "NonFiniteLossError" in failed[0]["error"]


@pytest.mark.parametrize(
    "override, message",
    [
        ("optimizer.lr=-0.1", "optimizer.lr=-0.1: expected a number > 0"),
        ("trainer.batch_size=0", "trainer.batch_size=0: expected an integer >= 1"),
        ("trainer.max_epochs=0", "trainer.max_epochs=0"),
        ("scheduler._target_=torch.optim.lr_scheduler.Bogus", "scheduler._target_="),
        ("trainer.monitor=val/bogus", "expected one of val/loss, val/acc, val/balanced_acc"),
        ("trainer.amp=fp8", "trainer.amp='fp8': expected one of"),
        ("trainer.device=gpu", "trainer.device='gpu'"),
        ("task=predict", "task='predict'"),
        ("task=eval", "ckpt_path=None"),
    ],
)
def test_bad_config_values_fail_before_any_work(tmp_path, override, message):
    with pytest.raises(ConfigError, match="invalid config") as err:
        main(smoke_cfg(tmp_path, override))
    assert message in str(err.value)
    assert not any(tmp_path.iterdir())  # nothing built, nothing written


def test_unknown_scheduler_option_lists_the_choices(tmp_path):
    with pytest.raises(MissingConfigException, match="scheduler/bogus") as err:
        smoke_cfg(tmp_path, "scheduler=bogus")
    assert all(name in str(err.value) for name in ("cosine", "none", "plateau"))


def _as_multirun_job(cfg, sweep_dir: Path, num: int):
    """Make HydraConfig look like job `num` of a multirun in `sweep_dir` (as Hydra does)."""
    from hydra.types import RunMode

    with open_dict(cfg):
        cfg.hydra.mode = RunMode.MULTIRUN
        cfg.hydra.sweep.dir = str(sweep_dir)
        cfg.hydra.job.num = num
        cfg.hydra.runtime.output_dir = str(sweep_dir / str(num))
        cfg.hydra.overrides.task = ["seed=1"]
    HydraConfig.instance().set_config(cfg)
    return cfg


def test_multirun_job_nests_under_parent_then_is_skipped(trained, tmp_path):
    out = trained[0]
    c = client(out)
    exp = c.get_experiment_by_name("glattn-debug").experiment_id
    parent = c.create_run(exp, run_name="sweep", tags={"glattn.role": "sweep"}).info.run_id
    sweep_dir = tmp_path / "sweep"
    sweep_dir.mkdir()
    (sweep_dir / "parent_run_id").write_text(parent + "\n")
    try:
        cfg = _as_multirun_job(smoke_cfg(out, "seed=1", hydra=True), sweep_dir, 0)
        first = main(cfg)
        job = [r for r in runs(out) if r.data.tags.get("mlflow.parentRunId") == parent]
        assert len(job) == 1 and job[0].data.tags["overrides"] == "seed=1"
        assert json.loads((sweep_dir / "0" / "status.json").read_text())["status"] == "finished"
        cfg = _as_multirun_job(smoke_cfg(out, "seed=1", hydra=True), sweep_dir, 1)
        again = main(cfg)  # same fingerprint, FINISHED: skipped
        status = json.loads((sweep_dir / "1" / "status.json").read_text())
        assert status["status"] == "skipped" and status["run_id"] == job[0].info.run_id
        assert again["best/val/balanced_acc"] == pytest.approx(first["best/val/balanced_acc"])
        assert (
            len(
                [
                    r
                    for r in runs(out)
                    if r.data.tags.get("fingerprint") == job[0].data.tags["fingerprint"]
                ]
            )
            == 1
        )
    finally:
        HydraConfig.instance().cfg = None
