"""The two jobs run.py runs: ``task=train`` (`train`) and ``task=eval`` (`evaluate_checkpoint`:
a trained checkpoint on another data set or split, the paper's cross-data-set Table 5).

A training job builds data, model, loss and optimizer, resumes from the fingerprint's last
checkpoint when there is one (or from ``ckpt_path``: its own resumable checkpoint resumes,
any other checkpoint fine-tunes, i.e. its weights only, training anew), fits, evaluates the
best checkpoint on val (and the holdout test split) and logs everything to MLflow. A
finished run keeps one copy of its best weights, the MLflow artifact
``checkpoints/best.pt`` (`glattn.checkpoint`); a config that finished in another experiment
of the store reuses that run's weights instead of training again. What every job shares
(the checks before any work, one MLflow run per job, the lock, signals, errors,
``status.json``) is `glattn.runner`; in a sweep the run nests under the sweep's parent run.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from glattn import fit as F
from glattn.checkpoint import (
    BEST_ARTIFACT,
    CheckpointError,
    atomic_save,
    best_path,
    load_checkpoint,
    load_trained_model,
    resolve_checkpoint,
    slim,
)
from glattn.config import ConfigError, group_choices, job_overrides, validate_config
from glattn.engine import evaluate
from glattn.job import outputs as A
from glattn.losses import build_loss
from glattn.metrics import SCALAR_METRICS
from glattn.optim import build_optimizer, build_scheduler
from glattn.runner import Job, check_model, mask_hydra_output, run_job
from glattn.tracking import finished_job_run, git_commit, ui_command
from glattn.tracking.names import (
    CHOICE_PARAM_PREFIX,
    FACTORS,
    JOB_ROLE,
    ROLE_TAG,
    TAGS_TAG,
    USER_TAG_PREFIX,
)

log = logging.getLogger(__name__)

__all__ = ["ConfigError", "evaluate_checkpoint", "main", "train"]


def main(cfg: DictConfig) -> dict:
    """run.py's task: ``task=train`` trains, ``task=eval`` evaluates ``ckpt_path``."""
    mask_hydra_output()
    validate_config(cfg)
    return evaluate_checkpoint(cfg) if cfg.task == "eval" else train(cfg)


#: The group choices of a run name, in order; then ``_s{seed}``.
NAME_GROUPS = ("backbone", "attention", "fusion", "residual", "dataset")


def run_name(cfg: DictConfig, choices: dict) -> str:
    """``{backbone}_{attention}_{fusion}_{residual}_{dataset}_s{seed}``, after ``name_`` when
    ``name`` is set: unique within every grid of experiments/ (a test composes them all)."""
    base = "_".join(str(choices.get(k, "?")) for k in NAME_GROUPS) + f"_s{cfg.seed}"
    prefix = OmegaConf.select(cfg, "name", default=None)
    return f"{prefix}_{base}" if prefix else base


def choice_params(choices: dict) -> dict:
    """Each config group's choice as a short param: ``choice.fusion=cross_attn``, ..."""
    return {f"{CHOICE_PARAM_PREFIX}{k}": str(v) for k, v in choices.items()}


def user_tags(cfg: DictConfig) -> dict:
    """``tags=[a,b]`` -> MLflow tags ``tags=a,b``, ``tag.a=true``, ``tag.b=true``."""
    tags = [str(t) for t in (OmegaConf.select(cfg, "tags", default=None) or [])]
    if not tags:
        return {}
    return {TAGS_TAG: ",".join(tags), **{f"{USER_TAG_PREFIX}{t}": "true" for t in tags}}


def _tags(cfg: DictConfig, fingerprint: str, task: str, choices: dict) -> dict:
    return {
        **user_tags(cfg),
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
    tags = _tags(cfg, job.fingerprint, "train", choices)
    try:
        ckpt, kind = _starting_point(job)
    except CheckpointError:  # the run records the failure and its message
        job.start_run(run_name(cfg, choices), tags)
        raise
    if kind == "finetune":
        tags["init_from"] = str(cfg.ckpt_path)
    # a run with epochs logged but no checkpoint to continue them from starts a new run
    job.start_run(
        run_name(cfg, choices),
        tags,
        continue_run=kind in ("resume", "finished") or not _has_epochs(job.previous),
    )
    job.tracker.log_params(choice_params(choices))
    F.seed_everything(int(cfg.seed), bool(cfg.trainer.deterministic))
    rt = F.make_runtime(cfg.trainer)
    data = build_data(cfg, job.run_dir)
    rt.augment = data.augmenter()  # dataset.augment=device: batched on rt.device, else None
    job.tracker.log_artifact(data.save_preview(job.run_dir / "augment_preview.png"))
    if data.val is None:
        raise ConfigError(
            f"dataset {cfg.dataset.name!r} has no validation split (dataset.val_fraction="
            f"{OmegaConf.select(cfg, 'dataset.val_fraction')}): training monitors "
            f"{cfg.trainer.monitor} on it; expected val_fraction > 0 or folds > 1"
        )
    A.log_class_balance(data)
    model = build_model(cfg)
    if kind == "finetune":
        _load_weights(model, ckpt["model"], cfg.ckpt_path)
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
        stateful={"augment": rt.augment} if rt.augment is not None else {},
    )
    if kind in ("resume", "finished"):
        loop.restore(ckpt)
        loop.state.finished = False  # until this run's final evaluation is logged
        if kind == "resume":
            log.info("resuming after epoch %d", loop.state.epoch)
    loop.fit()
    if kind == "finished" and "optimizer" not in ckpt:
        best = ckpt  # a finished run's best.pt (local or its MLflow artifact)
    else:
        best = load_checkpoint(best_path(job.ckpt_dir))
    metrics = _finish(loop, data, model, best)
    _keep_one_copy(job, loop, best, metrics)
    log.info("done: %s", {k: round(v, 4) for k, v in metrics.items() if k.startswith("best/")})
    if job.tracker.enabled:
        log.info("open the runs in the MLflow UI: %s", ui_command(cfg.tracking.uri))
    return metrics


def _has_epochs(run) -> bool:
    return run is not None and "val/balanced_acc" in run.data.metrics


def _log_summary(model, cfg: DictConfig) -> None:
    from glattn.models import describe_model

    try:
        log.info("model:\n%s", describe_model(model, int(cfg.dataset.image_size)))
    except Exception as exc:  # the summary is informative only
        log.warning("could not summarise the model: %s", exc)


def _starting_point(job: Job) -> tuple[dict | None, str | None]:
    """Where training starts: ``(checkpoint, kind)``, kind one of

    - ``"finished"``: this config already finished (in another experiment of the store, or
      with tracking off): its best weights and loop state, no epochs to run;
    - ``"resume"``: the fingerprint's ``last.pt``, or ``ckpt_path`` when that is this
      config's own resumable checkpoint;
    - ``"finetune"``: ``ckpt_path`` is any other checkpoint: its weights, trained anew;
    - ``None``: from scratch (stale files of the fingerprint removed).
    """
    cfg, last = job.cfg, job.ckpt_dir / "last.pt"
    if not job.fresh:
        best = _finished_best(job)
        if best is not None:
            return best, "finished"
        if last.is_file():
            ckpt = load_checkpoint(last)
            if ckpt["state"]["finished"]:  # trainer.keep_last=true, no best.pt left
                log.info("%s is a finished training: reusing it, no epochs to run", last)
                return ckpt, "finished"
            log.info("resuming from %s", last)
            return ckpt, "resume"
    ref = OmegaConf.select(cfg, "ckpt_path", default=None)
    ckpt = None
    if ref:
        path = resolve_checkpoint(ref, OmegaConf.select(cfg, "tracking.uri"))
        ckpt = load_checkpoint(path, fix="check ckpt_path= (a checkpoint file or MLflow run)")
        own = ckpt.get("fingerprint") == job.fingerprint and "optimizer" in ckpt
        if own and not ckpt["state"]["finished"]:
            log.info("ckpt_path=%s is this config's own checkpoint: resuming from it", ref)
            return ckpt, "resume"
    for name in ("last.pt", "best.pt"):  # a fresh start must not inherit a stale best.pt
        if ckpt is None or (job.ckpt_dir / name).resolve() != Path(path).resolve():
            (job.ckpt_dir / name).unlink(missing_ok=True)
    if ckpt is not None:
        log.info(
            "ckpt_path=%s: fine-tuning from its weights (epoch %s of fingerprint %s); "
            "optimizer, schedule and epochs start anew",
            ref,
            ckpt.get("epoch", "?"),
            ckpt.get("fingerprint", "?"),
        )
        return ckpt, "finetune"
    return None, None


def _finished_best(job: Job) -> dict | None:
    """The best checkpoint of this config's finished training: the local best.pt when it
    holds final metrics (tracking off, or a remote artifact store), else the artifact of the
    store's FINISHED run with this fingerprint (any experiment), else None."""
    local = job.ckpt_dir / "best.pt"
    if local.is_file():
        ckpt = load_checkpoint(local)
        if ckpt.get("metrics") and ckpt["state"]["finished"]:
            log.info("%s is a finished training: reusing it, no epochs to run", local)
            return ckpt
    if not job.tracker.enabled:
        return None
    run = finished_job_run(job.tracker.client, job.fingerprint, "train")
    if run is None:
        return None
    ref = f"runs:/{run.info.run_id}/{BEST_ARTIFACT}"
    try:
        ckpt = load_checkpoint(resolve_checkpoint(ref, job.cfg.tracking.uri))
    except CheckpointError as exc:
        log.warning("finished run %s has no usable weights (%s): training anew", ref, exc)
        return None
    log.info(
        "this config finished as MLflow run %s (%s): reusing its weights, no epochs to run",
        run.info.run_id,
        run.info.run_name,
    )
    return ckpt


def _load_weights(model, state: dict, ref) -> None:
    """Fine-tuning: the checkpoint's weights whose names and shapes match (a head for
    another class count is left as built)."""
    own = model.state_dict()
    matching = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    skipped = sorted(set(own) - set(matching))
    model.load_state_dict(matching, strict=False)
    log.info(
        "loaded %d of %d tensors from ckpt_path=%s%s",
        len(matching),
        len(own),
        ref,
        f" (not loaded: {', '.join(skipped[:6])}{' ...' if len(skipped) > 6 else ''})"
        if skipped
        else "",
    )


def _keep_one_copy(job: Job, loop: F.Loop, best: dict, metrics: dict) -> None:
    """Write the final best.pt (weights, config, loop state, metrics; no optimizer), upload
    it as the run's artifact ``checkpoints/best.pt``, end the run FINISHED, then delete what
    a finished run does not need: last.pt (unless trainer.keep_last) and the local best.pt
    when the artifact store is a local folder (the artifact is the one copy)."""
    cfg, tracker, ckpt_dir = job.cfg, job.tracker, job.ckpt_dir
    state = asdict(loop.state)
    state["finished"] = True
    final = {
        **slim(best),
        "state": state,
        "metrics": {k: float(v) for k, v in metrics.items()},
        "mlflow_run_id": tracker.run_id,
        "fingerprint": job.fingerprint,
    }
    atomic_save(final, ckpt_dir / "best.pt")
    uploaded = bool(cfg.tracking.get("log_checkpoint")) and tracker.enabled
    if uploaded:
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
        log.info("weights: MLflow artifact %s/%s (the one copy)", artifacts, BEST_ARTIFACT)
    else:
        log.info("weights: %s", ckpt_dir / "best.pt")


def _finish(loop: F.Loop, data, model, best: dict) -> dict:
    """Best checkpoint -> val (+ holdout test) metrics, model info, artifacts."""
    cfg, state, names, run_dir, tracker = (
        loop.cfg,
        loop.state,
        loop.class_names,
        loop.run_dir,
        loop.tracker,
    )
    model.load_state_dict(best["model"])
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
        test = A.official_rules(cfg, test, data.test.image_ids, names)
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
    path = resolve_checkpoint(cfg.ckpt_path, OmegaConf.select(cfg, "tracking.uri"))
    ckpt = load_checkpoint(path, fix="check ckpt_path= (a best.pt or last.pt, or an MLflow run)")
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
    name = run_name(train_cfg, {k: choices.get(k, "?") for k in NAME_GROUPS})
    job.start_run(f"{name}_eval_{eval_dataset}_{split}", tags)
    job.tracker.log_params(choice_params(choices))
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
    result = A.official_rules(cfg, result, dataset.image_ids, data.class_names)
    names = tuple(data.class_names)
    metrics = A.split_metrics("eval", result, names)
    files = A.split_report(job.run_dir, "eval", result, dataset.image_ids, names)
    files += [A.write_resolved_config(job.run_dir, cfg), job.run_dir / "split.csv"]
    job.tracker.log_metrics(metrics)
    job.tracker.log_artifacts(files)
    job.tracker.log_artifacts(sorted((job.run_dir / ".hydra").glob("*.yaml")), "hydra")
    job.tracker.end("FINISHED")
    if job.tracker.enabled:
        log.info("open the runs in the MLflow UI: %s", ui_command(cfg.tracking.uri))
    log.info(
        "eval on %s/%s: balanced_acc %.4f, acc %.4f, auc %.4f",
        cfg.dataset.name,
        split,
        result["balanced_acc"],
        result["acc"],
        result["auc"],
    )
    return metrics
