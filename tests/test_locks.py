"""glattn's file locks (glattn.locks) at each site, held by another process: the try-locks
refuse naming the holder, the blocking ones wait for it, and a SIGKILLed holder releases."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest

from glattn.locks import Timeout, file_lock

ROOT = Path(__file__).resolve().parents[1]

# each kind: the code a child runs to hold the lock in folder `d`, and the lock file's path
HOLD = {
    "checkpoint": (
        "from glattn.checkpoint import CheckpointLock\nlock = CheckpointLock(d).acquire()",
        ".lock",
    ),
    "sweep_dir": (
        "from hydra_plugins.glattn_sweeper import guard\nlock = guard.hold_sweep_dir(d)",
        ".glattn-sweep.lock",
    ),
    "grid": (
        "from omegaconf import OmegaConf\nfrom glattn.sweep.store import _grid_lock\n"
        "lock = _grid_lock(OmegaConf.create({'paths': {'output_dir': str(d)}}), 'g1')\n"
        "lock.acquire()",
        "sweeps/.grid-g1.lock",
    ),
    "schema": (
        "from glattn.tracking.client import _schema_lock\n"
        "lock = _schema_lock(d / 'mlflow.db')\nlock.acquire()",
        "mlflow.db.lock",
    ),
}
# build_once holds its lock while the build runs: the child's build waits for its release
BUILD = (
    "from glattn.data._atomic import build_once\n"
    "def build(tmp):\n    print('held', flush=True)\n    sys.stdin.readline()\n"
    "build_once(d / 'built', build)\nraise SystemExit(0)"
)
CHILD = """
import sys
from pathlib import Path
d = Path(sys.argv[1])
{hold}
print('held', flush=True)
sys.stdin.readline()
"""


def _holder(kind: str, folder: Path) -> subprocess.Popen:
    code = BUILD if kind == "build" else HOLD[kind][0]
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD.format(hold=code), str(folder)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.stdout.readline().strip() == "held", proc.communicate()
    return proc


def _release(proc: subprocess.Popen) -> None:
    proc.communicate("\n")
    assert proc.returncode == 0


def _lock_path(kind: str, folder: Path) -> Path:
    return folder / (".built.lock" if kind == "build" else HOLD[kind][1])


@pytest.mark.parametrize("kind", [*HOLD, "build"])
def test_a_killed_holder_releases_the_lock(tmp_path, kind):
    proc = _holder(kind, tmp_path)
    probe = file_lock(_lock_path(kind, tmp_path))
    with pytest.raises(Timeout):
        probe.acquire(blocking=False)  # held by the child, at the path the site documents
    assert f"pid {proc.pid}@" in _lock_path(kind, tmp_path).read_text()
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    probe.acquire(blocking=False)  # the kernel dropped the dead holder's lock
    probe.release()


def test_a_second_process_on_a_checkpoint_folder_is_refused_naming_the_holder(tmp_path):
    from glattn.checkpoint import CheckpointLock, RunLockedError

    proc = _holder("checkpoint", tmp_path)
    try:
        with pytest.raises(RunLockedError) as info:
            CheckpointLock(tmp_path, wait_s=0.2, poll_s=0.05).acquire()
        assert str(tmp_path) in str(info.value) and f"pid {proc.pid}@" in str(info.value)
    finally:
        _release(proc)
    CheckpointLock(tmp_path, wait_s=0).acquire().release()  # free once the holder ends


def test_a_second_launch_into_a_sweep_folder_is_refused_naming_the_holder(tmp_path):
    from hydra_plugins.glattn_sweeper import guard

    proc = _holder("sweep_dir", tmp_path)
    try:
        with pytest.raises(SystemExit) as info:
            guard.hold_sweep_dir(tmp_path)
        message = str(info.value.code)
        assert str(tmp_path) in message and "in use by another launch" in message
        assert f"pid {proc.pid}@" in message
    finally:
        _release(proc)
    guard.hold_sweep_dir(tmp_path).release()


def _blocking_site(kind: str, folder: Path, seen: list):
    """Take the lock of `kind` in this process as its site does; record whether the
    holder had finished (its marker file) when this process got it."""
    marker = folder / "holder-done"
    if kind == "build":
        from glattn.data._atomic import build_once

        return lambda: build_once(folder / "built", lambda tmp: seen.append(marker.exists()))
    if kind == "grid":
        from omegaconf import OmegaConf

        from glattn.sweep.store import _grid_lock

        lock = _grid_lock(OmegaConf.create({"paths": {"output_dir": str(folder)}}), "g1")
    else:
        from glattn.tracking.client import _schema_lock

        lock = _schema_lock(folder / "mlflow.db")

    def take():
        with lock:
            seen.append(marker.exists())

    return take


@pytest.mark.parametrize("kind", ["grid", "schema"])
def test_a_second_process_waits_for_a_blocking_lock(tmp_path, kind):
    proc = _holder(kind, tmp_path)
    seen: list = []
    waiter = threading.Thread(target=_blocking_site(kind, tmp_path, seen), daemon=True)
    waiter.start()
    waiter.join(0.5)
    assert waiter.is_alive() and seen == []  # still waiting while the child holds it
    (tmp_path / "holder-done").touch()
    _release(proc)
    waiter.join()
    assert seen == [True]


def test_a_build_waits_for_the_one_in_progress_and_uses_its_result(tmp_path):
    proc = _holder("build", tmp_path)
    seen: list = []
    waiter = threading.Thread(target=_blocking_site("build", tmp_path, seen), daemon=True)
    waiter.start()
    waiter.join(0.5)
    assert waiter.is_alive()
    _release(proc)  # the child's build ends: it renames its folder to `built`
    waiter.join()
    assert seen == [] and (tmp_path / "built").is_dir()  # built once, by the child


def test_the_lock_file_stays_and_names_the_last_holder(tmp_path):
    path = tmp_path / "sub" / f"{uuid.uuid4().hex}.lock"
    with file_lock(path):
        assert f"pid {os.getpid()}@" in path.read_text()
    assert path.exists()
