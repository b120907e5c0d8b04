"""Hydra callback that makes a multirun one tracked, summarised sweep.

Registered in conf/config.yaml::

    hydra:
      callbacks:
        glattn_sweep:
          _target_: hydra_plugins.glattn_sweeper.callback.GlattnSweepCallback

Hydra calls ``on_multirun_end`` in the launching process (after every job; the parent run
was opened before the first by the subclass hydra_plugins.glattn_sweeper.callback, which
conf/config.yaml registers) and ``on_job_end`` in each job's
process (the same process for the basic launcher, a subprocess for local_gpus, the SLURM
job for submitit). Hydra only *warns* when a callback raises an
Exception, so the fatal paths here raise SystemExit, which Hydra lets through.

The summary counts each job by what it did: ``done`` (trained), ``reused`` (a training
FINISHED in another experiment of the store, glattn.job.reuse: nothing trained), ``skipped``
(FINISHED in this experiment already) and ``failed``; a reused job's line names its source
run. Every job run the sweep touched carries the sweep's membership tag
(glattn.tracking.provenance.sweep_member_tag), so the sweep's view shows all of its grid.
"""

from __future__ import annotations

import copy
import json
import logging
import traceback
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from glattn.job import protocol
from glattn.secrets import mask_text
from glattn.sweep import progress, store
from glattn.sweep.outcomes import release_parent
from glattn.tracking import ui_command
from glattn.tracking.provenance import SWEEP_MEMBER_VALUE, sweep_member_tag

log = logging.getLogger(__name__)


#: the sweep folders admitted in this process (hydra_plugins.glattn_sweeper.admission)
ADMITTED: dict[str, tuple[set, Any]] = {}


def is_plan(config: DictConfig) -> bool:
    return bool(OmegaConf.select(config, "sweep.plan", default=False)) or bool(
        OmegaConf.select(config, "paper.stages", default=None)
    )


class SweepCallback(Callback):
    """The sweep's summary and the end of its parent run (GlattnSweepCallback opens it)."""

    # -- launching process -------------------------------------------------------------
    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if is_plan(config):
            return
        sweep_dir = Path(str(config.hydra.sweep.dir))
        jobs = collect_jobs(sweep_dir)
        summary = summarize(jobs)
        text = format_summary(summary, f"{config.tracking.experiment}/{sweep_dir.name}")
        print(text, flush=True)
        protocol.atomic_write_text(sweep_dir / "summary.json", json.dumps(summary, indent=1))
        parent = protocol.read_parent_run_id(sweep_dir)
        if parent is not None and store.tracking_enabled(config):
            self._end_parent(config, parent, summary, sweep_dir)
        release_parent(sweep_dir)  # ended: stop signals act as before
        if store.tracking_enabled(config):
            print(f"open the runs in the MLflow UI: {compare_hint(config, jobs)}", flush=True)
        if summary["failed"]:
            raise SystemExit(1)

    @staticmethod
    def _end_parent(config: DictConfig, run_id: str, summary: dict, sweep_dir: Path) -> None:
        client = store.client_for(config)
        for key in OUTCOMES:
            client.set_tag(run_id, f"glattn.jobs_{key}", len(summary[key]))
        _join(client, run_id, summary)
        try:
            client.log_artifact(run_id, str(sweep_dir / "summary.json"))
        except Exception as e:  # noqa: BLE001 - the summary is also on disk and on screen
            log.warning(f"[glattn sweep] summary.json not logged to the parent run: {e}")
        client.set_terminated(run_id, "FAILED" if summary["failed"] else "FINISHED")

    # -- job process -------------------------------------------------------------------
    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        """A failed job's backstop, then ``job k/N`` and the grid's ETA (glattn.sweep.progress)."""
        self._report_failure(config, job_return)
        if str(OmegaConf.select(config, "hydra.mode", default="")).endswith("MULTIRUN"):
            try:
                print(progress.grid_progress(config).line(config.hydra.job.num), flush=True)
            except Exception as e:  # noqa: BLE001 - a progress line must not fail a job
                log.debug(f"[glattn sweep] no progress line: {e}")

    @staticmethod
    def _report_failure(config: DictConfig, job_return: JobReturn) -> None:
        """Backstop: a job whose task raised before writing status.json still reports.
        A job that reported itself (glattn.job.lifecycle) logged its error once already."""
        if job_return.status != JobStatus.FAILED:
            return
        job_dir = Path(str(config.hydra.runtime.output_dir))
        exc = job_return._return_value
        tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        protocol.atomic_write_text(job_dir / "traceback.log", mask_text(tb))
        status = protocol.read_status(job_dir)
        if status is not None and status.get("status") in ("failed", "killed"):
            return
        log.error(f"job failed with overrides {job_return.overrides}:\n{mask_text(tb)}")
        run_id = status.get("run_id") if status else None
        protocol.write_status(job_dir, "failed", mask_text(f"{type(exc).__name__}: {exc}"), run_id)


def compare_hint(config: DictConfig, jobs: list[dict]) -> str:
    """The MLflow UI link of the sweep (glattn.tracking.ui.sweep_view): the job runs of its
    grid (the parent's children and the FINISHED runs its jobs reused) in the parent's
    experiment, tagged members of the grid; the plain ``mlflow ui`` command if that fails."""
    from glattn.job.spec import route_debug
    from glattn.tracking import names, ui

    sweep_dir = Path(str(config.hydra.sweep.dir))
    try:
        client, config = store.client_for(config), copy.deepcopy(config)
        route_debug(config)  # debug=smoke: the runs are in <experiment>-debug
        experiment = client.get_experiment_by_name(str(config.tracking.experiment))
        exp_id, grid = experiment.experiment_id, None
        ids = {j["run_id"] for j in jobs if j.get("run_id")}
        parent = protocol.read_parent_run_id(sweep_dir)
        if parent is not None:
            grid = client.get_run(parent).data.tags.get(names.GRID_TAG)
            children = f"tags.`{names.PARENT_TAG}` = '{parent}'"
            ids |= {
                r.info.run_id for r in client.search_runs([exp_id], children, max_results=5000)
            }
        runs = [client.get_run(i) for i in sorted(ids)]
        runs = [
            r
            for r in runs
            if r.info.experiment_id == exp_id and r.data.tags.get(names.ROLE_TAG) == names.JOB_ROLE
        ]
        grid = grid or store.grid_id(experiment.name, [j.get("overrides") or [] for j in jobs])
        name = f"{experiment.name}/{sweep_dir.name}"
        return ui.sweep_view(client, exp_id, config.tracking.uri, grid, name, runs)
    except Exception as e:  # noqa: BLE001 - the link must not fail a finished sweep
        log.warning(f"[glattn sweep] no MLflow UI view: {type(e).__name__}: {e}")
        return ui_command(config.tracking.uri)


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
        for key in ("source", "members"):
            if status.get(key):
                job[key] = status[key]
    return jobs


def _join(client, parent: str, summary: dict) -> None:
    """Tag every job run of the summary (members of fused jobs too) as the sweep's: a job
    tags its own run; this covers runs a job could not tag (skipped before it started)."""
    tag = sweep_member_tag(parent)
    for job in (j for key in OUTCOMES if key != "failed" for j in summary[key]):
        ids = {job.get("run_id")} | {m.get("run_id") for m in job.get("members") or []}
        for run_id in sorted(i for i in ids if i):
            try:
                if client.get_run(run_id).data.tags.get(tag) != SWEEP_MEMBER_VALUE:
                    client.set_tag(run_id, tag, SWEEP_MEMBER_VALUE)
            except Exception as e:  # noqa: BLE001 - the summary stands without the tag
                log.warning(f"[glattn sweep] run {run_id} not tagged with its sweep: {e}")


#: the summary's outcomes, in the order it prints them (summary.json's keys)
OUTCOMES = ("finished", "reused", "skipped", "failed")
_LABELS = {"finished": "done", "reused": "reused", "skipped": "skipped", "failed": "failed"}


def summarize(jobs: list[dict]) -> dict:
    """Jobs by outcome; a killed job counts as failed (it did not finish)."""
    out: dict[str, list] = {key: [] for key in OUTCOMES}
    for job in jobs:
        out["failed" if job["status"] == "killed" else job["status"]].append(job)
    return out


def _source(job: dict) -> str:
    """`` <- experiment probeC, run <name> (<id>)`` for a reused job (or its members)."""
    sources = [job.get("source")] + [m.get("source") for m in job.get("members") or []]
    named = [
        f"experiment {s.get('experiment')}, run {s.get('run_name')} ({s['run_id']})"
        if s.get("run_id")
        else f"checkpoint {s.get('path')}"
        for s in sources
        if s
    ]
    return f"\n        reused from: {'; '.join(named)}" if named else ""


def format_summary(summary: dict, name: str) -> str:
    n = sum(len(v) for v in summary.values())
    shown = [k for k in OUTCOMES if k != "reused" or summary.get(k)]  # reused: when there are
    counts = ", ".join(f"{len(summary.get(k, []))} {_LABELS[k]}" for k in shown)
    lines = [f"[glattn sweep] {name}: {n} jobs: {counts}"]
    for key in OUTCOMES:
        for job in summary.get(key, []):
            ov = " ".join(job.get("overrides") or [])
            line = f"  #{job['num']:<3} {job.get('status', key):<8} {ov}"
            if key == "reused":
                line += _source(job)
            if key == "failed":
                error = str(job.get("error")).replace("\n", "\n               ")
                line += f"\n        error: {error}\n        log:   {job.get('job_dir')}"
            lines.append(line)
    return "\n".join(lines)
