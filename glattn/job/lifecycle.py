"""One job's life, for every task (train, eval): checks, the run record, signals, status.

1. Secrets are masked in Hydra's ``.hydra/`` files of the run folder first (a refused config
   must not leave a secret either), and a log filter masks them in every log line (console,
   ``<job>.log``, ``debug.log``).
2. Everything the config alone can tell is checked once, before any data work: values, the
   registries' targets, the data options, the task's pre-flight (training: the whole model
   built on the meta device and run forward once; eval: the checkpoint and its model), and
   that the output folder can be written. A bad config writes nothing. Then the `JobSpec`.
3. The job = task + config fingerprint. Its MLflow run is found by tags in the experiment
   whatever state an earlier attempt left it in, and continued: one run per job, ever. A
   FINISHED run means nothing to do (``sweep.rerun=true`` or ``trainer.resume=false`` runs
   the job again, as a new run).
4. The fingerprint's checkpoint folder is locked (`glattn.checkpoint.CheckpointLock`): a
   second process with the same fingerprint waits, then refuses, naming the holder.
5. SIGTERM and SIGINT end the run KILLED, write ``status.json`` and exit non-zero; the next
   start continues from the last completed epoch. A user error (`glattn.errors.UserError`:
   bad config, data or checkpoint) is one message, no traceback (``HYDRA_FULL_ERROR=1``
   re-raises it; the traceback is always in ``debug.log``); the run ends FAILED with it.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from glattn import optim
from glattn import preflight as machine
from glattn.checkpoint import CheckpointLock, remove_stale_tmp
from glattn.config import (
    ConfigError,
    config_errors,
    hydra_config,
    is_multirun,
    raise_config_errors,
    resolved_config,
)
from glattn.data.errors import DataError
from glattn.errors import UserError
from glattn.job import protocol
from glattn.job.spec import JobSpec, make_spec
from glattn.logging_utils import setup_logging
from glattn.secrets import install_log_filter, mask_text, secret_values
from glattn.tracking import Tracker, job_runs, make_tracker

log = logging.getLogger(__name__)
#: the device a FINISHED run ran on (``cpu``, ``cuda``, ``cuda:1``)
DEVICE_TAG = "glattn.device"


class JobInterrupted(KeyboardInterrupt):
    """SIGTERM (or SIGINT) arrived: the job stops, its run ends KILLED."""

    reported: bool = True  # raised inside the job only, which logs the KILLED line


#: Seconds a job waits for another process holding its fingerprint's lock, then refuses.
LOCK_WAIT_S = 30.0


@dataclass
class Job:
    """What a task body gets: the config, its `JobSpec`, its tracker and its old run."""

    cfg: DictConfig
    spec: JobSpec
    tracker: Tracker
    previous: object | None = None  # the job's unfinished MLflow run to continue, if any
    context: dict = field(default_factory=dict)  # what the task's pre-flight found
    secrets: set = field(default_factory=set)  # masked in every message the job records

    def start_run(self, extra_tags: dict | None = None, continue_run: bool = True) -> bool:
        """Create the run, or continue the job's unfinished one; log the missing params.
        Returns True for a new run."""
        run_id = self.previous.info.run_id if (self.previous and continue_run) else None
        if self.previous is not None and run_id is None:
            _retire(self.tracker, self.previous)
        new = self.tracker.start(
            self.spec.run_name,
            {**self.spec.tags, **(extra_tags or {})},
            run_id=run_id,
            parent_run_id=protocol.read_parent_run_id(),
        )
        self.tracker.log_params(dict(self.spec.params))
        return new


# ----------------------------------------------------------------------------- checks
def check_config(cfg: DictConfig) -> None:
    """Values, registry targets and data options: one ConfigError naming every bad key."""
    errors = config_errors(cfg)
    errors += [f"{key}: missing value (set {key}=...)" for key in _missing_keys(cfg)]
    errors += optim.config_errors(cfg)
    errors += _loss_errors(cfg)
    if not errors:
        try:
            from glattn.data.options import check_options, root_error

            options = check_options(cfg)
            errors += [root_error(options)] if root_error(options) else []
        except DataError as exc:
            errors.append(str(exc))
    raise_config_errors(errors)


def _missing_keys(cfg: DictConfig) -> list[str]:
    keys = OmegaConf.missing_keys(OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"]))
    return sorted(keys)


def _loss_errors(cfg: DictConfig) -> list[str]:
    from glattn.losses import LOSSES

    error = LOSSES.target_error(OmegaConf.select(cfg, "loss._target_", default=None), "loss")
    return [error] if error else []


def check_machine(cfg: DictConfig) -> None:
    """What the machine must provide before any run exists (glattn.preflight): the output
    folder can be created and written, and the tracking store answers (an http server
    within 10 s, one try; a database's driver installed). The device is checked once the
    job knows it has something to do (`run_job`): a FINISHED job needs none."""
    for error in (
        machine.output_dir_error(cfg.paths.output_dir),
        machine.tracking_error(OmegaConf.select(cfg, "tracking.uri"))
        if OmegaConf.select(cfg, "tracking.enabled", default=False)
        else None,
    ):
        if error:
            raise ConfigError(error)


# ----------------------------------------------------------------------------- secrets
def mask_run_folder(run_dir: Path, secrets: set[str]) -> None:
    """Rewrite Hydra's ``.hydra/*.yaml`` (config, hydra, overrides) with secrets masked."""
    for path in sorted((run_dir / ".hydra").glob("*.yaml")):
        text = path.read_text()
        masked = mask_text(text, secrets)
        if masked != text:
            tmp = path.with_name(f".{path.name}.tmp")
            tmp.write_text(masked)
            os.replace(tmp, path)


def mask_hydra_output() -> set[str]:
    """Hydra wrote the job's ``.hydra/`` before the task began: mask the command line's
    secrets first, before any check can refuse the config; returns them."""
    secrets = secret_values(_raw_overrides())
    hc = hydra_config()
    if hc is not None:
        mask_run_folder(Path(hc.runtime.output_dir), secrets)
    return secrets


def _raw_overrides() -> list[str]:
    hc = hydra_config()
    return [str(o) for o in hc.overrides.task] if hc is not None else []


# ----------------------------------------------------------------------------- signals
@contextmanager
def interrupt_on_signals():
    """SIGTERM raises JobInterrupted (SIGINT already raises KeyboardInterrupt), so the job
    ends its run KILLED and writes status.json; a previous handler (submitit logs the
    signal) is called first. Main thread only; restored afterwards."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGTERM)

    def handler(signum, frame):
        if callable(previous):
            previous(signum, frame)
        raise JobInterrupted(f"interrupted by {signal.Signals(signum).name}")

    signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


# ----------------------------------------------------------------------------- the job
def run_job(
    cfg: DictConfig,
    task: str,
    body: Callable[[Job], dict],
    preflight: Callable[[DictConfig], dict] | None = None,
) -> dict:
    """Check, lock, find or create the run, run ``body(job)``, record the outcome."""
    job = _checked_job(cfg, task, preflight)
    spec = job.spec
    status = {"status": "failed", "error": None, "run_id": None}
    lock = CheckpointLock(spec.ckpt_dir, wait_s=LOCK_WAIT_S)
    try:
        with interrupt_on_signals():
            done = _finished_run(job, look_only=True)
            if done is None:
                lock.acquire()
                remove_stale_tmp(spec.ckpt_dir)
                done = _finished_run(job)  # it may have finished while we waited
            if done is not None:
                status.update(status="skipped", run_id=done.info.run_id)
                return dict(done.data.metrics)
            device = _checked_device(cfg)  # something to do: the device must exist
            metrics = body(job)
            status["status"] = "finished"
            _record_device(job, device)
            return metrics
    except BaseException as exc:
        _record_failure(job, exc, status)
        raise
    finally:
        lock.release()
        status["run_id"] = job.tracker.run_id or status["run_id"]
        protocol.write_status(spec.run_dir, fingerprint=spec.fingerprint, **status)
        _log_run_files(job)


def _log_run_files(job: Job) -> None:
    """The run folder's logs (debug.log, <job>.log) and status.json as the run's artifacts
    ``logs/``, secrets masked (issue 18); the files on disk stay as they are."""
    if job.tracker.run_id is None:
        return
    folder = job.spec.run_dir
    files = [*sorted(folder.glob("*.log")), folder / protocol.STATUS_FILE]
    try:
        job.tracker.log_masked_files(files, "logs", job.secrets)
    except Exception as exc:  # noqa: BLE001 - the job's outcome stands; the files are on disk
        log.warning("the run folder's logs were not logged to MLflow: %s", exc)


def _checked_job(cfg: DictConfig, task: str, preflight) -> Job:
    """Mask, check (once), compute the spec, open the logs: the job before any work."""
    secrets = mask_hydra_output()
    try:
        check_machine(cfg)  # the folder first: the SQLite store and every check's files
        check_config(cfg)
        context = preflight(cfg) if preflight else {}
        spec = make_spec(cfg, task, context)
    except UserError as exc:  # before any work: one message (and status.json in a sweep)
        message = mask_text(str(exc), secrets)
        log.error("%s: %s", task, message)
        exc.mark_reported()
        hc = hydra_config()
        if hc is not None and is_multirun():
            error = f"{type(exc).__name__}: {message}"
            protocol.write_status(hc.runtime.output_dir, "failed", error)
        raise
    setup_logging(spec.run_dir)
    resolved = secret_values(resolved_config(cfg)) - secrets
    if resolved:  # secrets only the resolved config shows (interpolated values)
        mask_run_folder(spec.run_dir, resolved)
    install_log_filter(secrets | resolved)
    log.info("run dir %s, fingerprint %s", spec.run_dir, spec.fingerprint)
    tracker = make_tracker(cfg.tracking)
    return Job(cfg, spec, tracker, context=context, secrets=secrets | resolved)


def _checked_device(cfg: DictConfig) -> str:
    """The device the job will run on (``cpu``, ``cuda``, ``cuda:1``); a ConfigError listing
    the devices there are when ``trainer.device`` names one this machine lacks."""
    from glattn.runtime import resolve_device

    name = str(OmegaConf.select(cfg, "trainer.device", default="auto"))
    error = machine.device_error(name)
    if error:
        raise ConfigError(error)
    return str(resolve_device(name))


def _record_device(job: Job, device: str) -> None:
    """Tag the run with the device it ran on: a later request for another device (which
    does not change the fingerprint) is told where the FINISHED run ran."""
    if job.tracker.enabled and job.tracker.run_id:
        try:
            job.tracker.client.set_tag(job.tracker.run_id, DEVICE_TAG, device)
        except Exception as exc:  # noqa: BLE001 - the run itself is recorded
            log.warning("could not tag the run with its device: %s", exc)


def _ran_on(run) -> str:
    return run.data.tags.get(DEVICE_TAG) or run.data.params.get("trainer.device") or "?"


def _say_finished(job: Job, finished) -> None:
    """Nothing to do: say where it ran; louder when another device was asked for."""
    ran_on = _ran_on(finished)
    asked = str(OmegaConf.select(job.cfg, "trainer.device", default="auto"))
    line = (
        f"already FINISHED on {ran_on} ({finished.info.run_name}, MLflow run "
        f"{finished.info.run_id}, fingerprint {job.spec.fingerprint}, task="
        f"{job.spec.task}); sweep.rerun=true trains again"
    )
    if asked not in ("auto", ran_on) and not ran_on.startswith(f"{asked}:"):
        log.warning("trainer.device=%s does not change the result: %s", asked, line)
    else:
        log.info("nothing to do: %s", line)


def _finished_run(job: Job, look_only: bool = False):
    """The job's FINISHED run (nothing to do), or None. Holding the lock (not
    ``look_only``), it also remembers the unfinished run to continue, or retires it."""
    if not job.tracker.enabled:
        return None
    spec = job.spec
    exp = job.tracker.ensure_experiment()
    runs = job_runs(job.tracker.client, exp, spec.fingerprint, spec.task)
    finished = next((r for r in runs if r.info.status == "FINISHED"), None)
    if finished is not None and not spec.fresh:
        _say_finished(job, finished)
        return finished
    if look_only:
        return None
    job.previous = next((r for r in runs if r.info.status != "FINISHED"), None)
    if spec.fresh and job.previous is not None:
        job.previous, stale = None, job.previous
        _retire(job.tracker, stale)
    return None


def _retire(tracker: Tracker, run) -> None:
    """An unfinished run this job does not continue: a RUNNING one is stale (we hold the
    lock), so it ends KILLED; FAILED and KILLED runs stay as they are."""
    if run.info.status == "RUNNING":
        tracker.client.set_terminated(run.info.run_id, "KILLED")
        log.info("MLflow run %s was left RUNNING: marked KILLED", run.info.run_id)


def _record_failure(job: Job, exc: BaseException, status: dict) -> None:
    """Log the error once, end the run FAILED/KILLED with it, fill status.json's record."""
    interrupted = isinstance(exc, (KeyboardInterrupt, SystemExit))
    message = mask_text(f"{type(exc).__name__}: {exc}", job.secrets)
    status.update(status="killed" if interrupted else "failed", error=message)
    task = job.spec.task
    log.debug("%s failed:\n%s", task, traceback.format_exc())  # debug.log only
    if interrupted:
        log.warning(
            "%s %s: MLflow run %s ends KILLED; the same command continues it from the last "
            "checkpoint",
            task,
            exc or type(exc).__name__,
            job.tracker.run_id,
        )
    elif isinstance(exc, UserError):
        log.error("%s failed: %s", task, message)
        exc.mark_reported()  # logged: the CLI adds nothing
    else:
        log.error("%s failed:\n%s", task, traceback.format_exc())
    try:
        job.tracker.end("KILLED" if interrupted else "FAILED", error=message)
    except Exception as end_exc:  # never hide the original error
        log.error("could not end the MLflow run: %s", end_exc)


def cli_exit(exc: BaseException) -> None:
    """The command line's side of an error in a single run: a user error (or an interrupt)
    becomes one message and exit status 1 (130 for Ctrl-C, 143 for SIGTERM), without
    Hydra's traceback; anything else, a multirun job (Hydra records it) and
    ``HYDRA_FULL_ERROR=1`` re-raise."""
    interrupted = isinstance(exc, KeyboardInterrupt)
    if is_multirun() or os.environ.get("HYDRA_FULL_ERROR") == "1":
        raise exc
    if not (interrupted or isinstance(exc, UserError)):
        raise exc
    if isinstance(exc, UserError) and not exc.reported:  # an interrupt's KILLED line is logged
        print(f"Error: {exc}", file=sys.stderr, flush=True)
    code = 1
    if interrupted:
        code = 143 if isinstance(exc, JobInterrupted) and "SIGTERM" in str(exc) else 130
    raise SystemExit(code) from None
