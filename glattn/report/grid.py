"""Where the shipped experiment files are, in a clone or an installed package."""

from __future__ import annotations

import sys
from pathlib import Path


def shipped_dir(in_clone: str, installed: str) -> Path:
    """A shipped data folder: the clone's `in_clone`, else share/glattn/`installed`."""
    top = Path(__file__).resolve().parents[2]
    copies = [base / "share" / "glattn" / installed for base in (top, Path(sys.prefix))]
    return next((d for d in [top / in_clone, *copies] if d.is_dir()), top / in_clone)


EXPERIMENTS_DIR = shipped_dir("experiments", "conf/experiment")
