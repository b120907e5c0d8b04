"""The grid an experiment file asks for: `experiments/<name>.yaml` hydra.sweeper.params.

Levels listed there but absent from the tracked runs become dashes with a footnote in the
tables, instead of silently disappearing. The experiment files are the clone's
`experiments/`, or an installed wheel's copy (setup.cfg's data_files,
`<prefix>/share/glattn/conf/experiment`); a run set without an experiment file (a sweep of
command-line overrides) has no expected grid: its tables show what ran.
"""

from __future__ import annotations

import re
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
    """Hydra sweep syntax to a list of strings: `a,b,c`, `choice(a,b)`, `range(0,3)`,
    YAML lists. Anything else (glob, interval) yields []."""
    if isinstance(spec, (list, tuple)) or OmegaConf.is_list(spec):
        return [str(v) for v in spec]
    text = str(spec).strip()
    m = re.fullmatch(r"range\(\s*(-?\d+)\s*(?:,\s*(-?\d+)\s*)?(?:,\s*(-?\d+)\s*)?\)", text)
    if m:
        a, b, c = m.groups()
        start, stop = (0, int(a)) if b is None else (int(a), int(b))
        return [str(v) for v in range(start, stop, int(c or 1))]
    m = re.fullmatch(r"choice\((.*)\)", text)
    if m:
        text = m.group(1)
    if re.search(r"[()]", text):
        return []
    return [v.strip().strip("'\"") for v in text.split(",") if v.strip()]


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
