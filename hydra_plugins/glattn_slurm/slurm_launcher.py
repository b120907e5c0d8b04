"""``hydra/launcher=slurm``: hydra-submitit-launcher's SlurmLauncher, one change.

The upstream ``launch`` (hydra-submitit-launcher 1.2.0) ends with
``[j.results()[0] for j in jobs]``: the first job that SLURM killed (out of memory, timeout
after the last requeue, node failure) raises there, the launching process stops waiting for
the others and the sweep's summary is never written. ``launch`` below is upstream's with
only that line changed: each job's outcome is collected on its own, and a job SLURM killed
becomes a FAILED JobReturn naming its SLURM job id and log. Submission, requeue on timeout
or preemption (``checkpoint()`` -> ``DelayedSubmission``) and the job side are upstream's.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, filter_overrides
from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import SlurmLauncher
from omegaconf import OmegaConf

log = logging.getLogger(__name__)


class GlattnSlurmLauncher(SlurmLauncher):
    def launch(
        self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int
    ) -> Sequence[JobReturn]:
        import submitit

        assert self.config is not None
        assert len(job_overrides) > 0
        params = self.params
        init_keys = {"max_num_timeout", "submitit_folder"}
        executor = submitit.AutoExecutor(
            cluster=self._EXECUTOR,
            folder=params["submitit_folder"],
            **{f"{self._EXECUTOR}_max_num_timeout": params["max_num_timeout"]},
        )
        baseparams = set(OmegaConf.structured(BaseQueueConf).keys())
        executor.update_parameters(
            **{
                k if k in baseparams else f"{self._EXECUTOR}_{k}": v
                for k, v in params.items()
                if k not in init_keys
            }
        )
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        if "mode" in self.config.hydra.sweep:
            os.chmod(sweep_dir, mode=int(str(self.config.hydra.sweep.mode), 8))
        log.info(f"Submitit '{self._EXECUTOR}' sweep output dir : {sweep_dir}")
        job_params: list[Any] = []
        for idx, overrides in enumerate(job_overrides, start=initial_job_idx):
            log.info(f"\t#{idx} : {' '.join(filter_overrides(overrides))}")
            job_params.append(
                (
                    list(overrides),
                    "hydra.sweep.dir",
                    idx,
                    f"job_id_for_{idx}",
                    Singleton.get_state(),
                )
            )
        jobs = executor.map_array(self, *zip(*job_params))
        returns = []
        for overrides, job in zip(job_overrides, jobs):
            try:
                returns.append(job.results()[0])
            except Exception as e:  # noqa: BLE001 - killed by SLURM: report it, go on
                lines = str(e).strip().splitlines()
                ret = JobReturn(overrides=list(overrides), status=JobStatus.FAILED)
                ret.return_value = RuntimeError(
                    f"SLURM job {job.job_id} ended without a result "
                    f"({type(e).__name__}: {lines[-1] if lines else ''}); log: {job.paths.stderr}"
                )
                log.error(f"SLURM job {job.job_id} failed: {type(e).__name__}")
                returns.append(ret)
        return returns
