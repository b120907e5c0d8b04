"""File locks between processes: filelock's ``UnixFileLock`` (``fcntl.flock``), one setup.

Every lock glattn takes (a checkpoint folder's, a sweep folder's, a grid's parent run, the
SQLite schema, a data build) is `file_lock(path)`: the kernel drops a flock when its holder
dies, SIGKILL included, so a killed process never leaves a stale lock. The file stays in
place on release (waiters share its inode); the holder writes ``pid N@host since <time>``
into it, so a process that finds the lock taken can say who holds it (`holder`). Callers
choose blocking, a timeout or a single try per ``acquire`` (filelock's own arguments;
``filelock.Timeout`` when it is not acquired). flock is local to one machine (and NFS >= 4
on Linux).
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

from filelock import Timeout, UnixFileLock

__all__ = ["Timeout", "file_lock", "holder"]


def _write_holder(fd: int) -> None:
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"pid {os.getpid()}@{socket.gethostname()} since {time.ctime()}\n".encode(), 0)


def file_lock(path: str | os.PathLike) -> UnixFileLock:
    """An exclusive lock on ``path`` (its folder created), not yet acquired.

    Not thread-local (any thread of the holder may release it) and never a soft fallback
    (a marker file a killed holder would leave): where flock is missing, acquiring fails.
    """
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return UnixFileLock(
        path, thread_local=False, preserve_lock_file=True, on_acquired=_write_holder
    )


def holder(path: str | os.PathLike) -> str:
    """Who holds (or last held) the lock at ``path``, as its holder wrote it."""
    try:
        return Path(path).read_text().strip() or "unknown process"
    except OSError:
        return "unknown process"
