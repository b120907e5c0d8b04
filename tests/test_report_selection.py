"""The report's run set (issue 18): cells, variants, debug runs, --where, runs_used.csv.

The fixture is the issue's mixed-configuration scenario, written straight into a temporary
SQLite MLflow store: `python run.py` (64 px, 5 epochs, fusion=original, seed 0), then
`python run.py -m fusion=original,learnable_gate seed=0,1 debug=smoke` (32 px, 1 epoch).
"""

import sys

import pandas as pd
import pytest
from test_report_helpers import Store

from glattn.report import figures, runs, selection, tables
from glattn.report.__main__ import main

FULL = {"dataset.image_size": "64", "trainer.max_epochs": "5"}
SMOKE = {"dataset.image_size": "32", "trainer.max_epochs": "1", "debug": "smoke"}


def scenario(tmp_path, debug_experiment: bool) -> Store:
    """The issue's runs; the smoke runs in `glattn` (old records: only their params and
    overrides tell) or in `glattn-debug` (where the job now puts them, tag debug=smoke)."""
    s = Store(tmp_path)
    s.job("glattn", 0, {"test/balanced_acc": 0.80}, extra_params=FULL, dataset="synthetic")
    exp = "glattn-debug" if debug_experiment else "glattn"
    for fusion, base in (("original", 0.40), ("learnable_gate", 0.45)):
        for seed in (0, 1):
            s.job(
                exp,
                seed,
                {"test/balanced_acc": base + 0.1 * seed},
                extra_params=SMOKE,
                dataset="synthetic",
                fusion=fusion,
                **({"debug": "smoke"} if debug_experiment else {}),
            )
    return s


@pytest.fixture(scope="module", params=[False, True], ids=["same-experiment", "debug-exp"])
def mixed(request, tmp_path_factory):
    return scenario(tmp_path_factory.mktemp("mixed"), request.param)


def test_debug_runs_stay_out_unless_asked(mixed):
    notes = []
    frame = runs.load_runs(mixed.uri, "glattn", notes=notes)
    assert len(frame) == 1 and frame["params.dataset.image_size"].tolist() == ["64"]
    # one fusion only: no fusion table from the paper's runs
    assert tables.build_tables(frame, tables.Context(), [3])[3] is None
    both = runs.load_runs(mixed.uri, "glattn", include_debug=True)
    assert len(both) == 5


def test_an_experiment_run_only_with_debug_presets_is_read_with_include_debug(tmp_path):
    """`run.py -m ... debug=smoke tracking.experiment=my_fusion` records `my_fusion-debug`
    only: the report on `my_fusion` names --include-debug, and with it reads the twin."""
    s = Store(tmp_path)
    for seed in (0, 1):
        s.job("my_fusion-debug", seed, {"test/balanced_acc": 0.5}, extra_params=SMOKE)
    with pytest.raises(runs.ReportError, match=r"'my_fusion-debug': add --include-debug"):
        runs.load_runs(s.uri, "my_fusion")
    frame = runs.load_runs(s.uri, "my_fusion", include_debug=True)
    assert sorted(frame["seed"]) == [0, 1]
    with pytest.raises(runs.ReportError, match=r"'nothing' not found .* experiments there"):
        runs.load_runs(s.uri, "nothing", include_debug=True)


def test_mixed_configurations_split_into_labelled_rows_never_averaged(mixed):
    frame = runs.load_runs(mixed.uri, "glattn", include_debug=True)
    assert frame["cell"].nunique() == 3  # 64 px original, 32 px original, 32 px gate
    assert set(frame["variant"]) == {
        "dataset.image_size=64, trainer.max_epochs=5",
        "dataset.image_size=32, trainer.max_epochs=1",
    }
    t3 = tables.build_tables(frame, tables.Context(), [3])[3]
    md = t3.to_markdown()
    assert "Variant" in t3.columns
    # the 32 px cells pair up: original n=2 (mean 45.00), gate n=2 (50.00); never n=3
    assert "45.00 ± 7.07 (n=2)" in md and "50.00 ± 7.07 (n=2)" in md
    assert "(n=3)" not in md
    for _, sub in figures.strategies(frame):  # figures: one configuration per line
        assert sub["cell"].nunique() == 1


def test_runs_used_csv_declares_the_run_set(mixed, tmp_path):
    out = tmp_path / "r"
    argv = ["glattn", "--tracking-uri", mixed.uri, "--out", str(out), "--no-log"]
    assert main([*argv, "--no-figures", "--include-debug", "--tables", "3"]) == 0
    used = pd.read_csv(out / "runs_used.csv")
    assert list(used.columns) == selection.USED_COLUMNS
    assert len(used) == 5 and used["cell"].nunique() == 3
    assert sorted(used["seed"]) == [0, 0, 0, 1, 1]
    # default: the debug runs are not in the declared set
    assert main([*argv, "--no-figures"]) == 0
    used = pd.read_csv(out / "runs_used.csv")
    assert len(used) == 1 and used["experiment"].tolist() == ["glattn"]


def test_where_selects_one_configuration(mixed):
    frame = runs.load_runs(
        mixed.uri, "glattn", where=["dataset.image_size=32"], include_debug=True
    )
    assert len(frame) == 4 and set(frame["params.dataset.image_size"]) == {"32"}
    with pytest.raises(runs.ReportError, match="no run has a param or tag 'nope'"):
        runs.load_runs(mixed.uri, "glattn", where=["nope=1"])
    with pytest.raises(runs.ReportError, match="expected KEY=VALUE"):
        runs.load_runs(mixed.uri, "glattn", where=["image_size"])


def test_a_difference_no_shared_param_tells_is_refused(tmp_path):
    s = Store(tmp_path)
    for gate in ("0.3", "0.5"):  # an option's own setting, not in every run
        s.job("g", 0, {"test/balanced_acc": 0.7}, extra_params={"fusion.gate_init": gate})
    s.job("g", 0, {"test/balanced_acc": 0.6}, fusion="learnable_gate")
    with pytest.raises(runs.ReportError) as err:
        runs.load_runs(s.uri, "g")
    text = str(err.value)
    assert "2 configurations share one row" in text and "fusion.gate_init" in text
    assert '--where "fusion.gate_init=' in text and "--experiment" in text


def test_a_rerun_of_the_same_configuration_is_noted(tmp_path):
    s = Store(tmp_path)
    first = s.job("g", 0, {"test/balanced_acc": 0.5})
    last = s.job("g", 0, {"test/balanced_acc": 0.6})
    notes = []
    frame = runs.load_runs(s.uri, "g", notes=notes)
    assert frame["run_id"].tolist() == [last]
    assert any("repeat a seed of the same configuration" in n and first in n for n in notes)


def test_report_help_lists_every_subcommand(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for word in ("claims [EXPERIMENT]", "paper", "estimate", "--where", "--include-debug"):
        assert word in out


@pytest.mark.slow
def test_issue_scenario_end_to_end(tmp_path):
    """`python run.py`, then `python run.py -m fusion=original,learnable_gate seed=0,1
    debug=smoke`, then the report: one declared run set, debug runs only when asked."""
    import subprocess

    from test_sweep_helpers import ROOT, env, explain, run_cli

    out = tmp_path / "out"
    first = subprocess.run(
        [sys.executable, str(ROOT / "run.py"), f"paths.output_dir={out}", "trainer.max_epochs=2"],
        cwd=ROOT,
        env=env(),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert first.returncode == 0, explain(first, out)
    grid = ["fusion=original,learnable_gate", "seed=0,1", "debug=smoke"]
    second = run_cli(ROOT / "run.py", *grid, f"paths.output_dir={out}", cwd=ROOT)
    assert second.returncode == 0, explain(second, out)
    uri = f"sqlite:///{out}/mlflow.db"
    paper, debug = (
        runs.load_runs(uri, "glattn"),
        runs.load_runs(uri, "glattn-debug", include_debug=True),
    )
    assert paper["run_name"].tolist() == ["resnet18_cbam_original_original_synthetic_s0"]
    assert len(debug) == 4 and all(n.endswith("_smoke") for n in debug["run_name"])
    rep = tmp_path / "rep"
    argv = ["--tracking-uri", uri, "--no-log", "--no-gradcam", "--out"]
    assert main(["glattn", *argv, str(rep / "paper")]) == 0
    assert len(pd.read_csv(rep / "paper" / "runs_used.csv")) == 1
    assert main(["glattn-debug", *argv, str(rep / "debug"), "--include-debug"]) == 0
    used = pd.read_csv(rep / "debug" / "runs_used.csv")
    assert len(used) == 4 and used["cell"].nunique() == 2
    t3 = (rep / "debug" / "table3_fusion.md").read_text()
    assert t3.count("(n=2)") >= 2 and "(n=3)" not in t3
