"""Tag and role names of the MLflow record (what the UI, `glattn.report` and the sweep
read). Every module that writes or reads one of these imports it from here.

Job runs: ``glattn.role=job`` + ``fingerprint`` + ``task`` (train | eval) identify the job;
the group choices (FACTORS), ``seed``, ``overrides`` and ``git_commit`` describe it; eval
runs add ``eval_dataset``, ``eval_split``, ``source_fingerprint``, ``source_run_id``.
Sweep parent runs: ``glattn.role=sweep`` + ``glattn.grid`` (hash of the grid's jobs)
identify the sweep; its children carry MLflow's ``mlflow.parentRunId``, and every job run of
the grid (children and FINISHED runs the sweep reused) ``glattn.in_grid.<grid>=true``, the
tag the sweep's runs-table view filters on (glattn.tracking.ui).

Run names (`run_name`) lead with what differs within the grid, then the seed, so the runs
table's default name column (about 22 characters) shows both; the other run-name groups
follow: ``learnable_gate_s1_resnet18_cbam_original_synthetic``. A run with nothing swept or
chosen on its command line keeps ``{backbone}_{attention}_{fusion}_{residual}_{dataset}_s{seed}``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from glattn import groups

ROLE_TAG = "glattn.role"
JOB_ROLE = "job"
SWEEP_ROLE = "sweep"
FINGERPRINT_TAG = "fingerprint"
#: the seedless, path-free identity of a run's cell (glattn.config.cell_fingerprint): group
#: the seeds of one configuration by it in the MLflow UI
CELL_TAG = "glattn.cell"
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
#: The paper reference of a group's component (its `_target_`'s ``reference`` attribute,
#: glattn.contract.references): tag ``reference.<group>``, what the report's tables show.
REFERENCE_TAG_PREFIX = "reference."
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
#: ``glattn.in_grid.<grid>=true`` on every job run of a sweep's grid (`grid_member_tag`)
GRID_MEMBER_PREFIX = "glattn.in_grid."
#: ``class.<group>``: the class (``_target_``) an option builds, e.g. ``class.fusion``; a tag,
#: so the params list settings only
CLASS_TAG_PREFIX = "class."
#: config keys Hydra's instantiate reads: not settings, never params
INSTANTIATE_KEYS = ("_target_", "_partial_", "_recursive_", "_convert_", "_args_")
#: top-level config keys that are tags of the run (``seed``), or launch controls (``sweep``,
#: ``hydra``), not params; all stay in the resolved config artifact
NOT_PARAMS = ("seed", "sweep", "hydra")


def grid_member_tag(grid: str) -> str:
    """The tag that marks a job run as a member of the sweep grid ``grid``."""
    return f"{GRID_MEMBER_PREFIX}{grid}"


def run_name(
    choices: Mapping[str, object],
    seed: object,
    lead: Sequence[str] = (),
    label: str | None = None,
    preset: str | None = None,
) -> str:
    """``{lead}_s{seed}_{the other run-name groups}[_{preset}]``, after ``label_`` when
    given; with no ``lead``: ``{backbone}_{attention}_{fusion}_{residual}_{dataset}_s{seed}``.
    ``lead``: the grid's differing keys in `lead_order` (groups and ``a.b`` values; ``seed``
    is placed by itself), see `name_token`."""
    keys = [k for k in lead if k != "seed"]
    tokens = [name_token(k, choices) for k in keys]
    rest = [str(choices.get(g, "?")) for g in groups.RUN_NAME_GROUPS if g not in keys]
    parts = [*tokens, f"s{seed}", *rest] if tokens else [*rest, f"s{seed}"]
    name = "_".join([*parts, *([preset] if preset else [])])
    return f"{label}_{name}" if label else name


def name_token(key: str, values: Mapping[str, object]) -> str:
    """A group's option (``learnable_gate``), or a setting as ``{last part}{value}``
    (``optimizer.lr`` 0.001 -> ``lr0.001``); ``values`` holds both (choices + settings)."""
    value = str(values.get(key, "?"))
    return value if key in groups.BY_NAME else f"{key.rsplit('.', 1)[-1]}{value}"[:24]


def lead_order(keys: Iterable[str]) -> list[str]:
    """Differing keys in a fixed order whatever the command line's: run-name groups, other
    groups (``groups.GROUPS`` order), then settings (sorted), ``seed`` last."""
    keys = set(keys)
    order = {g.name: i for i, g in enumerate(groups.GROUPS)}
    named = sorted(
        (k for k in keys if k in order), key=lambda k: (k not in groups.RUN_NAME_GROUPS, order[k])
    )
    return (
        named
        + sorted(k for k in keys if k not in order and k != "seed")
        + (["seed"] if "seed" in keys else [])
    )


def names_a_config(key: str) -> bool:
    """A key whose value makes another configuration (in the fingerprint, glattn.config) and
    may be shown: not a secret, not Hydra's, not the experiment file or the debug preset."""
    from glattn.config import FINGERPRINT_EXCLUDE, FINGERPRINT_IGNORE
    from glattn.secrets import is_secret_key

    top, _, rest = key.partition(".")
    if top in FINGERPRINT_EXCLUDE or (top, rest) in FINGERPRINT_IGNORE or key == "debug":
        return False
    return not is_secret_key(key) and not top.startswith(("hydra", "experiment"))


def swept_keys(overrides: Iterable[str]) -> list[str]:
    """The keys a sweep's overrides give more than one value (``fusion=a,b`` -> fusion),
    parsed by Hydra's override grammar; a key given one value is not swept."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    out = []
    for override in OverridesParser.create().parse_overrides([str(o) for o in overrides]):
        if not override.is_sweep_override():
            continue
        try:
            values = len(list(override.sweep_string_iterator()))
        except Exception:  # noqa: BLE001 - a sweep Hydra's basic sweeper cannot list
            values = 2
        if values > 1:
            out.append(override.key_or_group)
    return out


def debug_experiment(experiment: str) -> str:
    """Where a debug preset's runs go: ``glattn`` -> ``glattn-debug`` (once)."""
    if experiment.endswith(DEBUG_EXPERIMENT_SUFFIX):
        return experiment
    return experiment + DEBUG_EXPERIMENT_SUFFIX
