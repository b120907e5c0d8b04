"""What a job is, computed once from its validated config: the `JobSpec`.

A job is ``task`` (train | eval) + the config fingerprint (`glattn.config.config_fingerprint`):
the fingerprint names its checkpoint folder, finds its MLflow run and decides whether it is
already done. Its MLflow record is also fixed here, before any work: the run name
(`glattn.tracking.names.run_name`: what differs within the job's grid first, then the seed,
then the other groups marked ``in_run_name`` in `glattn.groups`; ``name_`` before it), the
tags (every report factor, seed, fingerprint, overrides, git commit, task, role, the class
each option builds, the user's ``tags=[...]``, each component's paper reference as
``reference.<group>``) and the params (the flattened config's
settings, secrets masked, plus one ``choice.<group>`` per config group).

An eval job (``task=eval``) is named and tagged after the checkpoint's training config
(``<training run name>_eval_<dataset>_<split>``), so its run sits next to the training's.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from glattn.checkpoint import checkpoint_dir
from glattn.config import (
    ConfigError,
    cell_fingerprint,
    config_fingerprint,
    group_choices,
    hydra_config,
    job_overrides,
)
from glattn.contract import references
from glattn.groups import FACTORS, RECORDED_GROUPS, RUN_NAME_GROUPS
from glattn.tracking import class_tags, flatten_config, git_commit, names
from glattn.tracking.names import (
    CELL_TAG,
    CHOICE_PARAM_PREFIX,
    DEBUG_TAG,
    JOB_ROLE,
    REFERENCE_TAG_PREFIX,
    ROLE_TAG,
    TAGS_TAG,
    USER_TAG_PREFIX,
    debug_experiment,
)


@dataclass(frozen=True)
class JobSpec:
    """One job's identity, record and folders (read-only; see the module docstring)."""

    task: str
    fingerprint: str
    choices: MappingProxyType  # group -> option of the trained config (eval: the checkpoint's)
    run_name: str
    #: what differs within the job's grid (`grid_keys`): the run name's lead, the UI's columns
    grid_keys: tuple[str, ...]
    tags: MappingProxyType
    params: MappingProxyType
    run_dir: Path  # Hydra's job folder (outputs/runs/<fingerprint> without Hydra)
    ckpt_dir: Path  # outputs/checkpoints/<fingerprint>
    fresh: bool  # sweep.rerun=true / trainer.resume=false: start over, a new run


def make_spec(cfg: DictConfig, task: str, context: dict | None = None) -> JobSpec:
    """The `JobSpec` of `cfg` (already checked); ``context``: what the task's pre-flight
    found (an eval job's checkpoint ``ckpt`` and its training config ``train_cfg``).
    A debug preset's job is routed to its own experiment first (`route_debug`)."""
    route_debug(cfg)
    try:
        fingerprint = config_fingerprint(cfg)
    except Exception as exc:
        raise ConfigError(f"the config does not resolve: {exc}") from exc
    if task == "eval":
        choices, name, tags = _eval_record(cfg, fingerprint, context or {})
        keys: tuple[str, ...] = ()
    else:
        choices, keys = group_choices(cfg), tuple(grid_keys(cfg))
        name, tags = run_name(cfg, choices, keys), job_tags(cfg, fingerprint, task, choices)
    return JobSpec(
        task=task,
        fingerprint=fingerprint,
        choices=MappingProxyType(dict(choices)),
        run_name=name,
        grid_keys=keys,
        tags=MappingProxyType(tags),
        params=MappingProxyType({**flatten_config(cfg), **choice_params(choices)}),
        run_dir=job_output_dir(cfg, fingerprint),
        ckpt_dir=checkpoint_dir(cfg, fingerprint),
        fresh=fresh_start(cfg),
    )


def _eval_record(cfg: DictConfig, fingerprint: str, context: dict) -> tuple[dict, str, dict]:
    """An eval run's choices, name and tags: the training's, plus what was evaluated."""
    ckpt, train_cfg = context["ckpt"], context["train_cfg"]
    split = str(cfg.dataset.eval_split)
    choices, eval_dataset = ckpt.get("choices") or {}, group_choices(cfg)["dataset"]
    tags = job_tags(train_cfg, fingerprint, "eval", choices)
    tags.update(
        source_fingerprint=ckpt.get("fingerprint", "?"),
        eval_dataset=eval_dataset,
        eval_split=split,
        source_run_id=ckpt.get("mlflow_run_id") or "",
        overrides=" ".join(job_overrides(cfg)),
    )
    name = run_name(train_cfg, {k: choices.get(k, "?") for k in RUN_NAME_GROUPS}, ())
    return choices, f"{name}_eval_{eval_dataset}_{split}", tags


def debug_preset(cfg: DictConfig) -> str | None:
    """The debug preset of the config (conf/debug/<preset>.yaml sets ``debug: <preset>``)."""
    preset = OmegaConf.select(cfg, "debug", default=None)
    return str(preset) if preset else None


def route_debug(cfg: DictConfig) -> None:
    """``debug=smoke|overfit|profile``: the run goes to ``<experiment>-debug``, so
    a paper report never reads it; tracking is outside the fingerprint, which stays."""
    if debug_preset(cfg) and OmegaConf.select(cfg, "tracking.experiment") is not None:
        with open_dict(cfg):
            cfg.tracking.experiment = debug_experiment(str(cfg.tracking.experiment))


def run_name(cfg: DictConfig, choices: dict, keys: tuple[str, ...] | None = None) -> str:
    """The run name (`glattn.tracking.names.run_name`) of `cfg` with group ``choices``:
    ``keys`` (default: `grid_keys`) lead, then the seed, the other run-name groups, the debug
    preset; ``name`` (a label) before it. Unique within every grid of experiments/ (a test
    composes them all)."""
    keys = grid_keys(cfg) if keys is None else keys
    values = {k: OmegaConf.select(cfg, k, default="?") for k in keys if k not in choices}
    return names.run_name(
        {**values, **choices},
        cfg.seed,
        keys,
        label=OmegaConf.select(cfg, "name", default=None),
        preset=debug_preset(cfg),
    )


def grid_keys(cfg: DictConfig) -> list[str]:
    """What differs within the job's grid, in `names.lead_order`: in a multirun job the keys
    its launch sweeps (the sweep folder's ``multirun.yaml``: the command line's and the
    experiment file's ``hydra.sweeper.params``); else the config groups chosen on the
    command line (``fusion=learnable_gate``). Settings outside the fingerprint and
    secret-looking keys never lead a name."""
    hc = hydra_config()
    hc = hc if hc is not None else OmegaConf.select(cfg, "hydra")
    if hc is None:
        return []
    if str(OmegaConf.select(hc, "mode", default="")).endswith("MULTIRUN"):
        keys = _swept(hc)
    else:
        recorded = set(RECORDED_GROUPS) | set(RUN_NAME_GROUPS)
        given = [o.split("=", 1)[0].lstrip("+~") for o in hc.overrides.task or () if "=" in o]
        keys = [k for k in given if k in recorded]
    return names.lead_order(k for k in keys if names.names_a_config(k))


def _swept(hc) -> list[str]:
    """The keys the launch sweeps: its multirun.yaml (written before any job starts), else
    this job's own ``hydra.sweeper.params``."""
    path = Path(str(OmegaConf.select(hc, "sweep.dir", default="."))) / "multirun.yaml"
    launch = OmegaConf.load(path) if path.is_file() else OmegaConf.create({"hydra": hc})
    params = OmegaConf.select(launch, "hydra.sweeper.params", default=None) or {}
    task = OmegaConf.select(launch, "hydra.overrides.task", default=None) or []
    overrides = [f"{k}={v}" for k, v in params.items()] + [str(o) for o in task]
    try:
        return names.swept_keys(overrides)
    except Exception:  # noqa: BLE001 - a name never fails a job: no lead then
        return []


def choice_params(choices: dict) -> dict:
    """Each config group's choice as a short param: ``choice.fusion=cross_attn``, ..."""
    return {f"{CHOICE_PARAM_PREFIX}{k}": str(v) for k, v in choices.items()}


def user_tags(cfg: DictConfig) -> dict:
    """``tags=[a,b]`` -> MLflow tags ``tags=a,b``, ``tag.a=true``, ``tag.b=true``."""
    tags = [str(t) for t in (OmegaConf.select(cfg, "tags", default=None) or [])]
    if not tags:
        return {}
    return {TAGS_TAG: ",".join(tags), **{f"{USER_TAG_PREFIX}{t}": "true" for t in tags}}


def job_tags(cfg: DictConfig, fingerprint: str, task: str, choices: dict) -> dict[str, Any]:
    """The tags that identify and describe a job run (glattn.tracking.names)."""
    return {
        **user_tags(cfg),
        **{k: choices.get(k, "?") for k in FACTORS},
        "seed": cfg.seed,
        "fingerprint": fingerprint,
        CELL_TAG: cell_fingerprint(cfg),
        "git_commit": git_commit(),
        "overrides": " ".join(job_overrides(cfg)),
        "task": task,
        ROLE_TAG: JOB_ROLE,
        **class_tags(cfg),
        **({DEBUG_TAG: debug_preset(cfg)} if debug_preset(cfg) else {}),
        **{f"{REFERENCE_TAG_PREFIX}{g}": ref for g, ref in references(cfg).items()},
    }


def fresh_start(cfg: DictConfig) -> bool:
    """``trainer.resume=false`` or ``sweep.rerun=true``: run the job again from scratch."""
    return not bool(cfg.trainer.resume) or bool(OmegaConf.select(cfg, "sweep.rerun"))


def job_output_dir(cfg: DictConfig, fingerprint: str) -> Path:
    """Hydra's job output dir; without Hydra (compose API): <output_dir>/runs/<fingerprint>."""
    hc = hydra_config()
    hydra_dir = OmegaConf.select(hc, "runtime.output_dir", default=None) if hc else None
    if hydra_dir:
        return Path(hydra_dir)
    return Path(cfg.paths.output_dir).absolute() / "runs" / fingerprint
