"""``task=train``: train one configuration and record it as one MLflow run.

Read top to bottom: the lifecycle (glattn.job.lifecycle) has checked the config, built the
model (its one build: glattn.job.build.preflight_model), found the job's run and locked its
checkpoint folder; here the job finds where training starts (glattn.job.start: resume,
reuse a finished training, fine-tune from ``ckpt_path`` or start from scratch), starts or
continues its run, builds its other objects (glattn.job.build), fits (glattn.job.trainer,
with checkpoint / CSV / MLflow / profiler callbacks), evaluates the best checkpoint on val
and the holdout test split, and keeps one copy of the best weights (glattn.job.finish). In a
sweep the run nests under the sweep's parent run.

A training FINISHED in another experiment is reused (glattn.job.reuse): its run is tagged
with the source, its epochs are logged without their timings and throughput, and nothing
that measures the process (``time/*``, ``perf/*``) is logged: the source run measured it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from omegaconf import DictConfig

from glattn.checkpoint import CheckpointError, best_path, load_checkpoint
from glattn.config import resolved_config
from glattn.job.build import Components, build_components, preflight_model
from glattn.job.callbacks import training_callbacks
from glattn.job.finish import final_evaluation, keep_one_copy, summary_line
from glattn.job.lifecycle import Job, run_job
from glattn.job.reuse import without_measurements
from glattn.job.start import has_epochs, starting_point
from glattn.job.trainer import Trainer
from glattn.latency import log_latency
from glattn.models.compiled import compile_model
from glattn.phases import PhaseTimer
from glattn.tracking.models import log_dataset
from glattn.tracking.ui import run_hint

log = logging.getLogger(__name__)


def train(cfg: DictConfig) -> dict:
    """Train one configuration; returns its final metrics (docs/training.md, "MLflow")."""
    return run_job(cfg, "train", _train, preflight=preflight_model)


@dataclass
class Training:
    """One job's training as `prepare` leaves it: its trainer (not yet restored), its
    objects, where it starts (`glattn.job.start`) and its phase timer."""

    job: Job
    trainer: Trainer
    parts: Components
    ckpt: dict | None
    kind: str | None
    timer: PhaseTimer


def _train(job: Job) -> dict:
    training = prepare(job)
    training.trainer.model = compile_model(
        training.parts.model, job.cfg.trainer.compile, training.parts.runtime.device
    )
    restore(training)
    training.trainer.fit()
    return conclude(training)


def prepare(job: Job, trainer_cls: type[Trainer] = Trainer) -> Training:
    """Where training starts, the run started or continued, the job's objects built and
    its trainer (``trainer_cls``: a fused member's `glattn.fused.trainer.MemberTrainer`)
    made with its callbacks; the checkpoint is not restored yet (`restore`)."""
    cfg, spec, tracker = job.cfg, job.spec, job.tracker
    timer = PhaseTimer()  # time/* metrics: where the job's wall time went (from process start)
    try:
        ckpt, kind = starting_point(job)
    except CheckpointError:  # the run records the failure and its message
        job.start_run()
        raise
    extra = {"init_from": str(cfg.ckpt_path)} if kind == "finetune" else {}
    if job.reused_from is not None:
        extra.update(job.reused_from.tags_for_run(job.code))
    # a run with epochs logged but no checkpoint to continue them from starts a new run
    job.start_run(
        extra, continue_run=kind in ("resume", "finished") or not has_epochs(job.previous)
    )
    parts = build_components(
        cfg, spec.run_dir, init_from=ckpt if kind == "finetune" else None, prebuilt=job.context
    )
    counts = parts.data.split_frame["split"].value_counts().to_dict()  # the UI's Dataset column
    log_dataset(tracker, cfg.dataset.name, cfg.dataset.root, spec.run_dir / "split.csv", counts)
    tracker.log_artifact(parts.data.save_preview(spec.run_dir / "augment_preview.png"))
    record = {
        "config": resolved_config(cfg, masked=True),
        "mlflow_run_id": tracker.run_id,
        "fingerprint": spec.fingerprint,
        "choices": dict(spec.choices),
        "train_counts": [int(c) for c in parts.data.train_counts],
    }
    trainer = trainer_cls(
        parts.model,
        parts.loss,
        parts.optimizer,
        parts.scheduler,
        parts.runtime,
        parts.loaders,
        tuple(parts.data.class_names),
        cfg.trainer,
        training_callbacks(
            spec.ckpt_dir, spec.run_dir, tracker, record, bool(cfg.trainer.get("profile"))
        )
        + [timer],
        stateful={"augment": parts.runtime.augment} if parts.runtime.augment is not None else {},
    )
    return Training(job, trainer, parts, ckpt, kind, timer)


def restore(training: Training) -> None:
    """A resumed or finished training continues from its checkpoint."""
    if training.kind in ("resume", "finished"):
        training.trainer.restore(training.ckpt)
        state = training.trainer.state
        state.finished = False  # until this run's final evaluation is logged
        if training.job.reused_from is not None:  # the source's timings stay the source's
            state.history = [without_measurements(row) for row in state.history]
        if training.kind == "resume":
            log.info("resuming after epoch %d", training.trainer.state.epoch)


def conclude(training: Training) -> dict:
    """After the fit: the best weights on val and test, Table 6's latency, the phases, the
    one copy of the weights (the run ends FINISHED) and the summary line."""
    job, trainer, parts, timer = training.job, training.trainer, training.parts, training.timer
    cfg, tracker, ckpt = job.cfg, job.tracker, training.ckpt
    if training.kind == "finished" and "optimizer" not in ckpt:
        best = ckpt  # a finished run's best.pt (local or its MLflow artifact)
    else:
        best = load_checkpoint(best_path(job.spec.ckpt_dir))
    with timer.phase("final"):  # val + test passes, artifacts, Grad-CAM (time/gradcam_s)
        metrics = final_evaluation(job, trainer, parts, best)
    source = job.reused_from
    if source is None:  # a reused run's measurements are its source run's
        # Table 6's latency/memory: a dedicated measurement of the best weights (glattn.latency)
        size, device = int(cfg.dataset.image_size), trainer.rt.device
        with timer.phase("latency"):
            latency = log_latency(tracker, parts.model, size, device, trainer.state.epoch)
        metrics.update(latency.metrics())
        metrics.update(timer.metrics())
        tracker.log_metrics(timer.metrics(), step=trainer.state.epoch)
    keep_one_copy(job, trainer.state, best, metrics)
    if source is None:
        log.info("phases: %s", timer.summary())
    hint = run_hint(tracker, job.spec.grid_keys)
    log.info(summary_line(metrics, hint, reused_from=source.describe() if source else None))
    return metrics
