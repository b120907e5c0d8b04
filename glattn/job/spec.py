"""What a job is, computed once from its validated config: the `JobSpec`.

A job is ``task`` (train | eval) + the config fingerprint (`glattn.config.config_fingerprint`):
the fingerprint names its checkpoint folder, finds its MLflow run and decides whether it is
already done. Its MLflow record is also fixed here, before any work: the run name
``[name_]{backbone}_{attention}_{fusion}_{residual}_{dataset}_s{seed}`` (the groups marked
``in_run_name`` in `glattn.groups`), the tags (every report factor, seed, fingerprint,
overrides, git commit, task, role, the user's ``tags=[...]``) and the params (the flattened
config, secrets masked, plus one ``choice.<group>`` per config group).

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
    config_fingerprint,
    group_choices,
    hydra_config,
    job_overrides,
)
from glattn.groups import FACTORS, RUN_NAME_GROUPS
from glattn.tracking import flatten_config, git_commit
from glattn.tracking.names import (
    CHOICE_PARAM_PREFIX,
    DEBUG_TAG,
    JOB_ROLE,
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
    else:
        choices = group_choices(cfg)
        name, tags = run_name(cfg, choices), job_tags(cfg, fingerprint, task, choices)
    return JobSpec(
        task=task,
        fingerprint=fingerprint,
        choices=MappingProxyType(dict(choices)),
        run_name=name,
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
    name = run_name(train_cfg, {k: choices.get(k, "?") for k in RUN_NAME_GROUPS})
    return choices, f"{name}_eval_{eval_dataset}_{split}", tags


def debug_preset(cfg: DictConfig) -> str | None:
    """The debug preset of the config (conf/debug/<preset>.yaml sets ``debug: <preset>``)."""
    preset = OmegaConf.select(cfg, "debug", default=None)
    return str(preset) if preset else None


def route_debug(cfg: DictConfig) -> None:
    """``debug=smoke|overfit|profile``: the run goes to ``<experiment>-debug`` (issue 18), so
    a paper report never reads it; tracking is outside the fingerprint, which stays."""
    if debug_preset(cfg) and OmegaConf.select(cfg, "tracking.experiment") is not None:
        with open_dict(cfg):
            cfg.tracking.experiment = debug_experiment(str(cfg.tracking.experiment))


def run_name(cfg: DictConfig, choices: dict) -> str:
    """``{backbone}_{attention}_{fusion}_{residual}_{dataset}_s{seed}``, after ``name_`` when
    ``name`` is set, and ``_<preset>`` after it for a debug preset's run: unique within every
    grid of experiments/ (a test composes them all)."""
    base = "_".join(str(choices.get(k, "?")) for k in RUN_NAME_GROUPS) + f"_s{cfg.seed}"
    if debug_preset(cfg):
        base += f"_{debug_preset(cfg)}"
    prefix = OmegaConf.select(cfg, "name", default=None)
    return f"{prefix}_{base}" if prefix else base


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
        "git_commit": git_commit(),
        "overrides": " ".join(job_overrides(cfg)),
        "task": task,
        ROLE_TAG: JOB_ROLE,
        **({DEBUG_TAG: debug_preset(cfg)} if debug_preset(cfg) else {}),
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
