"""The seed's three log levels: console at INFO, a DEBUG file and training_log.csv.

Under Hydra, its job_logging already writes INFO to the console and ``<job>.log``; this
adds ``debug.log`` (DEBUG, the ``glattn`` loggers) in the run directory and, when no
handler is configured at all (plain Python, tests), a console handler. The progress bar
(tqdm) is used only when stderr is a terminal; SLURM logs get plain lines.
"""

from __future__ import annotations

import logging
import sys
import time
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


class Progress:
    """Progress of a long step (synthetic generation, cache building): a tqdm bar when
    stderr is a terminal, else a line at every tenth of the work (SLURM logs): INFO from
    ``min_total`` items on (a few seconds of work stays quiet), DEBUG below.

    ``with Progress(total, "image cache") as bar: ... bar.update(n)``
    """

    def __init__(
        self, total: int, desc: str, unit: str = "img", logger=None, min_total: int = 500
    ) -> None:
        self.total, self.desc, self.unit = max(int(total), 0), desc, unit
        self.level = logging.INFO if self.total >= min_total else logging.DEBUG
        self.log = logger or logging.getLogger("glattn.progress")
        self.done, self._next = 0, 1
        self._bar = None
        if sys.stderr.isatty() and self.total >= min_total:
            try:
                from tqdm.auto import tqdm

                self._bar = tqdm(total=self.total, desc=desc, unit=unit, leave=False)
            except ImportError:  # tqdm is optional
                pass
        self._start = time.perf_counter()

    def update(self, n: int = 1) -> None:
        self.done += n
        if self._bar is not None:
            self._bar.update(n)
            return
        if self.total and self.done * 10 >= self._next * self.total and self._next <= 10:
            elapsed = time.perf_counter() - self._start
            left = elapsed / self.done * max(self.total - self.done, 0)
            self.log.log(
                self.level,
                "%s: %d/%d %s (%d%%, %.0f s, ETA %.0f s)",
                self.desc,
                self.done,
                self.total,
                self.unit,
                min(100, 100 * self.done // self.total),
                elapsed,
                left,
            )
            self._next = self.done * 10 // self.total + 1  # one line per tenth crossed

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
