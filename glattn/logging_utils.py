"""The seed's three log levels: console at INFO, a DEBUG file and training_log.csv.

Under Hydra, its job_logging already writes INFO to the console and ``<job>.log``; this
adds ``debug.log`` (DEBUG, the ``glattn`` loggers) in the run directory and, when no
handler is configured at all (plain Python, tests), a console handler. The progress bar
(tqdm) is used only when stderr is a terminal; SLURM logs get plain lines.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

FORMAT = "[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"
_MARK = "_glattn_handler"


def setup_logging(run_dir: Path | None) -> logging.Logger:
    """Idempotent: a second call (resume, tests) replaces glattn's own handlers."""
    logger = logging.getLogger("glattn")
    logger.setLevel(logging.DEBUG)
    for handler in list(logger.handlers):
        if getattr(handler, _MARK, False):
            logger.removeHandler(handler)
            handler.close()
    root = logging.getLogger()
    if not root.handlers:
        console = logging.StreamHandler(sys.stderr)
        console.setLevel(logging.INFO)
        console.setFormatter(logging.Formatter(FORMAT))
        setattr(console, _MARK, True)
        logger.addHandler(console)
        logger.propagate = False
    else:
        logger.propagate = True
        for handler in root.handlers:  # Hydra's console and <job>.log stay at INFO
            handler.setLevel(max(handler.level, logging.INFO))
    if run_dir is not None:
        Path(run_dir).mkdir(parents=True, exist_ok=True)
        debug_file = logging.FileHandler(Path(run_dir) / "debug.log")
        debug_file.setLevel(logging.DEBUG)
        debug_file.setFormatter(logging.Formatter(FORMAT))
        setattr(debug_file, _MARK, True)
        logger.addHandler(debug_file)
    return logger
