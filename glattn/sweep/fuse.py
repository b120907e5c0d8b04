"""``sweep.fuse_seeds=true``: the jobs of a grid that differ only in ``seed`` become one fused
job (the job side is glattn.job.tasks.fused).

`fuse_seed_jobs` groups the grid's override lists by everything but their ``seed=`` item:
a group with two seeds or more becomes one job, member 0's overrides plus
``sweep.fused_seeds=[...]`` (glattn.job.protocol), at the place of its first member; a job
alone in its group stays as it is. `members` gives a job's member override lists back (the
unfused jobs), so that "is this job FINISHED?" asks it of every member.
"""

from __future__ import annotations

from collections.abc import Sequence

from omegaconf import DictConfig, OmegaConf

from glattn.job.protocol import (
    FUSE_SEEDS_KEY,
    fused_job_overrides,
    fused_seeds,
    member_overrides,
    override_key,
)


def enabled(cfg: DictConfig) -> bool:
    """Whether the sweep's config asks for fused seeds (``sweep.fuse_seeds``)."""
    return bool(OmegaConf.select(cfg, FUSE_SEEDS_KEY, default=False))


def launched_jobs(cfg: DictConfig, jobs: Sequence[Sequence[str]]) -> list[list[str]]:
    """The jobs a sweep of `cfg` launches: the grid's, seeds fused when `enabled`."""
    return fuse_seed_jobs(jobs) if enabled(cfg) else [list(job) for job in jobs]


def _seed(job: Sequence[str]) -> int | None:
    values = [i.split("=", 1)[1] for i in job if override_key(i) == "seed" and "=" in i]
    try:
        return int(values[-1]) if values else None
    except ValueError:
        return None


def fuse_seed_jobs(jobs: Sequence[Sequence[str]]) -> list[list[str]]:
    """The grid's jobs with each group of seeds of one configuration fused into one job."""
    groups: dict[tuple[str, ...], list[list[str]]] = {}
    for job in jobs:
        rest = tuple(item for item in job if override_key(item) != "seed")
        groups.setdefault(rest, []).append(list(job))
    out = []
    for members in groups.values():
        seeds = [_seed(m) for m in members]
        if len(members) < 2 or None in seeds or len(set(seeds)) != len(seeds):
            out.extend(members)  # one seed, or seeds it cannot tell apart: unfused
        else:
            out.append(fused_job_overrides(members, seeds))
    return out


def members(job: Sequence[str]) -> list[list[str]]:
    """A job's unfused jobs: a fused job's members, else the job itself."""
    seeds = fused_seeds(job)
    if seeds is None:
        return [list(job)]
    return [member_overrides(list(job), seed) for seed in seeds]
