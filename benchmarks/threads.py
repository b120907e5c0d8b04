"""Wall time of a bare tiny run, idle vs loaded, with the old and the new thread choice:

  old: torch's default intra-op threads (one per core: OMP_NUM_THREADS=<cores>)
  new: glattn.runtime.choose_threads (OMP_NUM_THREADS unset: from os.sched_getaffinity, the
       jobs at once and the cores the load average leaves free)

"loaded" starts ``--hogs`` busy-looping processes (default: 2 per core) before the run,
waits ``--settle`` seconds so the 1-minute load average sees them, and stops them after.
Each run is ``glattn debug=smoke tracking=none`` (``--overrides`` adds to it) in a fresh
output folder, a subprocess timed from start to exit. Prints one row per run, the load
average before each, and the ratios loaded/idle (old, new) and old/new (loaded).

    python benchmarks/threads.py [--hogs 4] [--settle 20] [--overrides trainer.max_epochs=2]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _spin() -> None:
    while True:
        pass


def one_run(threads: int | None, overrides: list[str]) -> float:
    """Seconds of ``run.py debug=smoke tracking=none`` with OMP_NUM_THREADS=threads (None:
    unset, glattn chooses)."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    if threads is not None:
        env["OMP_NUM_THREADS"] = str(threads)
    with tempfile.TemporaryDirectory(prefix="glattn-threads-") as out:
        cmd = [sys.executable, str(ROOT / "run.py"), "debug=smoke", "tracking=none"]
        cmd += [f"paths.output_dir={out}", *overrides]
        start = time.perf_counter()
        res = subprocess.run(cmd, cwd=out, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - start
    if res.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{res.stderr[-3000:]}")
    output = (res.stdout + res.stderr).splitlines()  # Hydra's console log is stdout
    chosen = [line for line in output if "intra-op threads:" in line]
    print(f"    {chosen[-1].split(' - ', 1)[-1] if chosen else '(no thread line)'}")
    return wall


def measure(label: str, overrides: list[str]) -> dict[str, float]:
    cores = len(os.sched_getaffinity(0))
    out = {}
    for name, threads in (("old", cores), ("new", None)):
        load = os.getloadavg()[0]
        out[name] = one_run(threads, overrides)
        print(f"{label:7s} {name}: {out[name]:6.1f} s   (load average before: {load:.1f})")
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cores = len(os.sched_getaffinity(0))
    p.add_argument("--hogs", type=int, default=2 * cores, help="busy processes when loaded")
    p.add_argument("--settle", type=float, default=20.0, help="s for the load average")
    p.add_argument("--overrides", nargs="*", default=[])
    args = p.parse_args(argv)
    print(f"{cores} cores allowed (os.sched_getaffinity), uptime load {os.getloadavg()}")
    idle = measure("idle", args.overrides)
    hogs = [mp.Process(target=_spin, daemon=True) for _ in range(args.hogs)]
    for h in hogs:
        h.start()
    try:
        time.sleep(args.settle)
        loaded = measure("loaded", args.overrides)
    finally:
        for h in hogs:
            h.terminate()
        for h in hogs:
            h.join()
    old, new = loaded["old"] / idle["old"], loaded["new"] / idle["new"]
    print(f"loaded/idle: old {old:.2f}x, new {new:.2f}x; loaded old/new ", end="")
    print(f"{loaded['old'] / loaded['new']:.2f}x")


if __name__ == "__main__":
    main()
