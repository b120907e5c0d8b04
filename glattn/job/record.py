"""One job's MLflow run record around its work: `JobRecord` (glattn.job.lifecycle runs one;
glattn.job.tasks.fused one per member of a fused job).

`JobRecord.open` looks for the job's FINISHED run (nothing to do; one more line when other
code made it) without the lock, then takes the fingerprint's checkpoint lock
(`glattn.checkpoint.CheckpointLock`: a second process with the same fingerprint waits, then
refuses, naming the holder), looks again, remembers the unfinished run to continue (a stale
RUNNING one it does not continue ends KILLED) and checks the device. `succeed` tags the
device the run ran on (status ``finished``, or ``reused`` when the job took a training
FINISHED elsewhere, glattn.job.reuse), `fail` ends the run FAILED or KILLED with its
one-line error, and `close` releases the lock, writes ``status.json`` and logs the run
folder's logs as the run's artifacts.

Every run carries the code that made it and, in a sweep, the sweep's membership tag
(glattn.tracking.provenance); a skipped FINISHED run gets the membership tag too, so it
shows in the view of every sweep whose grid holds it.
"""

from __future__ import annotations

import logging
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from glattn import preflight as machine
from glattn.checkpoint import CheckpointLock, remove_stale_tmp
from glattn.config import ConfigError
from glattn.errors import UserError
from glattn.job import protocol
from glattn.job.reuse import Source, say_code_difference
from glattn.job.spec import JobSpec
from glattn.secrets import mask_text
from glattn.tracking import Tracker, job_runs
from glattn.tracking.provenance import (
    COMMIT_TAG,
    SWEEP_MEMBER_VALUE,
    code_tags,
    sweep_member_tag,
)

log = logging.getLogger(__name__)

#: the device a FINISHED run ran on (``cpu``, ``cuda``, ``cuda:1``)
DEVICE_TAG = "glattn.device"


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
    reused_from: Source | None = None  # the FINISHED training this job reuses (glattn.job.reuse)
    _code: dict | None = field(default=None, repr=False)

    @property
    def code(self) -> dict[str, str]:
        """The code identity of this process for this config (glattn.tracking.provenance)."""
        if self._code is None:
            commit = str(self.spec.tags.get(COMMIT_TAG, "unknown"))
            self._code = {**code_tags(self.cfg), COMMIT_TAG: commit}
        return self._code

    def start_run(self, extra_tags: dict | None = None, continue_run: bool = True) -> bool:
        """Create the run, or continue the job's unfinished one; log the missing params.
        Returns True for a new run."""
        run_id = self.previous.info.run_id if (self.previous and continue_run) else None
        if self.previous is not None and run_id is None:
            _retire(self.tracker, self.previous)
        parent = protocol.read_parent_run_id()
        member = {sweep_member_tag(parent): SWEEP_MEMBER_VALUE} if parent else {}
        new = self.tracker.start(
            self.spec.run_name,
            {**self.spec.tags, **self.code, **member, **(extra_tags or {})},
            run_id=run_id,
            parent_run_id=parent,
        )
        self.tracker.log_params(dict(self.spec.params))
        return new


class JobRecord:
    """The record around one job's work (see the module docstring)::

    record = JobRecord(job)
    try:
        done = record.open()  # the FINISHED run: nothing to do
        ...  # the work
        record.succeed()
    except BaseException as exc:
        record.fail(exc)
        raise
    finally:
        record.close()
    """

    def __init__(self, job: Job):
        self.job = job
        self.status: dict = {"status": "failed", "error": None, "run_id": None}
        self.lock = CheckpointLock(job.spec.ckpt_dir, wait_s=LOCK_WAIT_S)
        self.device: str | None = None

    def open(self):
        """The job's FINISHED run (status ``skipped``), or None: the lock is held, the run
        to continue is in ``job.previous`` and the device exists."""
        job = self.job
        done = _finished_run(job, look_only=True)
        if done is None:
            self.lock.acquire()
            remove_stale_tmp(job.spec.ckpt_dir)
            done = _finished_run(job)  # it may have finished while we waited
        if done is not None:
            self.status.update(status="skipped", run_id=done.info.run_id)
            _join_sweep(job, done)
            return done
        self.device = _checked_device(job.cfg)  # something to do: the device must exist
        return None

    def succeed(self) -> None:
        source = self.job.reused_from
        self.status["status"] = "reused" if source is not None else "finished"
        if source is not None:
            self.status["source"] = source.status()
        _record_device(self.job, self.device)

    def fail(self, exc: BaseException) -> None:
        _record_failure(self.job, exc, self.status)

    def close(self, log_dir: Path | None = None) -> None:
        """Release the lock, write status.json, log the logs (``log_dir``'s, when given)."""
        job = self.job
        self.lock.release()
        self.status["run_id"] = job.tracker.run_id or self.status["run_id"]
        protocol.write_status(job.spec.run_dir, fingerprint=job.spec.fingerprint, **self.status)
        _log_run_files(job, log_dir)


def _log_run_files(job: Job, log_dir: Path | None = None) -> None:
    """The run folder's logs (debug.log, <job>.log; ``log_dir``'s when given) and
    status.json as the run's artifacts ``logs/``, secrets masked; the files on
    disk stay as they are."""
    if job.tracker.run_id is None:
        return
    folder = job.spec.run_dir
    logs = sorted(Path(log_dir or folder).glob("*.log"))
    files = [*logs, folder / protocol.STATUS_FILE]
    try:
        job.tracker.log_masked_files(files, "logs", job.secrets)
    except Exception as exc:  # noqa: BLE001 - the job's outcome stands; the files are on disk
        log.warning("the run folder's logs were not logged to MLflow: %s", exc)


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


def _join_sweep(job: Job, run) -> None:
    """A FINISHED run the sweep skips still belongs to it: the sweep's membership tag."""
    parent = protocol.read_parent_run_id()
    if parent is None or run.data.tags.get(sweep_member_tag(parent)) == SWEEP_MEMBER_VALUE:
        return
    try:
        job.tracker.client.set_tag(run.info.run_id, sweep_member_tag(parent), SWEEP_MEMBER_VALUE)
    except Exception as exc:  # noqa: BLE001 - the run itself stays as it is
        log.warning("could not tag run %s with its sweep: %s", run.info.run_id, exc)


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
    say_code_difference(job.code, finished.data.tags, f"the FINISHED {finished.info.run_name}")


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
