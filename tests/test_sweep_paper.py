"""The paper driver runs every stage of experiments/paper.yaml in order with the caller's
overrides, goes on after a failed stage and reports it in its exit status."""

import json

from glattn.sweep.paper import load_stages, run_stages

FAKE_RUN = """
import json, sys
with open(%(log)r, "a") as f:
    f.write(json.dumps(sys.argv[1:]) + "\\n")
sys.exit(3 if "experiment=table2_cbam" in sys.argv else 0)
"""


def test_paper_driver_runs_stages_in_order_and_reports_failure(tmp_path, capsys):
    log = tmp_path / "calls.jsonl"
    fake = tmp_path / "run.py"
    fake.write_text(FAKE_RUN % {"log": str(log)})
    stages = load_stages()
    rc = run_stages(
        stages,
        ["experiment=paper", "hydra.mode=MULTIRUN", "hydra/launcher=slurm", "seed=0"],
        run_py=fake,
    )
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    assert rc == 1  # table2 failed, the others still ran
    assert calls == [["-m", *stage, "hydra/launcher=slurm", "seed=0"] for stage in stages]
    out = capsys.readouterr().out
    assert "FAILED (exit 3)" in out and out.count(" ok ") == len(stages) - 1


FAKE_PLAN = """
import json, os, sys
args = sys.argv[1:]
with open(%(log)r, "a") as f:
    f.write(json.dumps(args) + "\\n")
errors = 9 if "task=eval" in args else 0
with open(os.environ["GLATTN_PLAN_SUMMARY"], "a") as f:
    f.write(json.dumps({"name": "x", "jobs": 9, "done": 2, "todo": 7 - errors + 2 * (errors > 0),
                        "errors": errors, "pflop": 1.5, "disk_bytes": 1e9,
                        "grid_disk_bytes": 2e9}) + "\\n")
sys.exit(1 if errors else 0)
"""


def test_paper_gives_each_stage_its_own_sweep_dir_and_totals_the_plan(tmp_path, capsys):
    from glattn.sweep.paper import stage_name

    log = tmp_path / "calls.jsonl"
    fake = tmp_path / "run.py"
    fake.write_text(FAKE_PLAN % {"log": str(log)})
    stages = load_stages()
    rc = run_stages(
        stages, ["experiment=paper", f"hydra.sweep.dir={tmp_path}/sw", "sweep.plan=true"], fake
    )
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    dirs = [[a for a in c if a.startswith("hydra.sweep.dir=")] for c in calls]
    sw = tmp_path / "sw"
    want = [[f"hydra.sweep.dir={sw}/{i}_{stage_name(s)}"] for i, s in enumerate(stages, 1)]
    assert dirs == want and len({d[0] for d in dirs}) == len(stages)
    assert stage_name(stages[5]) == "table5_transfer_eval"
    out = capsys.readouterr().out
    # the eval stage's jobs with errors are errors, in its line and in the exit status
    assert rc == 1
    (eval_line,) = [ln for ln in out.splitlines() if "task=eval" in ln and "jobs:" in ln]
    assert "9 jobs: 2 done, 0 to run, 9 with errors (exit 1)" in eval_line
    assert out.count("9 jobs: 2 done, 7 to run ") == len(stages) - 1
    n = len(stages)
    assert (
        f"total over {n} of {n} stages: {9 * n} jobs: {2 * n} done, {7 * (n - 1)} to run, "
        f"9 with errors; {1.5 * n:.3g} PFLOP and {n} GB of disk to run ({2 * n} GB for the "
        "whole grid)" in out
    )
