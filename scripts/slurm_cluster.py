#!/usr/bin/env python3
"""A throw-away single-node SLURM cluster with real accounting, for tests and trying things.

    python scripts/slurm_cluster.py start DIR     # prints: export SLURM_CONF=DIR/etc/slurm.conf
    python scripts/slurm_cluster.py status DIR
    python scripts/slurm_cluster.py stop DIR      # cancels jobs, stops the daemons by PID

Debian 12 packages (.ci/run installs them):
    apt-get install -y --no-install-recommends slurmctld slurmd slurm-client slurmdbd \
        munge mariadb-server

Everything lives in DIR (a fresh one each time: a reused state dir leaves the node `unk`
for a while and job ids restart at 1): munge with its own key and socket, MariaDB on
127.0.0.1 and a free port, slurmdbd, slurmctld and slurmd on free ports. No systemd, no
cgroups (the settings verified on Debian 12). Accounting is real (slurmdbd +
MariaDB) because submitit polls job states with `sacct`: without it a job killed hard is
never seen as finished. Daemons run in the foreground in their own sessions; their PIDs
are kept in DIR/cluster.json and `stop` signals exactly those PIDs (SIGTERM, then SIGKILL).
Runs as root (CI) or as a normal user (then SLURM runs jobs as that user).
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from _service import free_port, port_open, wait_until  # scripts/_service.py

CLUSTER = "glattn"
PARTITION = "debug"


def _mem_mb() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(int(line.split()[1]) / 1024 * 0.9)
    return 4096


def require_binaries() -> None:
    need = [
        "munged",
        "mariadbd",
        "mariadb-install-db",
        "slurmdbd",
        "slurmctld",
        "slurmd",
        "sbatch",
        "sacct",
        "sacctmgr",
        "scontrol",
    ]
    missing = [b for b in need if shutil.which(b) is None and not Path("/usr/sbin", b).exists()]
    if missing:
        raise RuntimeError(
            f"missing {missing}: apt-get install -y --no-install-recommends slurmctld slurmd "
            "slurm-client slurmdbd munge mariadb-server"
        )


def _bin(name: str) -> str:
    return shutil.which(name) or str(Path("/usr/sbin", name))


class Cluster:
    def __init__(self, base: Path):
        self.base = Path(base).resolve()
        self.state_file = self.base / "cluster.json"
        self.info: dict = {}
        if self.state_file.exists():
            self.info = json.loads(self.state_file.read_text())

    # ------------------------------------------------------------------ paths and env
    def p(self, *parts: str) -> Path:
        return self.base.joinpath(*parts)

    @property
    def conf(self) -> Path:
        return self.p("etc", "slurm.conf")

    def env(self) -> dict:
        env = dict(os.environ)
        env["SLURM_CONF"] = str(self.conf)
        return env

    def run(self, *cmd: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(
            cmd, env=self.env(), capture_output=True, text=True, check=check, timeout=60
        )

    def _spawn(self, name: str, cmd: list[str]) -> int:
        log = open(self.p("log", f"{name}.out"), "ab")
        proc = subprocess.Popen(
            cmd,
            env=self.env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.info.setdefault("pids", {})[name] = proc.pid
        self._save()
        return proc.pid

    def _save(self) -> None:
        self.state_file.write_text(json.dumps(self.info, indent=1))

    def _alive(self, name: str) -> bool:
        pid = self.info.get("pids", {}).get(name)
        if not pid:
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        try:  # a zombie child of this process is not alive
            return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
        except OSError:
            return False

    # ------------------------------------------------------------------ start
    def start(self, timeout: float = 90.0) -> Cluster:
        require_binaries()
        if self.state_file.exists():
            raise RuntimeError(f"{self.base} already holds a cluster; use a fresh directory")
        for d in ("etc", "munge", "state", "spool", "log", "run", "mysql", "tmp"):
            self.p(d).mkdir(parents=True, exist_ok=True)
        self.p("munge").chmod(0o755)  # munged insists on a non-writable socket dir
        self.base.chmod(0o755)
        user = getpass.getuser()
        ports = {k: free_port() for k in ("mysql", "dbd", "ctld", "slurmd")}
        self.info = {"user": user, "ports": ports, "pids": {}, "conf": str(self.conf)}
        self._save()
        try:
            self._start_munge()
            self._start_mariadb(ports["mysql"], timeout)
            self._write_confs(user, ports)
            # slurmdbd reads slurmdbd.conf next to $SLURM_CONF
            self._spawn("slurmdbd", [_bin("slurmdbd"), "-D"])
            wait_until(
                "slurmdbd", lambda: port_open(ports["dbd"]), timeout, self.p("log", "slurmdbd.log")
            )
            self.run("sacctmgr", "-i", "add", "cluster", CLUSTER)
            self.run("sacctmgr", "-i", "add", "account", "glattn", f"Cluster={CLUSTER}")
            self.run("sacctmgr", "-i", "add", "user", user, "Account=glattn", f"Cluster={CLUSTER}")
            self._spawn("slurmctld", [_bin("slurmctld"), "-D", "-i", "-f", str(self.conf)])
            wait_until(
                "slurmctld",
                lambda: self.run("scontrol", "ping").stdout.count("UP") > 0,
                timeout,
                self.p("log", "slurmctld.log"),
            )
            self._spawn("slurmd", [_bin("slurmd"), "-D", "-f", str(self.conf)])
            wait_until("node idle", self._node_idle, timeout, self.p("log", "slurmd.log"))
        except BaseException:
            self.stop()
            raise
        return self

    def _start_munge(self) -> None:
        key = self.p("munge", "munge.key")
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        sock = self.p("munge", "munge.socket")
        self.info["munge_socket"] = str(sock)
        self._spawn(
            "munged",
            [
                _bin("munged"),
                "-F",
                "-f",
                f"--socket={sock}",
                f"--key-file={key}",
                f"--pid-file={self.p('run', 'munged.pid')}",
                f"--log-file={self.p('log', 'munged.log')}",
                f"--seed-file={self.p('munge', 'munged.seed')}",
            ],
        )
        wait_until("munged", sock.exists, 30, self.p("log", "munged.out"))

    def _start_mariadb(self, port: int, timeout: float) -> None:
        datadir = self.p("mysql")
        user = ["--user=root"] if os.geteuid() == 0 else []
        subprocess.run(
            [
                _bin("mariadb-install-db"),
                "--no-defaults",
                f"--datadir={datadir}",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
                *user,
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )
        self._spawn(
            "mariadbd",
            [
                _bin("mariadbd"),
                "--no-defaults",
                f"--datadir={datadir}",
                f"--socket={self.p('run', 'mysqld.sock')}",
                f"--port={port}",
                "--bind-address=127.0.0.1",
                "--skip-grant-tables",
                f"--pid-file={self.p('run', 'mariadbd.pid')}",
                f"--log-error={self.p('log', 'mariadb.log')}",
                "--innodb-buffer-pool-size=64M",
                *user,
            ],
        )
        wait_until("mariadb", lambda: port_open(port), timeout, self.p("log", "mariadb.log"))

    def _write_confs(self, user: str, ports: dict) -> None:
        sock = self.info["munge_socket"]
        dbd = self.p("etc", "slurmdbd.conf")
        dbd.write_text(
            "\n".join(
                [
                    "AuthType=auth/munge",
                    f"AuthInfo=socket={sock}",
                    "DbdHost=localhost",
                    "DbdAddr=127.0.0.1",
                    f"DbdPort={ports['dbd']}",
                    f"SlurmUser={user}",
                    "StorageType=accounting_storage/mysql",
                    "StorageHost=127.0.0.1",
                    f"StoragePort={ports['mysql']}",
                    "StorageUser=root",
                    "StorageLoc=slurm_acct_db",
                    f"PidFile={self.p('run', 'slurmdbd.pid')}",
                    f"LogFile={self.p('log', 'slurmdbd.log')}",
                    "DebugLevel=info",
                    "",
                ]
            )
        )
        dbd.chmod(0o600)  # slurmdbd refuses a readable config (it may hold a password)
        cpus = os.cpu_count() or 1
        self.conf.write_text(
            "\n".join(
                [
                    f"ClusterName={CLUSTER}",
                    "SlurmctldHost=localhost",
                    f"SlurmctldPort={ports['ctld']}",
                    f"SlurmdPort={ports['slurmd']}",
                    "AuthType=auth/munge",
                    f"AuthInfo=socket={sock}",
                    "CryptoType=crypto/munge",
                    f"SlurmUser={user}",
                    f"SlurmdUser={user}",
                    f"StateSaveLocation={self.p('state')}",
                    f"SlurmdSpoolDir={self.p('spool')}",
                    f"SlurmctldPidFile={self.p('run', 'slurmctld.pid')}",
                    f"SlurmdPidFile={self.p('run', 'slurmd.pid')}",
                    f"SlurmctldLogFile={self.p('log', 'slurmctld.log')}",
                    f"SlurmdLogFile={self.p('log', 'slurmd.log')}",
                    "ProctrackType=proctrack/linuxproc",
                    "TaskPlugin=task/none",
                    "JobAcctGatherType=jobacct_gather/none",
                    "SelectType=select/cons_tres",
                    "SelectTypeParameters=CR_CPU_Memory",
                    "SchedulerType=sched/backfill",
                    "MailProg=/bin/true",
                    "MinJobAge=3600",
                    "ReturnToService=2",
                    "SlurmdParameters=config_overrides",
                    "JobRequeue=1",
                    "AccountingStorageType=accounting_storage/slurmdbd",
                    "AccountingStorageHost=localhost",
                    f"AccountingStoragePort={ports['dbd']}",
                    f"AccountingStoragePass={sock}",
                    "JobCompType=jobcomp/none",
                    "SlurmctldTimeout=30",
                    "SlurmdTimeout=60",
                    "InactiveLimit=0",
                    "KillWait=5",
                    f"NodeName=localhost NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={_mem_mb()} "
                    "State=UNKNOWN",
                    f"PartitionName={PARTITION} Nodes=localhost Default=YES MaxTime=INFINITE "
                    "State=UP",
                    "",
                ]
            )
        )

    def _node_idle(self) -> bool:
        out = self.run("sinfo", "-h", "-N", "-o", "%T", check=False).stdout.strip()
        return out.startswith("idle")

    # ------------------------------------------------------------------ stop
    def stop(self, grace: float = 15.0) -> None:
        """Cancel jobs, then stop each daemon this cluster started, by its PID."""
        pids = self.info.get("pids", {})
        if self._alive("slurmctld"):
            self.run(
                "scancel", "--full", "-u", self.info.get("user", getpass.getuser()), check=False
            )
            deadline = time.monotonic() + grace
            while time.monotonic() < deadline:
                if not self.run("squeue", "-h", check=False).stdout.strip():
                    break
                time.sleep(0.5)
        for name in ("slurmd", "slurmctld", "slurmdbd", "mariadbd", "munged"):
            pid = pids.get(name)
            if not pid or not self._alive(name):
                continue
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + grace
            while self._alive(name) and time.monotonic() < deadline:
                time.sleep(0.2)
            if self._alive(name):
                os.kill(pid, signal.SIGKILL)
            try:  # reap it when this process started it
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
        self.info["stopped"] = True
        if self.base.exists():
            self._save()

    def status(self) -> dict:
        return {name: self._alive(name) for name in self.info.get("pids", {})}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("action", choices=["start", "stop", "status"])
    ap.add_argument("dir", type=Path)
    args = ap.parse_args(argv)
    cluster = Cluster(args.dir)
    if args.action == "start":
        t0 = time.monotonic()
        cluster.start()
        print(f"# single-node SLURM cluster up in {time.monotonic() - t0:.1f}s", file=sys.stderr)
        print(f"export SLURM_CONF={cluster.conf}")
    elif args.action == "stop":
        cluster.stop()
    else:
        print(json.dumps(cluster.status()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
