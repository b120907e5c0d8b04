"""The glattn sweeper's guards: what a sweep checks before its parent run or any
job exists, what it does not submit, and what it prints when it is interrupted.

- `check_chdir`: ``hydra.job.chdir=true`` is refused in glattn's app (one store per sweep).
- `hold_sweep_dir`: one launch at a time in a sweep folder; a second is refused.
- `report_failures`: another Hydra app's sweep ends non-zero with its failed jobs' errors.
- `check_sweep`, `check_device`, `check_scheduler`: the output folder can be created, the
  tracking store answers (one try, 10 s at most), the device exists, and for a SLURM
  launcher with jobs to submit ``sbatch``/``sinfo`` answer; each failure is one line
  (masked) and exit status 1, before any MLflow run or parent exists.
- `launch_unfinished`: for launchers that submit to a scheduler (SLURM), the jobs whose config
  already has a FINISHED run are not submitted: they are recorded ``skipped`` with that run.
- `interrupted`: SIGTERM/SIGHUP/SIGINT of the launching process (any launcher) ends with
  the sweep's summary (done, skipped, killed, failed, not started) and exit status
  143/129/130, without a traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from hydra.core.utils import JobReturn, JobStatus, filter_overrides
from omegaconf import OmegaConf, open_dict

#: the lock a launch holds on its sweep folder (`hold_sweep_dir`)
SWEEP_LOCK = ".glattn-sweep.lock"


def say(message: str) -> str:
    from glattn.secrets import mask_text

    return mask_text(f"[glattn sweep] {message}")


def is_scheduler(config) -> bool:
    """The sweep's launcher submits jobs to a cluster scheduler, by its config: a SLURM
    queue's (``hydra/launcher=slurm``, hydra-submitit's ``submitit_slurm``: a submitit
    folder and a partition). Each submission costs, so nothing FINISHED is submitted."""
    launcher = OmegaConf.select(config, "hydra.launcher", default=None) or {}
    return "submitit_folder" in launcher and "partition" in launcher


def check_sweep(config) -> None:
    """Raise SystemExit with one line when the output folder cannot be created or the
    tracking store does not answer (before the sweep folder or the parent run exist).
    A config without ``paths.output_dir`` (another Hydra app) has no folder to check."""
    from glattn import preflight

    output_dir = OmegaConf.select(config, "paths.output_dir", default=None)
    error = None if output_dir is None else preflight.output_dir_error(output_dir)
    if error is None and OmegaConf.select(config, "tracking.enabled", default=False):
        error = preflight.tracking_error(OmegaConf.select(config, "tracking.uri"))
    if error:
        raise SystemExit(say(error))


def check_chdir(config) -> None:
    """``hydra.job.chdir=true`` in glattn's app: SystemExit with one line. glattn resolves
    its relative paths (``paths.output_dir``, the SQLite store, ``dataset.root``) in the
    folder it was started from; run inside its own job folder, each job would open a store
    of its own there, and the parent run would have no children."""
    if OmegaConf.select(config, "hydra.job.chdir", default=False):
        raise SystemExit(
            say(
                "hydra.job.chdir=true: glattn runs every job in the folder it was started "
                "from (relative paths such as paths.output_dir and the tracking store resolve "
                "there; each job already has its own folder, hydra.runtime.output_dir); with "
                "chdir each job would keep a store of its own. Leave hydra.job.chdir=false"
            )
        )


def hold_sweep_dir(sweep_dir: Path):
    """An exclusive lock (`glattn.locks.file_lock`) on ``<sweep dir>/.glattn-sweep.lock``
    while the launch's jobs run: the sweeper releases it when they have ended; the end of
    the process, however it ends, releases it too. A second launch into the same folder
    while the first runs would overwrite the jobs' status files and under-count both
    summaries: it gets SystemExit with one line naming the holder (a single try, no wait)."""
    from glattn.locks import Timeout, file_lock, holder

    path = Path(sweep_dir) / SWEEP_LOCK
    lock = file_lock(path)
    try:
        lock.acquire(blocking=False)
    except Timeout:
        raise SystemExit(
            say(
                f"hydra.sweep.dir={str(sweep_dir)!r} is in use by another launch "
                f"({holder(path)}) that is still running: wait for it (the same command then "
                "continues the grid: FINISHED jobs are skipped), or give another "
                "hydra.sweep.dir"
            )
        ) from None
    return lock


def report_failures(ledger) -> None:
    """Outside glattn's app no sweep callback prints a summary or sets the exit status: each
    failed job's error, one line each, and SystemExit(1) (Hydra's basic sweeper would raise
    the first job's error)."""
    failed = [job for job in ledger.jobs if job["hydra_status"] == "FAILED"]
    if not failed:
        return
    lines = [f"{len(failed)} of {len(ledger.jobs)} job(s) failed:"]
    for job in failed:
        lines.append(f"  #{job['num']:<3} {' '.join(job['overrides'])}")
        lines.append(f"        error: {job['error']}\n        log:   {job['job_dir']}")
    print(say("\n".join(lines)), file=sys.stderr, flush=True)
    raise SystemExit(1)


def check_device(sweeper, jobs: Sequence[Sequence[str]]) -> None:
    """``trainer.device`` names a device this machine lacks (cuda without CUDA) and some job
    has something to do: SystemExit with one line listing the devices there are, before
    the parent run exists. A grid that is all FINISHED needs no device (each job says
    where it ran)."""
    from glattn import preflight

    error = preflight.device_error(OmegaConf.select(sweeper.config, "trainer.device") or "auto")
    if error and any_unfinished(sweeper, jobs):
        raise SystemExit(say(error))


def check_scheduler(sweeper, jobs: Sequence[Sequence[str]]) -> None:
    """For a SLURM launcher with something to submit: ``sbatch`` present and ``sinfo``
    answering, else SystemExit with one line pointing to local_gpus and the cluster script.
    A grid that is all FINISHED submits nothing and needs no cluster."""
    from glattn import preflight

    if not is_scheduler(sweeper.config) or not any_unfinished(sweeper, jobs):
        return
    error = preflight.slurm_error()
    if error:
        raise SystemExit(say(error))


def _job_cfg(sweeper, overrides: Sequence[str], num: int):
    from hydra.core.hydra_config import HydraConfig

    cfg = sweeper.hydra_context.config_loader.load_sweep_config(sweeper.config, list(overrides))
    with open_dict(cfg.hydra.job):
        cfg.hydra.job.num, cfg.hydra.job.id = num, str(num)
    HydraConfig.instance().set_config(cfg)  # ${hydra:...} interpolations read this
    return cfg


def finished_run(sweeper, overrides: Sequence[str], num: int):
    """The FINISHED MLflow run of job ``num`` (its fingerprint and task), or None; None
    also when sweep.rerun=true or when it cannot tell (the job finds out itself). A fused
    job (glattn.sweep.fuse) is FINISHED when each of its members is (its last one's run)."""
    from glattn.sweep.fuse import members

    runs = [_finished_run(sweeper, member, num) for member in members(overrides)]
    return runs[-1] if all(run is not None for run in runs) else None


def _finished_run(sweeper, overrides: Sequence[str], num: int):
    from hydra.core.hydra_config import HydraConfig

    from glattn.config import config_fingerprint
    from glattn.job.spec import route_debug
    from glattn.tracking import find_finished_run, sqlite_path

    if OmegaConf.select(sweeper.config, "sweep.rerun", default=False):
        return None
    previous = HydraConfig.instance().cfg
    try:
        cfg = _job_cfg(sweeper, overrides, num)
        task_cfg = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])
        db = sqlite_path(OmegaConf.select(task_cfg, "tracking.uri"))
        if db is not None and not db.exists():  # no store yet: nothing FINISHED (none made)
            return None
        fingerprint = config_fingerprint(task_cfg)
        route_debug(task_cfg)  # a debug preset's runs are in <experiment>-debug
        return find_finished_run(task_cfg.tracking, fingerprint, str(task_cfg.task))
    except Exception:  # noqa: BLE001 - cannot tell: the job decides
        return None
    finally:
        HydraConfig.instance().cfg = previous


def _skipped(sweeper, overrides: Sequence[str], num: int, run) -> JobReturn:
    """A JobReturn for a job not submitted: FINISHED already; its status.json says so."""
    from glattn.job.protocol import write_status
    from glattn.sweep.outcomes import job_dir_for

    job_dir = job_dir_for(sweeper, overrides, num)
    write_status(job_dir, "skipped", run_id=run.info.run_id)
    ret = JobReturn(overrides=list(overrides), status=JobStatus.COMPLETED)
    ret.return_value = dict(run.data.metrics)
    print(
        say(
            f"#{num} {' '.join(filter_overrides(overrides))}: already FINISHED as MLflow run "
            f"{run.info.run_name} ({run.info.run_id}); not submitted"
        ),
        flush=True,
    )
    return ret


def launch_unfinished(sweeper, batch: Sequence[Sequence[str]], start: int) -> list[JobReturn]:
    """Launch ``batch`` (job numbers from ``start``), leaving out the jobs FINISHED already
    when the launcher submits to a scheduler: contiguous runs of unfinished jobs are
    launched as they are (job numbers and folders unchanged), the rest recorded skipped."""
    if not is_scheduler(sweeper.config):
        return list(sweeper.launcher.launch(batch, initial_job_idx=start))
    results: list[JobReturn | None] = [None] * len(batch)
    todo: list[int] = []
    for i, overrides in enumerate(batch):
        run = finished_run(sweeper, overrides, start + i)
        if run is None:
            todo.append(i)
        else:
            results[i] = _skipped(sweeper, overrides, start + i, run)
    groups: list[list[int]] = []
    for i in todo:  # contiguous runs keep Hydra's numbering
        if groups and groups[-1][-1] == i - 1:
            groups[-1].append(i)
        else:
            groups.append([i])
    for group in groups:
        launched = sweeper.launcher.launch(
            [batch[i] for i in group], initial_job_idx=start + group[0]
        )
        for i, ret in zip(group, launched):
            results[i] = ret
    return results  # type: ignore[return-value]


def any_unfinished(sweeper, jobs: Sequence[Sequence[str]]) -> bool:
    """True when some job has no FINISHED run (for a scheduler: something to submit)."""
    return any(finished_run(sweeper, overrides, num) is None for num, overrides in enumerate(jobs))


def _outcome(job_dir: str | None, hydra_status: str | None) -> tuple[str, str | None]:
    from glattn.job.protocol import read_status

    status = read_status(job_dir) if job_dir else None
    if status is not None:
        return status["status"], status.get("error")
    if hydra_status == "COMPLETED":
        return "finished", None
    if job_dir and Path(job_dir).exists():
        return "killed", "ended without reporting (interrupted)"
    return "not started", None


def interrupted(sweeper, jobs: Sequence[Sequence[str]], ledger, exc: BaseException) -> int:
    """Print the sweep's summary after a stop signal or Ctrl-C; returns the exit status
    (143 SIGTERM, 129 SIGHUP, 130 SIGINT)."""
    from glattn.job.lifecycle import JobInterrupted, interrupt_exit_status
    from glattn.sweep.outcomes import job_dir_for

    signal_name = exc.signal_name if isinstance(exc, JobInterrupted) else "SIGINT"
    recorded = {job["num"]: job for job in ledger.jobs}
    counts = {"finished": 0, "skipped": 0, "killed": 0, "failed": 0, "not started": 0}
    lines = []
    for num, overrides in enumerate(jobs):
        entry = recorded.get(num, {})
        try:
            job_dir = entry.get("job_dir") or job_dir_for(sweeper, overrides, num)
        except Exception:  # noqa: BLE001 - a summary must not fail
            job_dir = None
        status, error = _outcome(job_dir, entry.get("hydra_status"))
        counts[status] = counts.get(status, 0) + 1
        if status in ("killed", "failed"):
            from glattn.secrets import mask_override

            shown = " ".join(mask_override(o) for o in filter_overrides(overrides))
            lines.append(f"  #{num:<3} {status:<8} {shown}\n        log:   {job_dir}")
            if status == "failed" and error:
                lines[-1] += f"\n        error: {error}"
    head = (
        f"interrupted by {signal_name}: {len(jobs)} jobs: {counts['finished']} done, "
        f"{counts['skipped']} skipped, {counts['killed']} killed, {counts['failed']} failed, "
        f"{counts['not started']} not started. The same command continues the sweep "
        "(FINISHED jobs are skipped, killed ones resume from their last checkpoint)"
    )
    try:
        print("\n".join([say(head), *lines]), flush=True)
        sys.stderr.flush()
    except OSError:  # SIGHUP: the terminal is gone; the records are written already
        pass
    return interrupt_exit_status(exc)
