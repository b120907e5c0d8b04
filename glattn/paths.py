"""Where the shipped folders are (conf/, experiments/): in a clone or an editable install, next
to the package; in a wheel, under ``share/glattn`` (setup.cfg's ``data_files``), beside the
package (``pip install --target``) or under ``sys.prefix``."""

from __future__ import annotations

import os
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
CONFIG_NAME = "config"


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


def config_dir() -> Path:
    """The folder holding ``config.yaml``; one error naming every place that was tried."""
    env = os.environ.get("GLATTN_CONFIG_DIR")
    tried = ([Path(env)] if env else []) + candidates("conf", "conf")
    for folder in tried:
        if (folder / f"{CONFIG_NAME}.yaml").is_file():
            return folder.resolve()
    raise SystemExit(
        "glattn: no conf/config.yaml found (tried "
        + ", ".join(str(p) for p in tried)
        + "); set GLATTN_CONFIG_DIR to the repository's conf/ folder or install the "
        "package (pip install -e . in a clone)"
    )
