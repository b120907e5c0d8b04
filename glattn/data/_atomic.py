"""Build a folder once, safely when many processes (a sweep's jobs) want it at the same
time: an fcntl lock next to it avoids duplicate work on one machine, and building into a
private temporary folder that is then renamed keeps readers from ever seeing a half-built
one (also where the lock does not hold, e.g. some network file systems)."""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)


def build_once(final: Path, build: Callable[[Path], None]) -> Path:
    """Return `final`, first calling `build(tmp)` and renaming tmp -> final if it is absent."""
    if final.is_dir():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    lock_path = final.parent / f".{final.name}.lock"
    with open(lock_path, "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
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
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return final
