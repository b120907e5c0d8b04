"""A sweep's progress as its jobs finish: ``job k/N`` and an ETA for the grid.

Read from the sweep folder, so any process can say it (the job's own, under any launcher):
N is the grid Hydra launches, parsed from ``multirun.yaml`` the way Hydra's BasicSweeper
does (``hydra.sweeper.params`` + the command line's sweep overrides); k counts the job
folders with a ``status.json`` (glattn.job.protocol); a job's time is from its folder's
``.hydra/config.yaml`` (Hydra writes it as the job starts) to its ``status.json``. The ETA is
the mean measured job time x the jobs left / the jobs that run at once
(glattn.sweep.schedule.configured_slots); a grid of very unequal jobs (plan mode's costs,
``sweep.plan=true``) finishes sooner than that when the costliest run first (LPT order).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from omegaconf import OmegaConf

from glattn.job.protocol import STATUS_FILE
from glattn.logging_utils import clock
from glattn.sweep.schedule import configured_slots

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GridProgress:
    done: int
    total: int | None  # None: the grid could not be parsed (e.g. a glob sweep)
    job_s: list[float]  # measured times of the jobs done
    slots: int

    def line(self, num: int | None = None) -> str:
        """``[glattn sweep] job 3/12 done (#2, 41.0 s); grid ETA 0:06:09 (9 jobs left,
        41.0 s a job on average, 1 at once)``."""
        total = "?" if self.total is None else str(self.total)
        head = f"[glattn sweep] job {self.done}/{total} done"
        if num is not None:
            last = f", {self.job_s[-1]:.1f} s" if self.job_s else ""
            head += f" (#{num}{last})"
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


def grid_size(sweep_dir: Path) -> int | None:
    """Jobs of the sweep whose ``multirun.yaml`` is in `sweep_dir` (None if unknown)."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    path = Path(sweep_dir) / "multirun.yaml"
    if not path.is_file():
        return None
    try:
        cfg = OmegaConf.load(path)
        params = OmegaConf.select(cfg, "hydra.sweeper.params", default=None) or {}
        args = [f"{k}={v}" for k, v in params.items()]
        args += list(OmegaConf.select(cfg, "hydra.overrides.task", default=None) or [])
        overrides = OverridesParser.create().parse_overrides(args)
        jobs = [job for batch in BasicSweeper.split_arguments(overrides, None) for job in batch]
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


def grid_progress(config) -> GridProgress:
    """The progress of the sweep a job's `config` belongs to (``hydra.sweep.dir``)."""
    sweep_dir = Path(str(config.hydra.sweep.dir))
    dirs = sorted(p.parent for p in sweep_dir.glob(f"*/{STATUS_FILE}"))
    times = sorted(
        ((d / STATUS_FILE).stat().st_mtime, s) for d in dirs if (s := job_seconds(d)) is not None
    )
    return GridProgress(
        len(dirs), grid_size(sweep_dir), [s for _, s in times], configured_slots(config)
    )
