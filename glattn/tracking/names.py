"""Tag and role names of the MLflow record (what the UI, `glattn.report` and the sweep
read). Every module that writes or reads one of these imports it from here.

Job runs: ``glattn.role=job`` + ``fingerprint`` + ``task`` (train | eval) identify the job;
the group choices (FACTORS), ``seed``, ``overrides`` and ``git_commit`` describe it; eval
runs add ``eval_dataset``, ``eval_split``, ``source_fingerprint``, ``source_run_id``.
Sweep parent runs: ``glattn.role=sweep`` + ``glattn.grid`` (hash of the grid's jobs)
identify the sweep; its children carry MLflow's ``mlflow.parentRunId``.
"""

from glattn import groups

ROLE_TAG = "glattn.role"
JOB_ROLE = "job"
SWEEP_ROLE = "sweep"
FINGERPRINT_TAG = "fingerprint"
TASK_TAG = "task"
GRID_TAG = "glattn.grid"
SWEEP_DIR_TAG = "glattn.sweep_dir"
ERROR_TAG = "glattn.error"
ABORT_TAG = "glattn.abort"
PARENT_TAG = "mlflow.parentRunId"
#: The free-form ``tags=[...]`` of the config: ``tags`` (comma-joined) and one ``tag.<name>``
#: per entry; they never change the fingerprint.
TAGS_TAG = "tags"
USER_TAG_PREFIX = "tag."
#: Each config group's choice is also a short param, ``choice.<group>`` (e.g.
#: ``choice.fusion=cross_attn``), for MLflow's compare view and parallel coordinates.
CHOICE_PARAM_PREFIX = "choice."
#: Config-group tags that identify a configuration (the ablation factors), in table order:
#: the factor groups of glattn.groups.
FACTORS = groups.FACTORS
#: MLflow run statuses of a run that did not end well or did not end (continue it).
UNFINISHED = ("RUNNING", "FAILED", "KILLED", "SCHEDULED")
#: ``debug=smoke|overfit|profile`` runs: tag ``debug=<preset>`` (also the config's ``debug``
#: key, hence param ``debug``), the preset in the run name, and their own experiment
#: ``<experiment>-debug``; the report leaves them out unless ``--include-debug``.
DEBUG_TAG = "debug"
#: a fused job's member run (glattn.job.tasks.fused): the seeds it trained with, "0,1,2"
FUSED_TAG = "fused_with"
DEBUG_EXPERIMENT_SUFFIX = "-debug"


def debug_experiment(experiment: str) -> str:
    """Where a debug preset's runs go: ``glattn`` -> ``glattn-debug`` (once)."""
    if experiment.endswith(DEBUG_EXPERIMENT_SUFFIX):
        return experiment
    return experiment + DEBUG_EXPERIMENT_SUFFIX
