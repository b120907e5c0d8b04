"""The seed's three log levels: console at INFO, a DEBUG file and training_log.csv.

Under Hydra, its job_logging already writes INFO to the console and ``<job>.log``; this
adds ``debug.log`` (DEBUG, the ``glattn`` loggers) in the run directory and, when no
handler is configured at all (plain Python, tests), a console handler.

Details (``extra=DETAIL``: the class balance, the model table) go to every job's log files
but to the console of one job of a sweep only (`OncePerSweep`): the jobs of a sweep share
them, and the basic launcher prints every job's console in one terminal.

Progress: a tqdm bar only on a terminal at least ``MIN_BAR_COLUMNS`` wide (`bar_columns`);
SLURM logs, files and a narrow or size-less terminal (a pseudo-terminal nobody sized, where
a bar prints nothing) get the same information as plain INFO lines. `StepProgress` is the
training loop's, after timm's train line (loss, learning rate, images/s, ETA;
https://github.com/huggingface/pytorch-image-models/blob/main/train.py).
"""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path

FORMAT = "[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"
_MARK = "_glattn_handler"
#: Below this many columns a bar is unreadable (and at 0 tqdm prints nothing): plain lines.
MIN_BAR_COLUMNS = 40


def bar_columns(stream=None) -> int:
    """Columns for a progress bar on ``stream`` (default stderr); 0 when it gets plain lines
    instead: not a terminal, or narrower than MIN_BAR_COLUMNS. A terminal without a size
    (ioctl says 0) uses ``COLUMNS`` when set."""
    stream = sys.stderr if stream is None else stream
    try:
        if not stream.isatty():
            return 0
        columns = os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, OSError, ValueError):  # closed, redirected or fake streams
        return 0
    if columns <= 0:
        env = os.environ.get("COLUMNS", "")
        columns = int(env) if env.isdigit() else 0
    return columns if columns >= MIN_BAR_COLUMNS else 0


#: ``log.info(..., extra=DETAIL)``: a line the console shows once per sweep (OncePerSweep)
DETAIL = {"glattn_detail": True}
#: the file in a sweep folder that the job showing the details creates
DETAILS_SHOWN = ".details_shown"


class OncePerSweep(logging.Filter):
    """A console's filter: detail records (``extra=DETAIL``) pass in a single run, and in a
    sweep for the first job that logs one (it creates `DETAILS_SHOWN` in the sweep folder;
    jobs in other processes find it there); every other record passes."""

    def __init__(self, sweep_dir: Path | None) -> None:
        super().__init__()
        self.sweep_dir = sweep_dir
        self._shows: bool | None = None

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "glattn_detail", False):
            return True
        if self._shows is None:
            self._shows = self.sweep_dir is None or _claim(Path(self.sweep_dir) / DETAILS_SHOWN)
        return self._shows


def _claim(path: Path) -> bool:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return False
    except OSError:  # an unwritable folder: better every job's details than none
        return True
    return True


def _is_console(handler: logging.Handler) -> bool:
    return isinstance(handler, logging.StreamHandler) and not isinstance(
        handler, logging.FileHandler
    )


def setup_logging(run_dir: Path | None, sweep_dir: Path | None = None) -> logging.Logger:
    """Idempotent: a second call (resume, tests) replaces glattn's own handlers and
    filters. ``sweep_dir``: the job's sweep folder, where one job claims the console's
    details (`OncePerSweep`); None in a single run."""
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
    details = OncePerSweep(sweep_dir)
    for handler in list(root.handlers) + list(logger.handlers):
        for old in [f for f in handler.filters if isinstance(f, OncePerSweep)]:
            handler.removeFilter(old)
        if _is_console(handler):
            handler.addFilter(details)
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
        columns = bar_columns()
        if columns and self.total >= min_total:
            from tqdm import tqdm

            self._bar = tqdm(total=self.total, desc=desc, unit=unit, leave=False, ncols=columns)
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


def clock(seconds: float) -> str:
    """``H:MM:SS`` of a duration (ETAs)."""
    seconds = max(int(round(seconds)), 0)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class StepProgress:
    """One pass over a loader: ``epoch 3 step 20/100 ( 20%)  train/loss 1.2345  lr 1.00e-03
    412.3 img/s  ETA 0:00:19`` (timm's train line). `step` counts every batch; `report`,
    called at the loop's own sync cadence (no extra device sync), gives the running loss and
    the learning rate. On a terminal (``bar=True`` and `bar_columns` > 0) they are the
    postfix of a tqdm bar; otherwise one line at ``level`` per report.
    """

    def __init__(
        self, desc: str, total: int | None, bar: bool = False, logger=None, level=logging.INFO
    ) -> None:
        self.desc, self.total, self.level = desc, total or 0, level
        self.log = logger or logging.getLogger("glattn.progress")
        self.steps = self.images = 0
        self.start = time.perf_counter()
        self._bar = None
        columns = bar_columns() if bar else 0
        if columns:
            from tqdm import tqdm

            fmt = "{desc} {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} "
            fmt += "[{elapsed}<{remaining}]{postfix}"
            self._bar = tqdm(
                total=total, desc=desc, leave=False, ncols=columns, unit="step", bar_format=fmt
            )

    def step(self, images: int) -> None:
        self.steps += 1
        self.images += images
        if self._bar is not None:
            self._bar.update(1)

    def fields(self, loss: float | None = None, lr: float | None = None) -> str:
        """``train/loss 1.2345  lr 1.00e-03  412.3 img/s`` (the parts that are known)."""
        elapsed = max(time.perf_counter() - self.start, 1e-9)
        parts = [] if loss is None else [f"train/loss {loss:.4f}"]
        parts += [] if lr is None else [f"lr {lr:.2e}"]
        return "  ".join([*parts, f"{self.images / elapsed:.1f} img/s"])

    def report(self, loss: float | None = None, lr: float | None = None) -> None:
        if self._bar is not None:
            self._bar.set_postfix_str(self.fields(loss, lr), refresh=True)
            return
        elapsed = time.perf_counter() - self.start
        pct = f" ({100.0 * self.steps / self.total:3.0f}%)" if self.total else ""
        left = elapsed / max(self.steps, 1) * (self.total - self.steps) if self.total else 0
        self.log.log(
            self.level,
            "%s step %d/%s%s  %s  ETA %s",
            self.desc,
            self.steps,
            self.total or "?",
            pct,
            self.fields(loss, lr),
            clock(left),
        )

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
