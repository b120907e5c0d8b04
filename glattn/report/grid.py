"""The grid an experiment file asks for: levels absent from the runs become table dashes."""

from __future__ import annotations

import sys
from pathlib import Path

from omegaconf import OmegaConf

from glattn.groups import FACTORS
from glattn.sweep import expand


def shipped_dir(in_clone: str, installed: str) -> Path:
    """A shipped data folder: the clone's `in_clone`, else share/glattn/`installed`."""
    top = Path(__file__).resolve().parents[2]
    copies = [base / "share" / "glattn" / installed for base in (top, Path(sys.prefix))]
    return next((d for d in [top / in_clone, *copies] if d.is_dir()), top / in_clone)


EXPERIMENTS_DIR = shipped_dir("experiments", "conf/experiment")


def expected_levels(experiment: str, directory: Path = EXPERIMENTS_DIR) -> dict[str, list]:
    """{factor or 'seed': [levels]} from the experiment file's sweeper params ({} if none)."""
    path = Path(directory) / f"{experiment}.yaml"
    try:
        params = OmegaConf.select(OmegaConf.load(path), "hydra.sweeper.params", default=None)
    except Exception:  # no file or an unreadable one: the report works from the runs alone
        return {}
    specs = OmegaConf.to_container(params, resolve=False) if params is not None else {}
    named = {str(key).lstrip("+~"): spec for key, spec in specs.items()}
    levels = {k: expand.values(s) for k, s in named.items() if k in FACTORS or k == "seed"}
    return {k: v for k, v in levels.items() if v}
