"""The report's run set: cells, variants, debug runs, --where, runs_used.csv.

The fixture is the issue's mixed-configuration scenario, written straight into a temporary
SQLite MLflow store: `python run.py` (64 px, 5 epochs, fusion=original, seed 0), then
`python run.py -m fusion=original,learnable_gate seed=0,1 debug=smoke` (32 px, 1 epoch).
"""

import sys

import pandas as pd
import pytest
from test_report_helpers import Store, report

from glattn.report import declared, figures, runs, selection, tables

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
    assert declared.load().by_number()[3].build(frame, tables.Context()) is None
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


def test_a_debug_sweep_report_names_and_is_logged_to_its_debug_experiment(tmp_path, capsys):
    """`run.py -m ... debug=smoke tracking.experiment=my_fusion`: the parent and the jobs are
    in `my_fusion-debug`; the report of `my_fusion --include-debug` says so and goes there."""
    s = Store(tmp_path)
    parent = s.sweep("my_fusion-debug")
    for fusion in ("original", "learnable_gate"):
        s.job("my_fusion-debug", 0, {"test/balanced_acc": 0.5}, extra_params=SMOKE,
              parent=parent, fusion=fusion, debug="smoke")  # fmt: skip
    out = tmp_path / "r"
    argv = ["my_fusion", "--tracking-uri", s.uri, "--out", str(out), "--no-figures"]
    assert report([*argv, "--include-debug", "--tables", "2,3"]) == 0
    notes = (out / "NOTES.md").read_text()
    assert f"parent sweep run {parent} in 'my_fusion-debug'" in notes, notes
    assert "Table 2: no runs with the data it needs in 'my_fusion-debug'" in notes, notes
    assert "'my_fusion'" not in notes and "not logged" not in notes, notes
    logged = {a.path for a in s.client.list_artifacts(parent, "report")}
    assert "report/NOTES.md" in logged and "report/table3_fusion.md" in logged
    assert "MLflow UI, my_fusion-debug:" in capsys.readouterr().out


def test_mixed_configurations_split_into_labelled_rows_never_averaged(mixed):
    frame = runs.load_runs(mixed.uri, "glattn", include_debug=True)
    assert frame["cell"].nunique() == 3  # 64 px original, 32 px original, 32 px gate
    assert set(frame["variant"]) == {
        "dataset.image_size=64, trainer.max_epochs=5",
        "dataset.image_size=32, trainer.max_epochs=1",
    }
    t3 = declared.load().by_number()[3].build(frame, tables.Context())
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
    assert report([*argv, "--no-figures", "--include-debug", "--tables", "3"]) == 0
    used = pd.read_csv(out / "runs_used.csv")
    assert list(used.columns) == selection.USED_COLUMNS
    assert len(used) == 5 and used["cell"].nunique() == 3
    assert sorted(used["seed"]) == [0, 0, 0, 1, 1]
    # default: the debug runs are not in the declared set
    assert report([*argv, "--no-figures"]) == 0
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
    assert '--where "fusion.gate_init=' in text and "glattn report NAME" in text


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
        report(["--help"])
    out = capsys.readouterr().out
    for word in ("glattn claims", "paper", "glattn estimate", "--where", "--include-debug"):
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
    assert report(["glattn", *argv, str(rep / "paper")]) == 0
    assert len(pd.read_csv(rep / "paper" / "runs_used.csv")) == 1
    assert report(["glattn-debug", *argv, str(rep / "debug"), "--include-debug"]) == 0
    used = pd.read_csv(rep / "debug" / "runs_used.csv")
    assert len(used) == 4 and used["cell"].nunique() == 2
    t3 = (rep / "debug" / "table3_fusion.md").read_text()
    assert t3.count("(n=2)") >= 2 and "(n=3)" not in t3


def _with_data(s: Store, rid: str, name: str, root: str, digest: str) -> str:
    """Log the run's data set input as the training job does (name, folder, digest)."""
    from mlflow.data.meta_dataset import MetaDataset
    from mlflow.data.sources import LocalArtifactDatasetSource
    from mlflow.entities import DatasetInput, InputTag

    entity = MetaDataset(LocalArtifactDatasetSource(root), name=name, digest=digest)
    tags = [InputTag("mlflow.data.context", "training")]
    s.client.log_inputs(rid, datasets=[DatasetInput(entity._to_mlflow_entity(), tags=tags)])
    return rid


def _located(out: str, root: str | None = None) -> dict:
    """The params of one run that say where its files went (`python run.py
    paths.output_dir=OUT`): the synthetic set's root, the cache, the tracking store."""
    return {
        "paths.output_dir": out,
        "dataset.root": root or f"{out}/data",
        "dataset.cache_dir": f"{out}/cache",
        "tracking.uri": "sqlite:////shared/mlflow.db",
        "tracking.artifact_location": f"{out}/mlartifacts",
    }


def test_one_configuration_run_from_two_output_folders_is_one_row(tmp_path):
    """`python run.py -m fusion=original,learnable_gate seed=0,1 paths.output_dir=OUT` for
    two OUTs into one store: two configurations, each one row of its latest two runs."""
    s = Store(tmp_path)
    first = []
    for out in ("/work/outA", "/work/outB"):
        for fusion in ("original", "learnable_gate"):
            for seed in (0, 1):
                rid = s.job(
                    "g",
                    seed,
                    {"test/balanced_acc": 0.5 + 0.1 * seed + 0.05 * out.endswith("B")},
                    extra_params={**FULL, **_located(out)},
                    dataset="synthetic",
                    fusion=fusion,
                )
                first += [rid] if out.endswith("A") else []
                _with_data(s, rid, "synthetic", f"{out}/data", "0123456789abcdef")
    notes = []
    frame = runs.load_runs(s.uri, "g", notes=notes)
    assert len(frame) == 4 and frame["cell"].nunique() == 2
    assert set(frame["variant"]) == {""}  # no folder in any label
    assert set(frame["params.paths.output_dir"]) == {"/work/outB"}  # the latest runs
    rerun = next(n for n in notes if "4 FINISHED run(s) repeat a seed" in n)
    assert all(rid in rerun for rid in first)
    out = tmp_path / "report"
    argv = ["g", "--tracking-uri", s.uri, "--out", str(out), "--no-log", "--no-figures"]
    assert report([*argv, "--tables", "3"]) == 0
    used = pd.read_csv(out / "runs_used.csv")
    assert len(used) == 4 and used["cell"].nunique() == 2
    assert "repeat a seed of the same configuration" in (out / "NOTES.md").read_text()
    table = (out / "table3_fusion.md").read_text()
    assert "outA" not in table and "outB" not in table and "Variant" not in table
    assert table.count("(n=2)") == 2 and "(n=4)" not in table


def test_real_data_set_roots_split_cells_only_when_their_data_differ(tmp_path):
    """Two folders holding the same HAM10000 (one digest) are one cell; a folder with
    other data (another digest) is another, labelled by its digest, never by its path."""
    s = Store(tmp_path)
    for root, digest in (("/data/HAM", "aaaa"), ("/mnt/copy/HAM", "aaaa"), ("/data/HAM2", "bbbb")):
        for seed in (0, 1):
            rid = s.job("h", seed, {"test/balanced_acc": 0.5}, extra_params=_located("/o", root))
            _with_data(s, rid, "ham10000", root, digest)
    frame = runs.load_runs(s.uri, "h")
    assert frame["cell"].nunique() == 2 and len(frame) == 4
    assert set(frame["variant"]) == {"data=aaaa", "data=bbbb"}
    # runs that logged no data set input (older runs): the real data set's folder tells
    s2 = Store(tmp_path / "old")
    for root in ("/data/HAM", "/data/HAM2"):
        s2.job("h", 0, {"test/balanced_acc": 0.5}, extra_params=_located("/o", root))
    old = runs.load_runs(s2.uri, "h")
    assert old["cell"].nunique() == 2
    assert set(old["variant"]) == {"data=root /data/HAM", "data=root /data/HAM2"}


def test_an_eval_runs_checkpoint_path_does_not_split_its_cell(tmp_path):
    """Each seed's eval run reads its own training run's checkpoint: one cell, no label."""
    s = Store(tmp_path)
    for seed in (0, 1, 2):
        ckpt = {"ckpt_path": f"/o/checkpoints/fp{seed}/best.pt"}
        s.job("t", seed, {"eval/balanced_acc": 0.5}, task="eval", extra_params=ckpt,
              eval_dataset="isic2018", eval_split="official_test")  # fmt: skip
    frame = runs.load_runs(s.uri, "t")
    assert len(frame) == 3 and frame["cell"].nunique() == 1 and set(frame["variant"]) == {""}


def test_notes_name_the_debug_runs_and_every_experiment_read(mixed, tmp_path):
    smoke = runs.load_runs(mixed.uri, "glattn", include_debug=True)
    smoke = smoke[smoke["params.debug"].astype(str) == "smoke"]
    assert len(smoke) == 4
    out = tmp_path / "r"
    argv = ["glattn", "--tracking-uri", mixed.uri, "--out", str(out), "--no-log", "--no-figures"]
    assert report(argv) == 0
    notes = (out / "NOTES.md").read_text()
    left = next(line for line in notes.splitlines() if "debug-preset runs left out" in line)
    assert all(rid in left for rid in smoke["run_id"]) and "4 in 'glattn" in left
    assert "Experiments the runs come from: glattn (1 runs);" in notes
    assert report([*argv, "--include-debug"]) == 0
    notes = (out / "NOTES.md").read_text()
    used = set(smoke["experiment"]) | {"glattn"}
    line = next(line for line in notes.splitlines() if line.startswith("Experiments the"))
    assert all(f"{name} (" in line for name in used), (line, used)
    included = next(line for line in notes.splitlines() if "debug-preset runs included" in line)
    assert all(rid in included for rid in smoke["run_id"])
