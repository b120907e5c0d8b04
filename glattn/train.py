"""The two jobs run.py runs: ``task=train`` (`train`) and ``task=eval`` (`evaluate_checkpoint`:
a trained checkpoint on another data set or split, the paper's cross-data-set Table 5).

A training job builds data, model, loss and optimizer, resumes from the fingerprint's last
checkpoint when there is one, fits, evaluates the best checkpoint on val (and the holdout
test split) and logs everything to MLflow. What every job shares (the checks before any
work, one MLflow run per job, the lock, signals, errors, ``status.json``) is
`glattn.runner`; in a sweep the run nests under the sweep's parent run.
"""

from __future__ import annotations

import logging

import torch
from omegaconf import DictConfig, OmegaConf

from glattn import artifacts as A
from glattn import fit as F
from glattn.checkpoint import best_path, load_checkpoint, load_trained_model
from glattn.config import ConfigError, group_choices, job_overrides, validate_config
from glattn.engine import evaluate
from glattn.losses import build_loss
from glattn.metrics import SCALAR_METRICS
from glattn.optim import build_optimizer, build_scheduler
from glattn.runner import Job, check_model, run_job
from glattn.tracking import git_commit
from glattn.tracking.names import FACTORS, JOB_ROLE, ROLE_TAG

log = logging.getLogger(__name__)

__all__ = ["ConfigError", "evaluate_checkpoint", "main", "train"]


def main(cfg: DictConfig) -> dict:
    """run.py's task: ``task=train`` trains, ``task=eval`` evaluates ``ckpt_path``."""
    validate_config(cfg)
    return evaluate_checkpoint(cfg) if cfg.task == "eval" else train(cfg)


def run_name(cfg: DictConfig, choices: dict) -> str:
    return f"{cfg.name}_{choices['fusion']}_{choices['residual']}_{choices['attention']}"


def _tags(cfg: DictConfig, fingerprint: str, task: str, choices: dict) -> dict:
    return {
        **{k: choices.get(k, "?") for k in FACTORS},
        "seed": cfg.seed,
        "fingerprint": fingerprint,
        "git_commit": git_commit(),
        "overrides": " ".join(job_overrides(cfg)),
        "task": task,
        ROLE_TAG: JOB_ROLE,
    }


# ----------------------------------------------------------------------------- train
def train(cfg: DictConfig) -> dict:
    """Train one configuration; returns its final metrics (README, "MLflow")."""
    return run_job(cfg, "train", _train, preflight=check_model)


def _train(job: Job) -> dict:
    from glattn import build_model
    from glattn.data import build_data

    cfg, choices = job.cfg, group_choices(job.cfg)
    resumable = (job.ckpt_dir / "last.pt").is_file() and not job.fresh
    # a run with epochs logged but no checkpoint to continue them from starts a new run
    job.start_run(
        run_name(cfg, choices),
        _tags(cfg, job.fingerprint, "train", choices),
        continue_run=resumable or not _has_epochs(job.previous),
    )
    ckpt = _resume_checkpoint(job)
    F.seed_everything(int(cfg.seed), bool(cfg.trainer.deterministic))
    rt = F.make_runtime(cfg.trainer)
    data = build_data(cfg, job.run_dir)
    if data.val is None:
        raise ConfigError(
            f"dataset {cfg.dataset.name!r} has no validation split (dataset.val_fraction="
            f"{OmegaConf.select(cfg, 'dataset.val_fraction')}): training monitors "
            f"{cfg.trainer.monitor} on it; expected val_fraction > 0 or folds > 1"
        )
    A.log_class_balance(data)
    model = build_model(cfg)
    _log_summary(model, cfg)
    model.to(rt.device)
    if rt.channels_last:
        model.to(memory_format=torch.channels_last)
    loss_fn = build_loss(cfg.loss, data.train_counts).to(rt.device)
    optimizer = build_optimizer(cfg, model)
    loop = F.Loop(
        cfg,
        torch.compile(model) if cfg.trainer.compile else model,
        loss_fn,
        optimizer,
        build_scheduler(cfg, optimizer),
        rt,
        data.loaders(
            int(cfg.trainer.batch_size), int(cfg.trainer.num_workers), cfg.dataset.sampler
        ),
        tuple(data.class_names),
        job.ckpt_dir,
        job.run_dir,
        job.tracker,
        run_id=job.tracker.run_id,
        choices=choices,
        train_counts=list(data.train_counts),
    )
    if ckpt is not None:
        loop.restore(ckpt)
        loop.state.finished = False  # until this run's final evaluation is logged
        log.info("resuming from %s after epoch %d", job.ckpt_dir / "last.pt", loop.state.epoch)
    loop.fit()
    metrics = _finish(loop, data, model)
    ckpt = load_checkpoint(job.ckpt_dir / "last.pt")
    ckpt["state"]["finished"] = True
    F.atomic_torch_save(ckpt, job.ckpt_dir / "last.pt")
    job.tracker.end("FINISHED")
    log.info("done: %s", {k: round(v, 4) for k, v in metrics.items() if k.startswith("best/")})
    return metrics


def _has_epochs(run) -> bool:
    return run is not None and "val/balanced_acc" in run.data.metrics


def _log_summary(model, cfg: DictConfig) -> None:
    from glattn.models import describe_model

    try:
        log.info("model:\n%s", describe_model(model, int(cfg.dataset.image_size)))
    except Exception as exc:  # the summary is informative only
        log.warning("could not summarise the model: %s", exc)


def _resume_checkpoint(job: Job) -> dict | None:
    last = job.ckpt_dir / "last.pt"
    if last.is_file() and not job.fresh:
        ckpt = load_checkpoint(last)
        if ckpt["state"]["finished"]:  # e.g. the same config in another experiment
            log.info("%s is a finished training: reusing it, no epochs to run", last)
        return ckpt
    for name in ("last.pt", "best.pt"):  # a fresh start must not inherit a stale best.pt
        (job.ckpt_dir / name).unlink(missing_ok=True)
    return None


def _finish(loop: F.Loop, data, model) -> dict:
    """Best checkpoint -> val (+ holdout test) metrics, model info, artifacts."""
    cfg, state, names, run_dir, tracker = (
        loop.cfg,
        loop.state,
        loop.class_names,
        loop.run_dir,
        loop.tracker,
    )
    best = best_path(loop.ckpt_dir)
    model.load_state_dict(load_checkpoint(best)["model"])
    best_epoch = state.best_epoch or state.epoch
    row = state.history[best_epoch - 1]
    metrics = {f"best/val/{m}": row[f"val/{m}"] for m in SCALAR_METRICS}
    metrics["best_epoch"] = best_epoch
    metrics["time/train_total_s"] = float(sum(r["time/epoch_s"] for r in state.history))
    val = evaluate(loop.model, loop.loaders["val"], loop.loss_fn, loop.rt, names)
    metrics.update({f"val/recall_{c}": val[f"recall_{c}"] for c in names})
    files = A.split_report(run_dir, "val", val, data.val.image_ids, names)
    if data.test is not None and loop.loaders.get("test") is not None:
        test = evaluate(loop.model, loop.loaders["test"], loop.loss_fn, loop.rt, names)
        metrics.update(A.split_metrics("test", test, names))
        files += A.split_report(run_dir, "test", test, data.test.image_ids, names)
        log.info("test (holdout): balanced_acc %.4f, auc %.4f", test["balanced_acc"], test["auc"])
    metrics.update(A.model_info(model, cfg, loop.rt.device))
    loop.write_history()  # complete after any resume
    files += [A.plot_curves(run_dir / "training_curves.png", state.history)]
    files += [run_dir / "training_log.csv", run_dir / "split.csv"]
    files.append(A.write_resolved_config(run_dir, cfg))
    if cfg.trainer.gradcam_per_class > 0:
        files.append(_gradcam(loop, data, run_dir))
    tracker.log_metrics(metrics, step=state.epoch)
    tracker.log_artifacts(files)
    tracker.log_artifacts(sorted((run_dir / ".hydra").glob("*.yaml")), "hydra")
    if cfg.tracking.get("log_checkpoint") and tracker.enabled:
        tracker.log_artifact(best, "checkpoints")
    log.info("artifacts in %s", run_dir)
    return metrics


def _gradcam(loop: F.Loop, data, run_dir):
    from glattn.gradcam import gradcam_grid, pick_per_class

    try:
        index = pick_per_class(data.val.labels, int(loop.cfg.trainer.gradcam_per_class))
        model = getattr(loop.model, "_orig_mod", loop.model)
        images = torch.stack([data.val[i][0] for i in index])
        labels = [int(data.val.labels[i]) for i in index]
        return gradcam_grid(
            model, images, labels, loop.class_names, run_dir / "gradcam.png", device=loop.rt.device
        )
    except Exception as exc:  # a picture must not fail a finished training run
        log.warning("Grad-CAM grid failed: %s", exc, exc_info=True)
        return None


# ----------------------------------------------------------------------------- eval
def evaluate_checkpoint(cfg: DictConfig) -> dict:
    """Evaluate ``ckpt_path`` on ``cfg.dataset`` (its ``eval_split``); logs an eval run."""
    return run_job(cfg, "eval", _evaluate, preflight=_eval_preflight)


def _eval_preflight(cfg: DictConfig) -> dict:
    """Load the checkpoint and rebuild its model before any data work."""
    ckpt = load_checkpoint(cfg.ckpt_path, fix="check ckpt_path= (a best.pt or last.pt)")
    model, train_cfg = load_trained_model(ckpt, int(cfg.dataset.num_classes))
    return {"ckpt": ckpt, "model": model, "train_cfg": train_cfg}


def _evaluate(job: Job) -> dict:
    from glattn.data import build_data

    cfg, ckpt = job.cfg, job.context["ckpt"]
    model, train_cfg = job.context["model"], job.context["train_cfg"]
    split = str(cfg.dataset.eval_split)
    choices, eval_dataset = ckpt.get("choices") or {}, group_choices(cfg)["dataset"]
    tags = _tags(train_cfg, job.fingerprint, "eval", choices)
    tags.update(
        source_fingerprint=ckpt.get("fingerprint", "?"),
        eval_dataset=eval_dataset,
        eval_split=split,
        source_run_id=ckpt.get("mlflow_run_id") or "",
        overrides=" ".join(job_overrides(cfg)),
    )
    name = run_name(
        train_cfg, {k: choices.get(k, "?") for k in ("fusion", "residual", "attention")}
    )
    job.start_run(f"{name}_eval_{eval_dataset}_{split}", tags)
    F.seed_everything(int(cfg.seed), bool(cfg.trainer.deterministic))
    if int(train_cfg.dataset.image_size) != int(cfg.dataset.image_size):
        log.warning(
            "the checkpoint was trained at dataset.image_size=%s, evaluating at %s",
            train_cfg.dataset.image_size,
            cfg.dataset.image_size,
        )
    rt = F.make_runtime(cfg.trainer)
    model.to(rt.device)
    data = build_data(cfg, job.run_dir)
    dataset, split_name = (data.test, "test") if data.test is not None else (data.val, "val")
    loaders = data.loaders(int(cfg.trainer.batch_size), int(cfg.trainer.num_workers), "none")
    log.info(
        "evaluating %s on %s (%s, %d images)", cfg.ckpt_path, cfg.dataset.name, split, len(dataset)
    )
    # the training loss, for eval/loss (class-balanced weights from the training counts)
    train_counts = ckpt.get("train_counts") or [1] * len(data.class_names)
    loss_fn = build_loss(train_cfg.loss, train_counts).to(rt.device)
    result = evaluate(model, loaders[split_name], loss_fn, rt, data.class_names)
    names = tuple(data.class_names)
    metrics = A.split_metrics("eval", result, names)
    files = A.split_report(job.run_dir, "eval", result, dataset.image_ids, names)
    files += [A.write_resolved_config(job.run_dir, cfg), job.run_dir / "split.csv"]
    job.tracker.log_metrics(metrics)
    job.tracker.log_artifacts(files)
    job.tracker.log_artifacts(sorted((job.run_dir / ".hydra").glob("*.yaml")), "hydra")
    job.tracker.end("FINISHED")
    log.info(
        "eval on %s/%s: balanced_acc %.4f, acc %.4f, auc %.4f",
        cfg.dataset.name,
        split,
        result["balanced_acc"],
        result["acc"],
        result["auc"],
    )
    return metrics
