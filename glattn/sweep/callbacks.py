"""Hydra callback that makes a multirun one tracked, summarised sweep.

Registered in conf/config.yaml::

    hydra:
      callbacks:
        glattn_sweep:
          _target_: glattn.sweep.callbacks.SweepCallback

Hydra calls ``on_multirun_start``/``on_multirun_end`` in the launching process and
``on_job_end`` in each job's process (the same process for the basic launcher, a subprocess
for local_gpus, the SLURM job for submitit). Hydra only *warns* when a callback raises an
Exception, so the fatal paths here raise SystemExit, which Hydra lets through.
"""

from __future__ import annotations

import json
import logging
import traceback
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from glattn.sweep import (
    protocol,
    store,
    transfer,  # noqa: F401  (registers the ${glattn_source_ckpt:} resolver)
)

log = logging.getLogger(__name__)


def _is_plan(config: DictConfig) -> bool:
    return bool(OmegaConf.select(config, "sweep.plan", default=False)) or bool(
        OmegaConf.select(config, "paper.stages", default=None)
    )


class SweepCallback(Callback):
    def __init__(self) -> None:
        self.parent_run_id: str | None = None

    # -- launching process -------------------------------------------------------------
    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        if _is_plan(config) or not store.tracking_enabled(config):
            return
        sweep_dir = Path(str(config.hydra.sweep.dir))
        experiment = str(config.tracking.experiment)
        run_name = f"{experiment}/{sweep_dir.name}"
        try:
            exp_id = store.ensure_experiment(config)
            client = store.client_for(config)
            overrides = " ".join(OmegaConf.to_container(config.hydra.overrides.task))
            self.parent_run_id = store.create_parent_run(
                client,
                exp_id,
                run_name,
                {
                    "glattn.sweep_dir": sweep_dir.resolve(),
                    "overrides": overrides,
                    "launcher": OmegaConf.select(
                        config, "hydra.runtime.choices.hydra/launcher", default="basic"
                    ),
                    "experiment_file": OmegaConf.select(
                        config, "hydra.runtime.choices.experiment", default="null"
                    ),
                },
            )
        except Exception as e:  # noqa: BLE001 - any store failure must stop the sweep here
            raise SystemExit(
                f"[glattn sweep] cannot create the MLflow parent run in "
                f"tracking.uri={config.tracking.uri!r}, tracking.experiment={experiment!r}: "
                f"{type(e).__name__}: {e}"
            ) from e
        protocol.write_parent_run_id(sweep_dir, self.parent_run_id)
        log.info(f"[glattn sweep] parent run {run_name} ({self.parent_run_id})")

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if _is_plan(config):
            return
        sweep_dir = Path(str(config.hydra.sweep.dir))
        jobs = collect_jobs(sweep_dir)
        summary = summarize(jobs)
        text = format_summary(summary, f"{config.tracking.experiment}/{sweep_dir.name}")
        print(text, flush=True)
        protocol.atomic_write_text(sweep_dir / "summary.json", json.dumps(summary, indent=1))
        if self.parent_run_id is not None:
            self._end_parent(config, summary, sweep_dir)
        if summary["failed"]:
            raise SystemExit(1)

    def _end_parent(self, config: DictConfig, summary: dict, sweep_dir: Path) -> None:
        client = store.client_for(config)
        for key in ("finished", "skipped", "failed"):
            client.set_tag(self.parent_run_id, f"glattn.jobs_{key}", len(summary[key]))
        try:
            client.log_artifact(self.parent_run_id, str(sweep_dir / "summary.json"))
        except Exception as e:  # noqa: BLE001 - the summary is also on disk and on screen
            log.warning(f"[glattn sweep] summary.json not logged to the parent run: {e}")
        client.set_terminated(self.parent_run_id, "FAILED" if summary["failed"] else "FINISHED")

    # -- job process -------------------------------------------------------------------
    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        """Backstop: a job whose task raised before writing status.json still reports."""
        if job_return.status != JobStatus.FAILED:
            return
        job_dir = Path(str(config.hydra.runtime.output_dir))
        exc = job_return._return_value
        tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        log.error(f"job failed with overrides {job_return.overrides}:\n{tb}")
        protocol.atomic_write_text(job_dir / "traceback.log", tb)
        status = protocol.read_status(job_dir)
        if status is None or status.get("status") != "failed":
            run_id = status.get("run_id") if status else None
            protocol.write_status(job_dir, "failed", f"{type(exc).__name__}: {exc}", run_id)


def collect_jobs(sweep_dir: Path) -> list[dict]:
    """Every job of the sweep with its final status, from jobs.json and status.json."""
    listing = sweep_dir / protocol.JOBS_FILE
    if listing.is_file():
        jobs = json.loads(listing.read_text())
    else:  # another sweeper: every job dir Hydra created
        jobs = [
            {"num": i, "job_dir": str(p.parent.parent), "overrides": None, "hydra_status": None}
            for i, p in enumerate(sorted(sweep_dir.glob("*/.hydra/overrides.yaml")))
        ]
    for job in jobs:
        status = protocol.read_status(job["job_dir"]) if job.get("job_dir") else None
        if status is None:
            if job.get("hydra_status") == "COMPLETED":
                status = {"status": "finished", "error": None, "run_id": None}
            else:
                err = job.get("error") or "no status.json: the job died before reporting"
                status = {"status": "failed", "error": err, "run_id": None}
        job.update(status=status["status"], error=status.get("error"), run_id=status.get("run_id"))
    return jobs


def summarize(jobs: list[dict]) -> dict:
    out: dict[str, list] = {"finished": [], "skipped": [], "failed": []}
    for job in jobs:
        out[job["status"]].append(job)
    return out


def format_summary(summary: dict, name: str) -> str:
    n = sum(len(v) for v in summary.values())
    lines = [
        f"[glattn sweep] {name}: {n} jobs: {len(summary['finished'])} done, "
        f"{len(summary['skipped'])} skipped, {len(summary['failed'])} failed"
    ]
    for key in ("finished", "skipped", "failed"):
        for job in summary[key]:
            ov = " ".join(job.get("overrides") or [])
            line = f"  #{job['num']:<3} {key:<8} {ov}"
            if key == "failed":
                error = str(job.get("error")).replace("\n", "\n               ")
                line += f"\n        error: {error}\n        log:   {job.get('job_dir')}"
            lines.append(line)
    return "\n".join(lines)
