"""The run queries the jobs, the sweep (`glattn.sweep`) and plan mode use: a job's run by
its fingerprint and task (any status), FINISHED job runs, a sweep's parent by its grid; and
the report's reads (metric histories, experiment names)."""

from __future__ import annotations

from glattn.tracking.names import (
    FINGERPRINT_TAG,
    GRID_TAG,
    JOB_ROLE,
    ROLE_TAG,
    SWEEP_ROLE,
    TASK_TAG,
)


def job_runs(client, experiment_id: str, fingerprint: str, task: str) -> list:
    """Every run of this job (fingerprint + task) in the experiment, newest first."""
    return client.search_runs(
        [experiment_id],
        filter_string=f"tags.{FINGERPRINT_TAG} = '{fingerprint}' and tags.{TASK_TAG} = '{task}'",
        order_by=["attributes.start_time DESC"],
        max_results=1000,
    )


def find_finished_run(tracking_cfg, fingerprint: str, task: str = "train"):
    """The newest FINISHED run of ``task`` (train | eval) with this fingerprint, or None."""
    from glattn.tracking.client import make_client

    if not tracking_cfg.get("enabled", True):
        return None
    client = make_client(tracking_cfg.uri)
    experiment = client.get_experiment_by_name(str(tracking_cfg.experiment))
    if experiment is None:
        return None
    runs = [r for r in job_runs(client, experiment.experiment_id, fingerprint, task)]
    return next((r for r in runs if r.info.status == "FINISHED"), None)


def finished_runs(client) -> list:
    """FINISHED job runs of every experiment of the store (for "done?" and cost estimates)."""
    exps = [e.experiment_id for e in client.search_experiments()]
    if not exps:
        return []
    return client.search_runs(
        exps,
        filter_string=f"attributes.status = 'FINISHED' and tags.`{ROLE_TAG}` = '{JOB_ROLE}'",
        max_results=50000,
    )


def find_parent(client, experiment_id: str, grid: str):
    """The newest parent run of the sweep identified by ``grid`` (any status), or None."""
    runs = client.search_runs(
        [experiment_id],
        filter_string=f"tags.`{ROLE_TAG}` = '{SWEEP_ROLE}' and tags.`{GRID_TAG}` = '{grid}'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    return runs[0] if runs else None


def finished_job_run(client, fingerprint: str, task: str = "train"):
    """The newest FINISHED run of this job (fingerprint + task) in any experiment of the
    store, or None: a finished training reused by the same config in another experiment."""
    exps = [e.experiment_id for e in client.search_experiments()]
    if not exps:
        return None
    runs = client.search_runs(
        exps,
        filter_string=(
            f"attributes.status = 'FINISHED' and tags.{FINGERPRINT_TAG} = '{fingerprint}' "
            f"and tags.{TASK_TAG} = '{task}' and tags.`{ROLE_TAG}` = '{JOB_ROLE}'"
        ),
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    return runs[0] if runs else None


def experiment_names(client) -> list[str]:
    """The names of the store's experiments, sorted."""
    return sorted(e.name for e in client.search_experiments())


def metric_history(client, run_ids, key: str) -> dict[str, dict[int, float]]:
    """{run_id: {step: value}} of metric ``key`` (per-epoch metrics use step=epoch)."""
    return {
        run_id: {int(m.step): float(m.value) for m in client.get_metric_history(run_id, key)}
        for run_id in run_ids
    }
