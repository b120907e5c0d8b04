"""The whole grid checked before the sweep leaves a trace: each configuration of the grid is
composed and checked as a single run checks its own (glattn.job.lifecycle.check_config:
values, registry targets, data options; then the task's pre-flight: training builds the
model on the meta device, evaluation loads ``ckpt_path`` and rebuilds its model), in the
launching process, before the sweep folder, the tracking store or the parent run exist. A
refused grid is one message (each distinct error once, with the jobs it hits) and exit
status 1, before any job has started.

Jobs that differ only in an integer ``seed`` are one configuration, composed and checked
once: composing costs most of the check (~0.9 s of CPU a job for a resnet50 grid on a
loaded machine), and a grid is usually a few seeds of each configuration. Only glattn's own
task is checked (`glattn_task`): another task function, even on glattn's conf/, may read
keys of its own.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence

from hydra.core.utils import filter_overrides
from hydra.errors import HydraException
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

log = logging.getLogger(__name__)

MAX_JOBS_LISTED = 8
SWEEP_CALLBACK = "hydra_plugins.glattn_sweeper.callback.GlattnSweepCallback"
#: glattn's Hydra task function (glattn.cli): module and name
TASK = ("glattn.cli", "_task")


def glattn_app(config) -> bool:
    """The sweep's config registers glattn's sweep callback (which prints the summary and
    sets the exit status): glattn's conf/, or an app composing it."""
    callbacks = OmegaConf.select(config, "hydra.callbacks", default=None) or {}
    return any(
        OmegaConf.select(cb, "_target_", default=None) == SWEEP_CALLBACK
        for cb in callbacks.values()
    )


def glattn_task(sweeper) -> bool:
    """The jobs run glattn's own task (the ``glattn`` command, run.py), whose checks
    `check_grid` makes; another task function on glattn's conf/ has its own keys."""
    task = getattr(sweeper, "task_function", None)
    return (getattr(task, "__module__", None), getattr(task, "__qualname__", None)) == TASK


def _preflight(task_cfg) -> None:
    """The task's own pre-flight, as glattn.job.tasks runs it before any data work."""
    if str(task_cfg.task) == "eval":
        from glattn.job.tasks.eval import _eval_preflight

        _eval_preflight(task_cfg)
    else:
        from glattn.job.build import check_model

        check_model(task_cfg)


def _preflight_key(task_cfg) -> str:
    from glattn.config import resolved_config

    return json.dumps(resolved_config(task_cfg, exclude=("hydra", "seed")), sort_keys=True)


def job_error(sweeper, overrides: Sequence[str], num: int, done: set[str]) -> str | None:
    """What a single run of job `num` would refuse, or None. `done`: pre-flights passed."""
    from glattn.errors import UserError
    from glattn.job.lifecycle import check_config
    from hydra_plugins.glattn_sweeper.guard import _job_cfg

    try:
        cfg = _job_cfg(sweeper, overrides, num)  # sets HydraConfig for ${hydra:...}
        task_cfg = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])
        check_config(task_cfg)
        key = _preflight_key(task_cfg)
        if key not in done:
            _preflight(task_cfg)
            done.add(key)
    except UserError as exc:
        return str(exc)
    except (HydraException, OmegaConfBaseException) as exc:  # composition, interpolation
        return f"{type(exc).__name__}: {exc}"
    except Exception as exc:  # noqa: BLE001 - not the config's fault: the job finds out
        log.debug("[glattn sweep] job #%d not checked here (%s: %s)", num, type(exc).__name__, exc)
    return None


def seedless(overrides: Sequence[str]) -> tuple[str, ...]:
    """`overrides` with an integer ``seed=N`` as ``seed=*``: the jobs of one configuration."""
    return tuple(
        "seed=*" if o.startswith("seed=") and o[5:].lstrip("-").isdigit() else o for o in overrides
    )


def grid_errors(sweeper, jobs: Sequence[Sequence[str]]) -> dict[str, list[int]]:
    """Each distinct refusal of the grid's jobs -> the job numbers it hits. Jobs that differ
    only in an integer ``seed`` are one configuration: composed and checked once (composing
    costs most of the check; a grid is usually a few seeds of each configuration)."""
    from hydra.core.hydra_config import HydraConfig

    configs: dict[tuple[str, ...], list[int]] = {}
    for num, overrides in enumerate(jobs):
        configs.setdefault(seedless(overrides), []).append(num)
    errors: dict[str, list[int]] = {}
    done: set[str] = set()
    previous = HydraConfig.instance().cfg
    try:
        for nums in configs.values():
            error = job_error(sweeper, jobs[nums[0]], nums[0], done)
            if error is not None:
                errors.setdefault(error, []).extend(nums)
    finally:
        HydraConfig.instance().cfg = previous
    return {error: sorted(nums) for error, nums in errors.items()}


def refusal(jobs: Sequence[Sequence[str]], errors: dict[str, list[int]]) -> str:
    """The one message of a refused grid."""
    from glattn.secrets import mask_override

    bad = sorted({num for nums in errors.values() for num in nums})
    lines = [
        f"the grid is refused before any run or folder exists: {len(bad)} of {len(jobs)} "
        "job(s) have a config a single run would refuse; fix it and launch again"
    ]
    for error, nums in errors.items():
        shown = nums[:MAX_JOBS_LISTED]
        more = f" (and {len(nums) - len(shown)} more)" if len(nums) > len(shown) else ""
        first = " ".join(mask_override(o) for o in filter_overrides(jobs[nums[0]]))
        lines.append(
            f"  job(s) {', '.join(f'#{n}' for n in shown)}{more}, e.g. #{nums[0]}: {first}"
        )
        lines.append("    " + error.replace("\n", "\n    "))
    return "\n".join(lines)


def check_grid(sweeper, jobs: Sequence[Sequence[str]], secrets: set[str]) -> None:
    """SystemExit with one message (masked) when some job of the grid would be refused."""
    from hydra_plugins.glattn_sweeper.guard import say

    if not glattn_task(sweeper):
        return
    errors = grid_errors(sweeper, jobs)
    if errors:
        from glattn.secrets import mask_text

        raise SystemExit(mask_text(say(refusal(jobs, errors)), secrets))
