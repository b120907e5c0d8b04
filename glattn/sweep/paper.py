"""The whole paper as a list of sweeps: ``python -m glattn.sweep.paper [overrides...]``.

Hydra runs one sweep per command, so experiments/paper.yaml lists stages and this driver
runs ``python run.py -m <stage overrides> <user overrides>`` for each, in order (Table 5's
eval stage after its training stage). A stage with failed jobs does not stop the others;
the exit status is non-zero if any stage failed. ``python run.py -m experiment=paper``
lands here too (the glattn sweeper sees ``paper.stages``).
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from omegaconf import OmegaConf

ROOT = Path(__file__).resolve().parents[2]
PAPER = ROOT / "experiments" / "paper.yaml"


def load_stages(path: Path = PAPER) -> list[list[str]]:
    stages = OmegaConf.load(path).paper.stages
    return [list(map(str, s)) for s in stages]


def _user_overrides(overrides: list[str]) -> list[str]:
    """The caller's overrides minus experiment=paper itself and Hydra's own run mode."""
    drop = {"experiment", "hydra.mode"}
    return [o for o in overrides if o.split("=", 1)[0].lstrip("+~") not in drop]


def run_stages(stages: list[list[str]], overrides: list[str], run_py: Path | None = None) -> int:
    run_py = run_py or ROOT / "run.py"
    results = []
    for stage in stages:
        cmd = [sys.executable, str(run_py), "-m", *stage, *_user_overrides(overrides)]
        print(f"[glattn paper] {' '.join(cmd[1:])}", flush=True)
        t0 = time.monotonic()
        rc = subprocess.call(cmd)
        results.append((stage, rc, time.monotonic() - t0))
    print("[glattn paper] summary:")
    for stage, rc, dt in results:
        state = "ok" if rc == 0 else f"FAILED (exit {rc})"
        print(f"  {' '.join(stage):<90} {state:<16} {dt / 60:.1f} min")
    return 0 if all(rc == 0 for _, rc, _ in results) else 1


def run_from_sweeper(config, arguments: list[str]) -> list:
    """``python run.py -m experiment=paper ...``: the glattn sweeper hands over here."""
    stages = [list(map(str, s)) for s in config.paper.stages]
    rc = run_stages(stages, list(arguments))
    if rc:
        raise SystemExit(rc)
    return []


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if any(a in ("-h", "--help") for a in argv):
        print(__doc__)
        return 0
    return run_stages(load_stages(), argv)


if __name__ == "__main__":
    sys.exit(main())
