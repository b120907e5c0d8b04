"""The end of a training job: `final_evaluation` (the best checkpoint on val and the holdout
test split, model size and speed, the run folder's files as MLflow artifacts, Grad-CAM) and
`keep_one_copy` (the final ``best.pt``, uploaded as the run's artifact
``checkpoints/best.pt``; the run ends FINISHED; then what a finished run does not need is
deleted)."""

from __future__ import annotations

import logging
import time
from dataclasses import asdict

import torch
from omegaconf import OmegaConf

from glattn.checkpoint import BEST_ARTIFACT, atomic_save, load_checkpoint, load_trained_model, slim
from glattn.engine import evaluate
from glattn.job import outputs
from glattn.job.build import Components
from glattn.job.callbacks import write_history
from glattn.job.lifecycle import Job
from glattn.job.reuse import without_measurements
from glattn.job.trainer import FitState, Trainer
from glattn.metrics import SCALAR_METRICS
from glattn.tracking.models import WEIGHTS_KEY, LoggedWeights, log_model, slim_record

log = logging.getLogger(__name__)


def final_evaluation(job: Job, trainer: Trainer, parts: Components, best: dict) -> dict:
    """Best checkpoint -> val (+ holdout test) metrics, model info, artifacts; a reused
    training (``job.reused_from``) logs no timing, throughput or memory: its source's."""
    cfg, state, names, run_dir, tracker = (
        job.cfg,
        trainer.state,
        trainer.class_names,
        job.spec.run_dir,
        job.tracker,
    )
    data, model = parts.data, parts.model
    model.load_state_dict(best["model"])
    best_epoch = state.best_epoch or state.epoch
    row = state.history[best_epoch - 1]
    metrics = {f"best/val/{m}": row[f"val/{m}"] for m in SCALAR_METRICS}
    metrics["best_epoch"] = best_epoch
    reused = job.reused_from is not None
    if not reused:
        metrics["time/train_total_s"] = float(sum(r["time/epoch_s"] for r in state.history))
    val = evaluate(trainer.model, trainer.loaders["val"], trainer.loss_fn, trainer.rt, names)
    metrics.update({f"val/recall_{c}": val[f"recall_{c}"] for c in names})
    files = outputs.split_report(run_dir, "val", val, data.val.image_ids, names)
    if data.test is not None and trainer.loaders.get("test") is not None:
        test = evaluate(trainer.model, trainer.loaders["test"], trainer.loss_fn, trainer.rt, names)
        test = outputs.official_rules(cfg, test, data.test.image_ids, names)
        metrics.update(outputs.split_metrics("test", test, names))
        files += outputs.split_report(run_dir, "test", test, data.test.image_ids, names)
        log.info("test (holdout): balanced_acc %.4f, auc %.4f", test["balanced_acc"], test["auc"])
    metrics.update(outputs.model_info(model, cfg, trainer.rt.device))
    write_history(run_dir, state.history)  # complete after any resume
    files += [outputs.plot_curves(run_dir / "training_curves.png", state.history)]
    files += [run_dir / "training_log.csv", run_dir / "split.csv"]
    files.append(outputs.write_resolved_config(run_dir, cfg))
    if cfg.trainer.gradcam_per_class > 0:
        start = time.perf_counter()
        files.append(_gradcam(job, trainer, data))
        metrics["time/gradcam_s"] = time.perf_counter() - start  # at most one epoch's time
    if reused:
        metrics = without_measurements(metrics)
    tracker.log_metrics(metrics, step=state.epoch)
    tracker.log_artifacts(files)
    tracker.log_artifacts(sorted((run_dir / ".hydra").glob("*.yaml")), "hydra")
    log.info("artifacts in %s", run_dir)
    return metrics


def _gradcam(job: Job, trainer: Trainer, data):
    from glattn.gradcam import gradcam_grid, pick_per_class

    try:
        index = pick_per_class(data.val.labels, int(job.cfg.trainer.gradcam_per_class))
        images = torch.stack([data.val[i][0] for i in index])
        labels = [int(data.val.labels[i]) for i in index]
        return gradcam_grid(
            trainer.module,
            images,
            labels,
            trainer.class_names,
            job.spec.run_dir / "gradcam.png",
            device=trainer.rt.device,
        )
    except Exception as exc:  # a picture must not fail a finished training run
        log.warning("Grad-CAM grid failed: %s", exc, exc_info=True)
        return None


def keep_one_copy(job: Job, state: FitState, best: dict, metrics: dict) -> None:
    """Write the final best.pt (weights, config, loop state, metrics; no optimizer), upload
    it as the run's artifact ``checkpoints/best.pt``, end the run FINISHED, then delete what
    a finished run does not need: last.pt (unless trainer.keep_last) and the local best.pt
    when the artifact store is a local folder (the artifact is the one copy). With
    ``tracking.log_model`` the weights go into the run's MLflow model and the uploaded
    best.pt is the rest of the record, naming that model (glattn.tracking.models)."""
    cfg, tracker, ckpt_dir = job.cfg, job.tracker, job.spec.ckpt_dir
    final_state = asdict(state)
    final_state["finished"] = True
    final = {
        **slim(best),
        "state": final_state,
        "metrics": {k: float(v) for k, v in metrics.items()},
        "mlflow_run_id": tracker.run_id,
        "fingerprint": job.spec.fingerprint,
    }
    final.pop(WEIGHTS_KEY, None)  # a reused run's record named that run's model: this has its own
    atomic_save(final, ckpt_dir / "best.pt")
    uploaded = bool(cfg.tracking.get("log_checkpoint")) and tracker.enabled
    logged = _log_model(job, final) if uploaded else None
    if uploaded:
        if logged is not None:  # the MLflow model holds the weights; best.pt the rest
            atomic_save(slim_record(final, logged), ckpt_dir / "best.pt")
        tracker.log_artifact(ckpt_dir / "best.pt", BEST_ARTIFACT.rsplit("/", 1)[0])
    keep_last = bool(OmegaConf.select(cfg, "trainer.keep_last", default=False))
    if keep_last and (ckpt_dir / "last.pt").is_file():
        last = load_checkpoint(ckpt_dir / "last.pt")
        last["state"]["finished"] = True
        atomic_save(last, ckpt_dir / "last.pt")
    tracker.end("FINISHED")
    # after FINISHED: a kill in between leaves files, never a run without its weights
    if not keep_last:
        (ckpt_dir / "last.pt").unlink(missing_ok=True)
    artifacts = tracker.artifact_uri() if uploaded else None
    if artifacts and artifacts.startswith("file:"):
        (ckpt_dir / "best.pt").unlink(missing_ok=True)
        if logged is not None:
            log.info("weights: MLflow model %s (the one copy)", logged.model_uri)
        else:
            log.info("weights: MLflow artifact %s/%s (the one copy)", artifacts, BEST_ARTIFACT)
    else:
        log.info("weights: %s", ckpt_dir / "best.pt")


def _log_model(job: Job, final: dict) -> LoggedWeights | None:
    """The best weights as the run's MLflow model (``tracking.log_model``; registered as
    ``tracking.register_model`` when set), rebuilt on the CPU from the record's own config.
    None when off or when the export fails: then best.pt keeps the weights (a warning)."""
    cfg = job.cfg
    if not OmegaConf.select(cfg, "tracking.log_model", default=True):
        return None
    try:
        model, train_cfg = load_trained_model(final)
        name = OmegaConf.select(cfg, "tracking.register_model", default=None)
        return log_model(job.tracker, model, int(train_cfg.dataset.image_size), name)
    except Exception as exc:  # e.g. torch.export cannot trace a new component
        log.warning("MLflow model not logged (%s): best.pt keeps the weights", exc, exc_info=True)
        return None


def summary_line(metrics: dict, ui: str | None = None, reused_from: str | None = None) -> str:
    """The run's last line: ``done: best val (epoch 3) balanced_acc 0.913 acc 0.900 ... |
    test balanced_acc 0.859 ... | mlflow ui --backend-store-uri ...``; ``reused (not
    trained) from <source>: best val ...`` for a reused training."""
    names = [m for m in SCALAR_METRICS if f"best/val/{m}" in metrics]
    val = " ".join(f"{m} {metrics[f'best/val/{m}']:.3f}" for m in names)
    head = f"reused (not trained) from {reused_from}" if reused_from else "done"
    parts = [f"{head}: best val (epoch {int(metrics.get('best_epoch', 0))}) {val}"]
    test = [m for m in names if f"test/{m}" in metrics]
    if test:
        parts.append("test " + " ".join(f"{m} {metrics[f'test/{m}']:.3f}" for m in test))
    if ui:
        parts.append(ui)
    return " | ".join(parts)
