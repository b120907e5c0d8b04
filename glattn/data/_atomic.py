"""Build a folder once, safely when many processes (a sweep's jobs) want it at the same
time: a file lock next to it (`glattn.locks`) avoids duplicate work on one machine, and
building into a private temporary folder that is then renamed keeps readers from ever
seeing a half-built one (also where the lock does not hold, e.g. some network file systems).

A process killed while building leaves its ``.<name>.tmp-<pid>-<hex>`` folder behind; the
next build in the same parent folder removes every such folder that is older than the
running process and whose pid is not alive (on this machine), so kills do not pile up
generated images forever."""

from __future__ import annotations

import errno
import logging
import os
import shutil
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from glattn.locks import file_lock

log = logging.getLogger(__name__)


def _process_start() -> float:
    """When this process started (/proc on Linux; else the import time, later still)."""
    try:
        ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return time.time() - uptime + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return time.time()


PROCESS_START = _process_start()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def remove_stale_tmp(parent: Path) -> list[Path]:
    """Delete the ``.*.tmp-<pid>-*`` build folders in ``parent`` that a killed process left:
    older than this process and with no live owner. Returns what was removed."""
    removed = []
    for tmp in sorted(Path(parent).glob(".*.tmp-*")) if Path(parent).is_dir() else []:
        try:
            pid = int(tmp.name.rsplit(".tmp-", 1)[1].split("-", 1)[0])
            old = tmp.stat().st_mtime < PROCESS_START
        except (ValueError, IndexError, OSError):
            continue
        if tmp.is_dir() and old and pid != os.getpid() and not _pid_alive(pid):
            shutil.rmtree(tmp, ignore_errors=True)
            log.info("removed %s, left by an interrupted build (pid %d)", tmp, pid)
            removed.append(tmp)
    return removed


def build_once(final: Path, build: Callable[[Path], None]) -> Path:
    """Return `final`, first calling `build(tmp)` and renaming tmp -> final if it is absent."""
    remove_stale_tmp(final.parent)  # every start, also when `final` exists already
    if final.is_dir():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(final.parent / f".{final.name}.lock"):
        if final.is_dir():  # another process built it while we waited
            return final
        tmp = final.parent / f".{final.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
        try:
            build(tmp)
            os.rename(tmp, final)
        except OSError as e:
            if e.errno in (errno.EEXIST, errno.ENOTEMPTY) and final.is_dir():
                log.info("%s was built concurrently; using that copy", final)
            else:
                raise
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return final
