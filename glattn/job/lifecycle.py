"""One job's life, for every task (train, eval): checks, the run record, signals, status.

1. Secrets are masked in Hydra's ``.hydra/`` files of the run folder first (a refused config
   must not leave a secret either), and a log filter masks them in every log line (console,
   ``<job>.log``, ``debug.log``).
2. Everything the config alone can tell is checked once, before any data work: values, the
   `_target_`s, the data options, the task's pre-flight (training: the model's one build,
   each component's contract checked, run forward once on the meta device; eval: the
   checkpoint and its model), and
   that the output folder can be written. A bad config writes nothing. Then the `JobSpec`.
3. The job = task + config fingerprint. Its MLflow run is found by tags in the experiment
   whatever state an earlier attempt left it in, and continued: one run per job, ever. A
   FINISHED run means nothing to do (``sweep.rerun=true`` or ``trainer.resume=false`` runs
   the job again, as a new run).
4. The fingerprint's checkpoint folder is locked (`glattn.checkpoint.CheckpointLock`): a
   second process with the same fingerprint waits, then refuses, naming the holder
   (3 and 4: `glattn.job.record.JobRecord`, which a fused job opens once per member).
5. SIGTERM, SIGHUP and SIGINT end the run KILLED, write ``status.json`` and exit
   128 + the signal; the next start continues from the last completed epoch. A user
   error (`glattn.errors.UserError`: bad config, data or checkpoint) is one message, no
   traceback (``HYDRA_FULL_ERROR=1`` re-raises it; the traceback is always in
   ``debug.log``); the run ends FAILED with it.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from glattn import optim, phases
from glattn import preflight as machine
from glattn.config import (
    ConfigError,
    config_errors,
    hydra_config,
    is_multirun,
    raise_config_errors,
    resolved_config,
)
from glattn.contract import target_error
from glattn.data.errors import DataError
from glattn.errors import UserError
from glattn.job import protocol
from glattn.job.record import Job, JobRecord
from glattn.job.spec import make_spec
from glattn.logging_utils import setup_logging
from glattn.secrets import install_log_filter, mask_text, secret_values
from glattn.tracking import make_tracker

log = logging.getLogger(__name__)


#: the signals that stop a job or a sweep as Ctrl-C does (SIGINT raises KeyboardInterrupt
#: itself): `kill` and schedulers send SIGTERM; SIGHUP is the closed terminal of a sweep
#: started over ssh without tmux, screen or nohup
STOP_SIGNALS = tuple(getattr(signal, n) for n in ("SIGTERM", "SIGHUP") if hasattr(signal, n))


class JobInterrupted(KeyboardInterrupt):
    """A stop signal arrived (STOP_SIGNALS): the job stops, its run ends KILLED."""

    reported: bool = True  # raised inside the job only, which logs the KILLED line

    def __init__(self, signum: int = signal.SIGTERM) -> None:
        self.signal_name = signal.Signals(signum).name
        self.exit_status = 128 + int(signum)  # as a shell reports a process it ended
        super().__init__(f"interrupted by {self.signal_name}")


def interrupt_exit_status(exc: BaseException) -> int:
    """The exit status after interrupt `exc`: 128 + the signal (143 SIGTERM, 129 SIGHUP),
    130 for Ctrl-C."""
    return exc.exit_status if isinstance(exc, JobInterrupted) else 128 + int(signal.SIGINT)


# ----------------------------------------------------------------------------- checks
def check_config(cfg: DictConfig) -> None:
    """Values, `_target_`s and data options: one ConfigError naming every bad key."""
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
    error = target_error(OmegaConf.select(cfg, "loss._target_", default=None), "loss")
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
    """SIGTERM and SIGHUP (STOP_SIGNALS) raise JobInterrupted (SIGINT already raises
    KeyboardInterrupt), so the job ends its run KILLED and writes status.json; a previous
    handler (submitit logs the signal) is called first. Main thread only; restored
    afterwards."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}

    def handler(signum, frame):
        before = previous[signum]
        if callable(before):
            before(signum, frame)
        raise JobInterrupted(signum)

    for signum in STOP_SIGNALS:
        signal.signal(signum, handler)
    try:
        yield
    finally:
        for signum, before in previous.items():
            signal.signal(signum, before)


# ----------------------------------------------------------------------------- the job
def run_job(
    cfg: DictConfig,
    task: str,
    body: Callable[[Job], dict],
    preflight: Callable[[DictConfig], dict] | None = None,
) -> dict:
    """Check, lock, find or create the run, run ``body(job)``, record the outcome."""
    start_clock()
    job = _checked_job(cfg, task, preflight)
    record = JobRecord(job)
    try:
        with interrupt_on_signals():
            done = record.open()
            if done is not None:
                return dict(done.data.metrics)
            metrics = body(job)
            record.succeed()
            return metrics
    except BaseException as exc:
        record.fail(exc)
        raise
    finally:
        record.close()


def start_clock() -> None:
    """The job's own start for its ``time/*`` (glattn.phases): a process started for it (a
    single run; a multirun job that its launcher started in a process of its own) counts
    from glattn's import, a job in the sweep's process (Hydra's basic launcher) or in any
    other process (the compose API) from now."""
    hc = hydra_config()
    launcher = str(OmegaConf.select(hc, "launcher._target_", default="")) if hc else ""
    owns = hc is not None and (not is_multirun() or not launcher.endswith(".BasicLauncher"))
    phases.job_started(owns_process=owns)


def _checked_job(cfg: DictConfig, task: str, preflight) -> Job:
    """Mask, check (once), compute the spec, open the logs: the job before any work."""
    job = check_job(cfg, task, preflight, mask_hydra_output())
    setup_logging(job.spec.run_dir, protocol.current_sweep_dir())
    install_log_filter(job.secrets)
    log.info("run dir %s, fingerprint %s", job.spec.run_dir, job.spec.fingerprint)
    return job


def check_job(cfg: DictConfig, task: str, preflight, secrets: set[str]) -> Job:
    """Check the config (values, machine, the task's pre-flight) and compute its `JobSpec`
    and tracker; ``secrets``: the command line's, already masked in Hydra's files. A user
    error is logged once (and written to status.json in a sweep) and raised."""
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
    resolved = secret_values(resolved_config(cfg)) - secrets
    if resolved:  # secrets only the resolved config shows (interpolated values)
        mask_run_folder(spec.run_dir, resolved)
    tracker = make_tracker(cfg.tracking)
    return Job(cfg, spec, tracker, context=context, secrets=secrets | resolved)


def cli_exit(exc: BaseException) -> None:
    """The command line's side of an error in a single run: a user error (or an interrupt)
    becomes one message and exit status 1 (130 Ctrl-C, 143 SIGTERM, 129 SIGHUP), without
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
        code = interrupt_exit_status(exc)
    raise SystemExit(code) from None
