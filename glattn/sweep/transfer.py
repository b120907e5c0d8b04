"""Table 5 (cross-data-set transfer): the eval job finds its training job's checkpoint.

Hydra sweeps are grids of independent jobs, so the transfer table is two sweeps over the
same grid (experiments/table5_transfer.yaml)::

    python run.py -m experiment=table5_transfer                      # train on HAM10000
    python run.py -m experiment=table5_transfer task=eval \\
        dataset=isic2018 dataset.eval_split=official_test            # evaluate on ISIC 2018

The experiment sets ``ckpt_path: ${glattn.source_ckpt:}``. In an eval job this resolver
rebuilds the *training* job's config -- the job's own overrides without ``task``,
``ckpt_path``, ``dataset*`` and ``transfer*``, plus ``transfer.source`` (e.g.
``[dataset=ham10000]``) -- takes its config fingerprint and returns the weights of that
training: the FINISHED MLflow run with that fingerprint (``runs:/<run
id>/checkpoints/best.pt``, the one copy a finished run keeps, loaded by
`glattn.checkpoint.load_model`'s resolver), else a local
``{paths.output_dir}/checkpoints/{fingerprint}/best.pt`` (tracking off). No lookup table is
needed. In a training job (task=train) it resolves to null.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

_DROPPED = ("task", "ckpt_path", "dataset")


def training_overrides(job_overrides: list[str], source: list[str]) -> list[str]:
    """The eval job's overrides turned back into its training job's overrides."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(list(job_overrides))
    kept = []
    for text, ov in zip(job_overrides, parsed):
        key = ov.key_or_group
        if key in _DROPPED or key.startswith(("dataset.", "transfer")):
            continue
        kept.append(text)
    return kept + list(source)


@lru_cache(maxsize=256)
def _checkpoint_for(config_name: str, overrides: tuple[str, ...]) -> str:
    from hydra import compose

    from glattn.checkpoint import BEST_ARTIFACT
    from glattn.config import config_fingerprint
    from glattn.tracking import finished_job_run, make_client

    train_cfg = compose(config_name=config_name, overrides=list(overrides))
    fp = config_fingerprint(train_cfg)
    if train_cfg.tracking.get("enabled", True) and train_cfg.tracking.uri:
        run = finished_job_run(make_client(train_cfg.tracking.uri), fp, "train")
        if run is not None:
            return f"runs:/{run.info.run_id}/{BEST_ARTIFACT}"
    return str(Path(str(train_cfg.paths.output_dir)) / "checkpoints" / fp / "best.pt")


def source_checkpoint(*, _root_: DictConfig) -> str | None:
    """Resolver ``${glattn.source_ckpt:}`` (glattn.resolvers): see the module docstring."""
    if OmegaConf.select(_root_, "task") != "eval":
        return None
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        raise ValueError(
            "ckpt_path=${glattn.source_ckpt:} needs a Hydra job (python run.py ...); "
            "outside one, give ckpt_path=PATH"
        )
    hc = HydraConfig.get()
    source = OmegaConf.select(_root_, "transfer.source", default=None)
    if not source:
        raise ValueError(
            "ckpt_path=${glattn.source_ckpt:} needs transfer.source, the overrides of the "
            "training data set (e.g. [dataset=ham10000])"
        )
    # unresolved: this job's own ckpt_path override is the interpolation being resolved
    job_overrides = OmegaConf.to_container(hc.overrides.task, resolve=False)
    overrides = training_overrides(job_overrides, list(source))
    ckpt = _checkpoint_for(str(hc.job.config_name), tuple(overrides))
    if not ckpt.startswith("runs:/") and not Path(ckpt).is_file():
        _checkpoint_for.cache_clear()  # the training may finish while this process runs
        raise FileNotFoundError(
            f"ckpt_path: the training job of this eval job has no FINISHED run in the "
            f"tracking store and no checkpoint {ckpt}; run the training sweep first "
            f"(python run.py -m {' '.join(overrides)})"
        )
    return ckpt
