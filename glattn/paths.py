"""Where the shipped folders are (conf/, experiments/): in a clone or an editable install, next
to the package; in a wheel, under ``share/glattn`` (setup.cfg's ``data_files``), beside the
package (``pip install --target``) or under ``sys.prefix``."""

from __future__ import annotations

import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent


def candidates(in_clone: str, installed: str) -> list[Path]:
    """The places a shipped folder may be, in the order they are tried."""
    top = PACKAGE.parent
    return [
        top / in_clone,
        *(base / "share" / "glattn" / installed for base in (top, Path(sys.prefix))),
    ]


def shipped_dir(in_clone: str, installed: str) -> Path:
    """The first of `candidates` that is a folder, else the clone's."""
    found = candidates(in_clone, installed)
    return next((d for d in found if d.is_dir()), found[0])


EXPERIMENTS_DIR = shipped_dir("experiments", "conf/experiment")
