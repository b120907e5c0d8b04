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
