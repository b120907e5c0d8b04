"""The grid an experiment file asks for: `experiments/<name>.yaml` hydra.sweeper.params.

Levels listed there but absent from the tracked runs become dashes with a footnote in the
tables, instead of silently disappearing. The experiment files are the clone's
`experiments/`, or an installed wheel's copy (setup.cfg's data_files,
`<prefix>/share/glattn/conf/experiment`); a run set without an experiment file (a sweep of
command-line overrides) has no expected grid: its tables show what ran.
"""

from __future__ import annotations

import sys
from pathlib import Path

from omegaconf import OmegaConf

from glattn.groups import FACTORS


def shipped_dir(in_clone: str, installed: str) -> Path:
    """A folder setup.cfg ships as data_files: the clone's `in_clone`, else the installed
    copy `share/glattn/<installed>` beside the package (``pip install --target``), else
    under `<prefix>` (a virtual environment); the clone's path when none exists."""
    top = Path(__file__).resolve().parents[2]
    copies = [base / "share" / "glattn" / installed for base in (top, Path(sys.prefix))]
    return next((d for d in [top / in_clone, *copies] if d.is_dir()), top / in_clone)


EXPERIMENTS_DIR = shipped_dir("experiments", "conf/experiment")


def parse_values(spec) -> list[str]:
    """A sweeper param's values as strings, parsed by Hydra's override grammar (`a,b,c`,
    `choice(a,b)`, `range(0,3)`, one value) or a YAML list. What Hydra cannot list (glob,
    interval) or cannot parse yields []."""
    if isinstance(spec, (list, tuple)) or OmegaConf.is_list(spec):
        return [str(v) for v in spec]
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        override = OverridesParser.create().parse_override(f"values={spec}")
        values = override.sweep_iterator() if override.is_sweep_override() else [override.value()]
        return [str(getattr(v, "text", v)) for v in values]  # a QuotedString's text
    except Exception:  # noqa: BLE001 - a sweep Hydra's basic sweeper cannot list either
        return []


def expected_levels(experiment: str, directory: Path = EXPERIMENTS_DIR) -> dict[str, list]:
    """{factor or 'seed': [levels]} from the experiment file's sweeper params ({} if none)."""
    path = Path(directory) / f"{experiment}.yaml"
    if not path.is_file():
        return {}
    try:
        node = OmegaConf.load(path)
        params = OmegaConf.select(node, "hydra.sweeper.params", default=None)
    except Exception:  # an unreadable file: the report still works from the runs alone
        return {}
    if params is None:
        return {}
    out = {}
    for key, spec in OmegaConf.to_container(params, resolve=False).items():
        name = str(key).lstrip("+~")
        if name in FACTORS or name == "seed":
            values = parse_values(spec)
            if values:
                out[name] = values
    return out
