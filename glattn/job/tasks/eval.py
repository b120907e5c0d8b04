"""``task=eval``: a trained checkpoint (``ckpt_path``) on another data set or split, the
paper's cross-data-set Table 5, recorded as one eval run named and tagged after the
training (glattn.job.spec).

Read top to bottom: the pre-flight loads the checkpoint and rebuilds its model before any
data work (a bad ``ckpt_path`` or class count fails there, without a run); the lifecycle
finds or starts the job's run; here the data and loss are built (glattn.job.build), the
model evaluated once, with the ISIC 2018 official scorer's rules on an official set, and
the metrics, per-class report, probabilities and confusion matrix logged.
"""

from __future__ import annotations

import logging

from omegaconf import DictConfig, OmegaConf

from glattn.checkpoint import load_checkpoint, load_trained_model, resolve_checkpoint
from glattn.engine import evaluate
from glattn.job import outputs
from glattn.job.build import build_eval_components
from glattn.job.lifecycle import Job, run_job
from glattn.tracking.models import log_dataset
from glattn.tracking.ui import run_hint

log = logging.getLogger(__name__)


def evaluate_checkpoint(cfg: DictConfig) -> dict:
    """Evaluate ``ckpt_path`` on ``cfg.dataset`` (its ``eval_split``); logs an eval run."""
    return run_job(cfg, "eval", _evaluate, preflight=_eval_preflight)


def _eval_preflight(cfg: DictConfig) -> dict:
    """Load the checkpoint and rebuild its model before any data work."""
    path = resolve_checkpoint(cfg.ckpt_path, OmegaConf.select(cfg, "tracking.uri"))
    ckpt = load_checkpoint(path, fix="check ckpt_path= (a best.pt or last.pt, or an MLflow run)")
    model, train_cfg = load_trained_model(ckpt, int(cfg.dataset.num_classes))
    return {"ckpt": ckpt, "model": model, "train_cfg": train_cfg}


def _evaluate(job: Job) -> dict:
    cfg, run_dir, tracker = job.cfg, job.spec.run_dir, job.tracker
    ckpt, model, train_cfg = (job.context[k] for k in ("ckpt", "model", "train_cfg"))
    split = str(cfg.dataset.eval_split)
    job.start_run()
    parts = build_eval_components(cfg, run_dir, model, train_cfg, ckpt)
    data = parts.data
    counts = data.split_frame["split"].value_counts().to_dict()  # the UI's Dataset column
    log_dataset(
        tracker, cfg.dataset.name, cfg.dataset.root, run_dir / "split.csv", counts, "evaluation"
    )
    dataset, split_name = (data.test, "test") if data.test is not None else (data.val, "val")
    log.info(
        "evaluating %s on %s (%s, %d images)", cfg.ckpt_path, cfg.dataset.name, split, len(dataset)
    )
    names = tuple(data.class_names)
    result = evaluate(model, parts.loaders[split_name], parts.loss, parts.runtime, names)
    result = outputs.official_rules(cfg, result, dataset.image_ids, data.class_names)
    metrics = outputs.split_metrics("eval", result, names)
    files = outputs.split_report(run_dir, "eval", result, dataset.image_ids, names)
    files += [outputs.write_resolved_config(run_dir, cfg), run_dir / "split.csv"]
    tracker.log_metrics(metrics)
    tracker.log_artifacts(files)
    tracker.log_artifacts(sorted((run_dir / ".hydra").glob("*.yaml")), "hydra")
    tracker.end("FINISHED")
    if tracker.enabled:
        log.info("open the runs in the MLflow UI: %s", run_hint(tracker, ()))
    log.info(
        "eval on %s/%s: balanced_acc %.4f, acc %.4f, auc %.4f",
        cfg.dataset.name,
        split,
        result["balanced_acc"],
        result["acc"],
        result["auc"],
    )
    return metrics
