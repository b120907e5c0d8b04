"""Helpers shared by the throw-away service scripts (slurm_cluster.py, tracking_server.py):
free loopback ports and waiting for a daemon to come up."""

from __future__ import annotations

import socket
import time
from pathlib import Path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def wait_until(what, check, timeout: float, log: Path | None = None, alive=lambda: True) -> None:
    """Poll `check()` until it is true; raise with the tail of `log` after `timeout` seconds
    or as soon as `alive()` says the daemon has exited."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and alive():
        try:
            if check():
                return
        except Exception:  # noqa: BLE001 - not up yet
            pass
        time.sleep(0.25)
    tail = log.read_text()[-3000:] if log and log.is_file() else ""
    raise RuntimeError(f"{what} not ready (exited or {timeout:.0f}s passed)\n{tail}")
