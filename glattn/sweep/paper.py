"""The whole paper as a list of sweeps: ``python -m glattn.sweep.paper [overrides...]``.

Hydra runs one sweep per command, so experiments/paper.yaml lists stages and this driver
runs ``python run.py -m <stage overrides> <user overrides>`` for each, in order (Table 5's
eval stage after its training stage). A stage with failed jobs does not stop the others;
the exit status is non-zero if any stage failed. ``python run.py -m experiment=paper``
lands here too (the glattn sweeper sees ``paper.stages``).

``hydra.sweep.dir=X`` gives every stage its own folder below it, ``X/<n>_<stage>``
(``1_table1_backbones`` ... ``6_table5_transfer_eval``), so job folders, logs and
``summary.json`` of different stages never mix. With ``sweep.plan=true`` each stage prints
its plan, the stage's summary line gives its jobs (a stage with errors says so and counts
as failed) and a total over all stages ends the output (jobs, done, to run, PFLOP, disk).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
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


def stage_name(stage: list[str]) -> str:
    """experiment=table5_transfer task=eval -> table5_transfer_eval."""
    opts = dict(o.split("=", 1) for o in stage if "=" in o)
    name = opts.get("experiment", "stage")
    return name + (f"_{opts['task']}" if opts.get("task", "train") != "train" else "")


def _stage_overrides(overrides: list[str], num: int, stage: list[str]) -> list[str]:
    """The user's overrides with hydra.sweep.dir=X made X/<num>_<stage name>."""
    out = []
    for o in overrides:
        key, _, value = o.partition("=")
        if key == "hydra.sweep.dir" and value:
            o = f"{key}={value.rstrip('/')}/{num}_{stage_name(stage)}"
        out.append(o)
    return out


def _is_plan(overrides: list[str]) -> bool:
    values = [o.split("=", 1)[1] for o in overrides if o.split("=", 1)[0] == "sweep.plan"]
    return bool(values) and values[-1].lower() == "true"


def _plan_line(summary: dict | None, rc: int) -> str:
    if summary is None:
        return "ok" if rc == 0 else f"FAILED (exit {rc})"
    text = f"{summary['jobs']} jobs: {summary['done']} done, {summary['todo']} to run"
    if summary["errors"]:
        text += f", {summary['errors']} with errors"
    return text if rc == 0 else f"{text} (exit {rc})"


def run_stages(stages: list[list[str]], overrides: list[str], run_py: Path | None = None) -> int:
    from glattn.sweep.units import fmt_bytes as _fmt_bytes
    from glattn.sweep.units import fmt_pflop as _fmt_pflop

    run_py = run_py or ROOT / "run.py"
    user = _user_overrides(overrides)
    plan = _is_plan(user)
    results = []
    with tempfile.TemporaryDirectory(prefix="glattn-paper-") as tmp:
        for num, stage in enumerate(stages, start=1):
            cmd = [sys.executable, str(run_py), "-m", *stage, *_stage_overrides(user, num, stage)]
            print(f"[glattn paper] {' '.join(cmd[1:])}", flush=True)
            env = dict(os.environ)
            summary_file = Path(tmp) / f"{num}.jsonl"
            if plan:
                env["GLATTN_PLAN_SUMMARY"] = str(summary_file)
            t0 = time.monotonic()
            rc = subprocess.call(cmd, env=env)
            lines = summary_file.read_text().splitlines() if summary_file.is_file() else []
            summary = json.loads(lines[-1]) if lines else None
            results.append((stage, rc, time.monotonic() - t0, summary))
    print("[glattn paper] summary:")
    for stage, rc, dt, summary in results:
        state = _plan_line(summary, rc) if plan else ("ok" if rc == 0 else f"FAILED (exit {rc})")
        print(f"  {' '.join(stage):<90} {state:<16} {dt / 60:.1f} min")
    sums = [s for _, _, _, s in results if s is not None]
    if plan and sums:
        total = {k: sum(s[k] for s in sums) for k in ("jobs", "done", "todo", "errors")}
        pflop = sum(s["pflop"] for s in sums)
        disk = sum(s["disk_bytes"] for s in sums)
        grid_disk = sum(s["grid_disk_bytes"] for s in sums)
        print(
            f"[glattn paper] total over {len(sums)} of {len(results)} stages: "
            f"{total['jobs']} jobs: {total['done']} done, {total['todo']} to run"
            + (f", {total['errors']} with errors" if total["errors"] else "")
            + f"; {_fmt_pflop(pflop)} PFLOP and {_fmt_bytes(disk)} of disk to run "
            f"({_fmt_bytes(grid_disk)} for the whole grid)"
        )
    return 0 if all(rc == 0 for _, rc, _, _ in results) else 1


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
