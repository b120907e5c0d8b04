#!/usr/bin/env python3
"""A throw-away MLflow tracking server backed by PostgreSQL, on 127.0.0.1.

    python scripts/tracking_server.py start DIR   # prints: export GLATTN_TRACKING_URI=...
    python scripts/tracking_server.py stop DIR    # stops mlflow server and PostgreSQL by PID

Many SLURM nodes cannot share one SQLite file; they share a tracking server
(``tracking.uri=http://HOST:PORT``). This script is the small version of that, used by the
slow tests: its own PostgreSQL cluster (initdb in DIR, trust auth, listening on 127.0.0.1
and a free port; run as the `postgres` user when started by root, because PostgreSQL
refuses to run as root), a database `mlflow`, and ``mlflow server`` serving artifacts from
DIR/artifacts. PIDs are kept in DIR/server.json. On a real cluster, run the same two
commands (initdb/pg_ctl or your site's PostgreSQL, then mlflow server) on a login or
service node; docs/sweeps.md shows them.
"""

from __future__ import annotations

import argparse
import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from _service import free_port, wait_until  # scripts/_service.py

PG_USER = "glattn"


def pg_bin(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    for d in versions:
        if (d / name).exists():
            return str(d / name)
    raise RuntimeError(f"{name} not found: install PostgreSQL (apt-get install postgresql)")


class TrackingServer:
    def __init__(self, base: Path):
        self.base = Path(base).resolve()
        self.state_file = self.base / "server.json"
        self.info: dict = {}
        if self.state_file.exists():
            self.info = json.loads(self.state_file.read_text())

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.info['mlflow_port']}"

    @property
    def db_uri(self) -> str:
        return f"postgresql+psycopg2://{PG_USER}@127.0.0.1:{self.info['pg_port']}/mlflow"

    def _save(self) -> None:
        self.state_file.write_text(json.dumps(self.info, indent=1))

    def _as_pg_user(self) -> dict:
        """Popen kwargs: PostgreSQL refuses root, so root runs it as `postgres`."""
        if os.geteuid() != 0:
            return {}
        pw = pwd.getpwnam("postgres")
        return {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}

    def _spawn(self, name: str, cmd: list[str], **kw) -> int:
        log = open(self.base / f"{name}.log", "ab")
        proc = subprocess.Popen(
            cmd,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            **kw,
        )
        self.info.setdefault("pids", {})[name] = proc.pid
        self._save()
        return proc.pid

    def start(self, timeout: float = 120.0, workers: int = 2) -> TrackingServer:
        if self.state_file.exists():
            raise RuntimeError(f"{self.base} already holds a server; use a fresh directory")
        (self.base / "artifacts").mkdir(parents=True, exist_ok=True)
        as_pg = self._as_pg_user()
        # the `postgres` user may not traverse DIR (e.g. pytest's 0700 tmp dirs): its data
        # and socket go to a private dir of its own under $TMPDIR, removed by stop()
        pg_home = Path(tempfile.mkdtemp(prefix="glattn-pg-"))
        pgdata, sock = pg_home / "data", pg_home / "sock"
        sock.mkdir()
        if as_pg:
            for path in (pg_home, sock):
                os.chown(path, as_pg["user"], as_pg["group"])
        self.info = {
            "pg_port": free_port(),
            "mlflow_port": free_port(),
            "pids": {},
            "pg_home": str(pg_home),
        }
        self._save()
        try:
            init = subprocess.run(
                [
                    pg_bin("initdb"),
                    "-D",
                    str(pgdata),
                    "-U",
                    PG_USER,
                    "--auth=trust",
                    "-E",
                    "UTF8",
                    "--no-sync",
                ],
                capture_output=True,
                text=True,
                timeout=120,
                **as_pg,
            )
            if init.returncode:
                raise RuntimeError(f"initdb failed:\n{init.stdout}\n{init.stderr}")
            self._spawn(
                "postgres",
                [
                    pg_bin("postgres"),
                    "-D",
                    str(pgdata),
                    "-k",
                    str(sock),
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(self.info["pg_port"]),
                    "-c",
                    "fsync=off",
                    "-c",
                    "max_connections=200",
                ],
                **as_pg,
            )
            ready = [pg_bin("pg_isready"), "-h", "127.0.0.1", "-p", str(self.info["pg_port"])]
            wait_until(
                "postgres",
                lambda: subprocess.run(ready, capture_output=True).returncode == 0,
                timeout,
                self.base / "postgres.log",
                lambda: self._alive(self.info["pids"]["postgres"]),
            )
            subprocess.run(
                [
                    pg_bin("createdb"),
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(self.info["pg_port"]),
                    "-U",
                    PG_USER,
                    "mlflow",
                ],
                check=True,
                capture_output=True,
                timeout=60,
            )
            mlflow = str(Path(sys.executable).with_name("mlflow"))
            self._spawn(
                "mlflow",
                [
                    mlflow,
                    "server",
                    "--backend-store-uri",
                    self.db_uri,
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.info["mlflow_port"]),
                    "--serve-artifacts",
                    "--artifacts-destination",
                    str(self.base / "artifacts"),
                    "--workers",
                    str(workers),
                ],
            )
            wait_until(
                "mlflow server",
                self._healthy,
                timeout,
                self.base / "mlflow.log",
                lambda: self._alive(self.info["pids"]["mlflow"]),
            )
        except BaseException:
            self.stop()
            raise
        return self

    def _healthy(self) -> bool:
        with urllib.request.urlopen(f"{self.uri}/health", timeout=2) as r:
            return r.status == 200

    def _alive(self, pid: int) -> bool:
        try:
            if os.waitpid(pid, os.WNOHANG)[0] == pid:  # our child, exited
                return False
        except ChildProcessError:
            pass
        try:
            os.kill(pid, 0)
            return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
        except (ProcessLookupError, OSError):
            return False

    def stop(self, grace: float = 20.0) -> None:
        """mlflow server first (its workers follow their master), then PostgreSQL."""
        pids = self.info.get("pids", {})
        # SIGINT is PostgreSQL's "fast" shutdown; uvicorn/gunicorn stop on SIGTERM
        for name, sig in (("mlflow", signal.SIGTERM), ("postgres", signal.SIGINT)):
            pid = pids.get(name)
            if not pid or not self._alive(pid):
                continue
            os.kill(pid, sig)
            deadline = time.monotonic() + grace
            while self._alive(pid) and time.monotonic() < deadline:
                time.sleep(0.2)
            if self._alive(pid):
                os.kill(pid, signal.SIGKILL)
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
        pg_pid = pids.get("postgres")
        if self.info.get("pg_home") and not (pg_pid and self._alive(pg_pid)):
            shutil.rmtree(self.info["pg_home"], ignore_errors=True)
        self.info["stopped"] = True
        if self.base.exists():
            self._save()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("action", choices=["start", "stop"])
    ap.add_argument("dir", type=Path)
    args = ap.parse_args(argv)
    server = TrackingServer(args.dir)
    if args.action == "start":
        args.dir.mkdir(parents=True, exist_ok=True)
        server.start()
        print(f"export GLATTN_TRACKING_URI={server.uri}")
        print(f"# backend store: {server.db_uri}", file=sys.stderr)
    else:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
