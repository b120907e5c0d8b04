"""A sweep's progress as its jobs finish: ``job k/N`` and an ETA for the grid.

Read from the sweep folder, so any process can say it (the job's own, under any launcher):
N is the grid Hydra launches, parsed from ``multirun.yaml`` as the sweeper parses it
(glattn.sweep.expand: ``hydra.sweeper.params`` + the command line's sweep overrides); k
counts the job folders with a ``status.json`` (glattn.job.protocol); a job's time is from
its folder's ``.hydra/config.yaml`` (Hydra writes it as the job starts) to its
``status.json``, whose status counts the jobs by outcome (trained, reused, skipped,
failed). The ETA is the mean trained job's time x the jobs left / the jobs that run at once
(glattn.sweep.schedule.configured_slots); a grid of very unequal jobs (plan mode's costs,
``sweep.plan=true``) finishes sooner than that when the costliest run first (LPT order).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import OmegaConf

from glattn.job.protocol import STATUS_FILE, read_status
from glattn.logging_utils import clock
from glattn.sweep.schedule import configured_slots

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GridProgress:
    done: int
    total: int | None  # None: the grid could not be parsed (e.g. a glob sweep)
    job_s: list[float]  # measured times of the jobs done (the trained ones when there are)
    slots: int
    counts: dict = field(default_factory=dict)  # status.json's status -> jobs
    last: tuple[float, str] | None = None  # the newest job's (seconds, status)

    def line(self, num: int | None = None) -> str:
        """``[glattn sweep] job 3/12 done (#2, 41.0 s); grid ETA 0:06:09 (9 jobs left,
        41.0 s a job on average, 1 at once)``; once a job was reused, skipped or failed,
        the outcomes so far follow: ``job 3/12 done (#2, 1.2 s, reused; 1 trained,
        2 reused)``."""
        total = "?" if self.total is None else str(self.total)
        head = f"[glattn sweep] job {self.done}/{total} done"
        if num is not None:
            newest = (self.job_s[-1], "finished") if self.job_s else (None, "")
            seconds, status = self.last or newest
            last = f", {seconds:.1f} s" if seconds is not None else ""
            last += f", {_WORD.get(status, status)}" if status not in ("", "finished") else ""
            head += f" (#{num}{last}{self._outcomes()})"
        if self.total is None or not self.job_s:
            return head
        left = max(self.total - self.done, 0)
        if left == 0:
            return head + "; grid complete"
        mean = sum(self.job_s) / len(self.job_s)
        eta = mean * -(-left // self.slots)  # rounds of `slots` jobs at once
        return (
            f"{head}; grid ETA {clock(eta)} ({left} job{'s' * (left != 1)} left, "
            f"{mean:.1f} s a job on average, "
            f"{self.slots} at once)"
        )

    def _outcomes(self) -> str:
        """``; 1 trained, 2 reused`` once a job did something other than train."""
        if set(self.counts) <= {"finished"}:
            return ""
        order = ("finished", "reused", "skipped", "failed", "killed")
        return "; " + ", ".join(
            f"{self.counts[k]} {_WORD.get(k, k)}" for k in order if self.counts.get(k)
        )


_WORD = {"finished": "trained"}


def grid_size(sweep_dir: Path) -> int | None:
    """Jobs of the sweep whose ``multirun.yaml`` is in `sweep_dir` (None if unknown)."""
    from glattn.sweep import expand

    path = Path(sweep_dir) / "multirun.yaml"
    if not path.is_file():
        return None
    try:
        cfg = OmegaConf.load(path)
        params = OmegaConf.select(cfg, "hydra.sweeper.params", default=None) or {}
        task = OmegaConf.select(cfg, "hydra.overrides.task", default=None) or []
        jobs = expand.jobs(expand.arguments(params, task))
        from glattn.sweep.fuse import launched_jobs

        return len(launched_jobs(cfg, jobs))  # one fused job per configuration when fused
    except Exception as exc:  # noqa: BLE001 - a glob sweep needs the config loader
        log.debug("grid size of %s unknown: %s", sweep_dir, exc)
        return None


def job_seconds(job_dir: Path) -> float | None:
    start, end = Path(job_dir) / ".hydra" / "config.yaml", Path(job_dir) / STATUS_FILE
    if not (start.is_file() and end.is_file()):
        return None
    return max(end.stat().st_mtime - start.stat().st_mtime, 0.0)


def job_status(job_dir: Path) -> str:
    """The job's status.json status (``finished``, ``reused``, ``skipped``, ...)."""
    return str((read_status(job_dir) or {}).get("status", "failed"))


def grid_progress(config) -> GridProgress:
    """The progress of the sweep a job's `config` belongs to (``hydra.sweep.dir``). The ETA
    uses the trained jobs' times: a reused or skipped job takes seconds."""
    sweep_dir = Path(str(config.hydra.sweep.dir))
    dirs = sorted(p.parent for p in sweep_dir.glob(f"*/{STATUS_FILE}"))
    jobs = sorted(
        ((d / STATUS_FILE).stat().st_mtime, s, job_status(d))
        for d in dirs
        if (s := job_seconds(d)) is not None
    )
    counts: dict[str, int] = {}
    for d in dirs:
        status = job_status(d)
        counts[status] = counts.get(status, 0) + 1
    trained = [s for _, s, status in jobs if status == "finished"]
    return GridProgress(
        len(dirs),
        grid_size(sweep_dir),
        trained or [s for _, s, _ in jobs],
        configured_slots(config),
        counts,
        (jobs[-1][1], jobs[-1][2]) if jobs else None,
    )
