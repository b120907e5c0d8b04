"""Runs one local_gpus job in its own process: ``python -m ... _worker <job work dir>``.

Mirrors hydra_submitit_launcher's ``BaseSubmititLauncher.__call__``: restore Hydra's
singletons, compose the job's config, run it through ``hydra.core.utils.run_job`` (so
callbacks, the job dir, .hydra/ and logging behave as with any launcher), then pickle the
JobReturn for the launcher.
"""

from __future__ import annotations

import sys
from pathlib import Path


def main(work: Path) -> int:
    import cloudpickle
    from hydra.core.singleton import Singleton
    from hydra.core.utils import JobReturn, JobStatus, run_job, setup_globals
    from omegaconf import open_dict

    from glattn.resolvers import register

    register()  # before the job's config is composed and resolved in this process
    hydra_context, task_function, config, overrides, num, state = cloudpickle.loads(
        (work / "job.pkl").read_bytes()
    )
    Singleton.set_state(state)
    setup_globals()
    sweep_config = hydra_context.config_loader.load_sweep_config(config, overrides)
    with open_dict(sweep_config.hydra.job):
        sweep_config.hydra.job.id = str(num)
        sweep_config.hydra.job.num = num
    ret = run_job(
        hydra_context=hydra_context,
        task_function=task_function,
        config=sweep_config,
        job_dir_key="hydra.sweep.dir",
        job_subdir_key="hydra.sweep.subdir",
    )
    try:
        blob = cloudpickle.dumps(ret)
    except Exception as e:  # noqa: BLE001 - an unpicklable return value or exception
        safe = JobReturn(overrides=ret.overrides, status=ret.status, hydra_cfg=ret.hydra_cfg)
        value = ret._return_value
        safe.return_value = (
            RuntimeError(f"{type(value).__name__}: {value}")
            if ret.status == JobStatus.FAILED
            else repr(value)
        )
        blob = cloudpickle.dumps(safe)
        print(f"job return value not picklable ({e}); sent its repr", file=sys.stderr)
    tmp = work / "result.pkl.tmp"
    tmp.write_bytes(blob)
    tmp.replace(work / "result.pkl")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
