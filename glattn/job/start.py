"""Where a training job starts: `starting_point` -> ``(checkpoint, kind)``.

- ``"finished"``: this config already finished (in another experiment of the store, or with
  tracking off): its best weights and loop state, no epochs to run; the job is a reused
  one (``job.reused_from``, glattn.job.reuse) unless the checkpoint is its own run's;
- ``"resume"``: the fingerprint's ``last.pt``, or ``ckpt_path`` when that is this config's
  own resumable checkpoint;
- ``"finetune"``: ``ckpt_path`` is any other checkpoint: its weights, trained anew;
- ``None``: from scratch (stale files of the fingerprint removed).

``sweep.rerun=true`` / ``trainer.resume=false`` (`JobSpec.fresh`) skip the first two.
"""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import OmegaConf

from glattn.checkpoint import BEST_ARTIFACT, CheckpointError, load_checkpoint, resolve_checkpoint
from glattn.job.lifecycle import Job
from glattn.job.reuse import Source, announce
from glattn.tracking import finished_job_run
from glattn.tracking.provenance import REUSED_FROM_TAG

log = logging.getLogger(__name__)


def starting_point(job: Job) -> tuple[dict | None, str | None]:
    """``(checkpoint, kind)`` of the module docstring."""
    cfg, spec = job.cfg, job.spec
    last = spec.ckpt_dir / "last.pt"
    if not spec.fresh:
        best = _finished_best(job)
        if best is not None:
            return best, "finished"
        if last.is_file():
            ckpt = load_checkpoint(last)
            if ckpt["state"]["finished"]:  # trainer.keep_last=true, no best.pt left
                _reuse_local(job, ckpt, last)
                return ckpt, "finished"
            log.info("resuming from %s", last)
            return ckpt, "resume"
    ref = OmegaConf.select(cfg, "ckpt_path", default=None)
    ckpt = None
    if ref:
        path = resolve_checkpoint(ref, OmegaConf.select(cfg, "tracking.uri"))
        ckpt = load_checkpoint(path, fix="check ckpt_path= (a checkpoint file or MLflow run)")
        own = ckpt.get("fingerprint") == spec.fingerprint and "optimizer" in ckpt
        if own and not ckpt["state"]["finished"]:
            log.info("ckpt_path=%s is this config's own checkpoint: resuming from it", ref)
            return ckpt, "resume"
    for name in ("last.pt", "best.pt"):  # a fresh start must not inherit a stale best.pt
        if ckpt is None or (spec.ckpt_dir / name).resolve() != Path(path).resolve():
            (spec.ckpt_dir / name).unlink(missing_ok=True)
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


def has_epochs(run) -> bool:
    """An MLflow run that logged epochs (continuing it without their checkpoint would mix
    two trainings in one run)."""
    return run is not None and "val/balanced_acc" in run.data.metrics


def _finished_best(job: Job) -> dict | None:
    """The best checkpoint of this config's finished training: the local best.pt when it
    holds final metrics (tracking off, or a remote artifact store), else the artifact of the
    store's FINISHED run with this fingerprint (any experiment), else None."""
    local = job.spec.ckpt_dir / "best.pt"
    if local.is_file():
        ckpt = load_checkpoint(local)
        if ckpt.get("metrics") and ckpt["state"]["finished"]:
            _reuse_local(job, ckpt, local)
            return ckpt
    if not job.tracker.enabled:
        return None
    run = finished_job_run(job.tracker.client, job.spec.fingerprint, "train")
    if run is None:
        return None
    ref = f"runs:/{run.info.run_id}/{BEST_ARTIFACT}"
    try:
        ckpt = load_checkpoint(resolve_checkpoint(ref, job.cfg.tracking.uri))
    except CheckpointError as exc:
        log.warning("finished run %s has no usable weights (%s): training anew", ref, exc)
        return None
    job.reused_from = _source(job, run)
    announce(job.reused_from, job.code)
    return ckpt


def _source(job: Job, run) -> Source:
    """The run that trained: `run`, or the run that `run` itself reused."""
    client = job.tracker.client
    original = run.data.tags.get(REUSED_FROM_TAG)
    if original:
        try:
            run = client.get_run(original)
        except Exception:  # noqa: BLE001 - deleted: the reusing run is the one left
            pass
    try:
        experiment = client.get_experiment(run.info.experiment_id).name
    except Exception:  # noqa: BLE001 - the run id names it all the same
        experiment = None
    return Source(run.info.run_id, experiment, run.info.run_name, tags=dict(run.data.tags))


def _reuse_local(job: Job, ckpt: dict, path: Path) -> None:
    """A finished training in the fingerprint's folder: this job's own run finishing (a kill
    between its last checkpoint and FINISHED), else a reused one, named by its run."""
    run_id = ckpt.get("mlflow_run_id")
    if job.previous is not None and run_id == job.previous.info.run_id:
        log.info("%s is this run's finished training: no epochs to run", path)
        return
    run = None
    if run_id and job.tracker.enabled:
        try:
            run = job.tracker.client.get_run(run_id)
        except Exception:  # noqa: BLE001 - deleted, or another store: the file still names it
            run = None
    source = _source(job, run) if run is not None else Source(run_id, path=str(path))
    job.reused_from = source
    announce(source, job.code)
