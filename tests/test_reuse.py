"""A training FINISHED in another experiment of the store is reused, and the record says so
(docs/resume-and-reuse.md): the new run names its source in tags and description, logs
no throughput, timing or memory of its own, status.json says ``reused``; every run names the
code that made it, and a user's component changed since is announced on reuse and skip and
flagged by the report. Sweeps (slow tier): ``reused`` counted apart in the summary and
summary.json, fused jobs of reused members train nothing, every job of a grid carries the
sweep's membership tag."""

import json
import logging
import shutil
import subprocess
import sys

import pandas as pd
import pytest
from conftest import ROOT, smoke_cfg, store_client

from glattn.job import main
from glattn.report import provenance as report_provenance
from glattn.report.runs import load_runs
from glattn.report.tables_eval import MEASURED
from glattn.tracking.provenance import (
    CODE_TAG_PREFIX,
    DIRTY_TAG,
    NOTE_TAG,
    REUSED_FROM_EXPERIMENT_TAG,
    REUSED_FROM_TAG,
    SOURCE_CODE_DIFFERS_TAG,
    SWEEP_MEMBER_VALUE,
    VERSION_TAG,
    code_difference,
    sweep_filter,
    sweep_member_tag,
)

pytestmark = pytest.mark.usefixtures("one_thread")
SMALL = ["trainer.batch_size=8", "dataset.image_size=32", "trainer.gradcam_per_class=0"]
MEASURED_PREFIXES = ("perf/", "time/")


def _run(out, experiment):
    client = store_client(out)
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id], "tags.`glattn.role` = 'job'")
    assert len(runs) == 1, [r.info.run_name for r in runs]
    return runs[0]


@pytest.fixture(scope="module")
def own(tmp_path_factory):
    """A smoke training with a user's fusion (examples/extending, importable from outside
    the package) FINISHED in experiment ``src``; its module forgotten afterwards."""
    base = tmp_path_factory.mktemp("reuse")
    folder = base / "mine"
    shutil.copytree(ROOT / "examples" / "extending", folder)
    sys.modules.pop("my_fusions", None)  # another test's copy of the example, if imported
    sys.path.insert(0, str(folder))
    out = base / "out"
    args = [f"hydra.searchpath=[file://{folder / 'my_conf'}]", "fusion=gated_conv", *SMALL]

    def cfg(*more):
        return smoke_cfg(out, *args, *more, hydra=True)

    metrics = main(cfg("tracking.experiment=src"))
    yield out, folder, cfg, metrics, _run(out, "src-debug")
    sys.path.remove(str(folder))
    sys.modules.pop("my_fusions", None)


def test_every_run_names_the_code_that_made_it(own):
    out, folder, cfg, metrics, source = own
    tags = source.data.tags
    assert tags[VERSION_TAG] == "0.1.0" and tags[DIRTY_TAG] in ("true", "false", "unknown")
    code = {k: v for k, v in tags.items() if k.startswith(CODE_TAG_PREFIX)}
    assert list(code) == [f"{CODE_TAG_PREFIX}my_fusions"]  # glattn's own and torch's: none
    assert len(code[f"{CODE_TAG_PREFIX}my_fusions"]) == 12


def test_a_config_finished_elsewhere_is_reused_named_and_not_timed(own, caplog):
    out, folder, cfg, metrics, source = own
    with caplog.at_level(logging.INFO):
        again = main(cfg("tracking.experiment=again"))
    new = _run(out, "again-debug")
    assert new.info.status == "FINISHED" and new.info.run_id != source.info.run_id
    said = [r.getMessage() for r in caplog.records if "reused, not trained" in r.getMessage()]
    assert said == [
        "reused, not trained: this configuration FINISHED as experiment src-debug, run "
        f"{source.info.run_name} ({source.info.run_id})"
    ]
    assert not [r for r in caplog.records if "different code" in r.getMessage()]
    tags = new.data.tags
    assert tags[REUSED_FROM_TAG] == source.info.run_id
    assert tags[REUSED_FROM_EXPERIMENT_TAG] == "src-debug"
    assert (
        tags[NOTE_TAG].startswith("Reused, not trained") and source.info.run_id in tags[NOTE_TAG]
    )
    assert SOURCE_CODE_DIFFERS_TAG not in tags
    # the source's measurements are its own: none copied, none measured by the reuse
    assert [k for k in new.data.metrics if k.startswith(MEASURED_PREFIXES)] == []
    assert [k for k in again if k.startswith(MEASURED_PREFIXES)] == []
    assert any(k.startswith("perf/") for k in source.data.metrics)
    client = store_client(out)
    assert [m.step for m in client.get_metric_history(new.info.run_id, "val/balanced_acc")] == [1]
    assert client.get_metric_history(new.info.run_id, "time/epoch_s") == []
    for key in ("best/val/balanced_acc", "test/balanced_acc", "best_epoch"):
        assert again[key] == metrics[key] == new.data.metrics[key]
    status = json.loads((out / "runs" / tags["fingerprint"] / "status.json").read_text())
    assert status["status"] == "reused" and status["run_id"] == new.info.run_id
    assert status["source"] == {
        "run_id": source.info.run_id,
        "experiment": "src-debug",
        "run_name": source.info.run_name,
    }
    log = (out / "runs" / tags["fingerprint"] / "training_log.csv").read_text()
    assert "time/epoch_s" not in log and "perf/train_img_s" not in log and "val/auc" in log


def test_a_changed_user_component_is_announced_on_reuse_and_skip_and_the_report_flags_it(
    own, caplog
):
    out, folder, cfg, metrics, source = own
    module = folder / "my_fusions.py"
    module.write_text(module.read_text() + "\n# a fix\n")
    with caplog.at_level(logging.INFO):
        main(cfg("tracking.experiment=changed"))
    (line,) = [r.getMessage() for r in caplog.records if "different code" in r.getMessage()]
    assert f"run {source.info.run_name} ({source.info.run_id})" in line
    assert "module my_fusions " in line and "sweep.rerun=true" in line
    new = _run(out, "changed-debug")
    assert new.data.tags[REUSED_FROM_TAG] == source.info.run_id
    assert new.data.tags[SOURCE_CODE_DIFFERS_TAG].startswith("module my_fusions ")
    assert (
        new.data.tags[f"{CODE_TAG_PREFIX}my_fusions"]
        != (source.data.tags[f"{CODE_TAG_PREFIX}my_fusions"])
    )
    caplog.clear()
    with caplog.at_level(logging.INFO):  # the FINISHED run of its own experiment: skipped
        main(cfg("tracking.experiment=src"))
    (skip,) = [r.getMessage() for r in caplog.records if "different code" in r.getMessage()]
    assert skip.startswith(f"the FINISHED {source.info.run_name} was made by different code")
    frame = load_runs(f"sqlite:///{out}/mlflow.db", "changed-debug", include_debug=True)
    notes = report_provenance.notes({"changed-debug": frame})
    assert any(n.startswith("reused, not trained: changed-debug/") for n in notes), notes
    (flag,) = [n for n in notes if n.startswith("different code in one cell")]
    assert "module my_fusions" in flag and new.info.run_name in flag


def _frame(**tags_by_run) -> pd.DataFrame:
    rows = []
    for name, tags in tags_by_run.items():
        row = {"run_id": f"id_{name}", "run_name": name, "cell": "c1"}
        row.update({f"tags.{k}": v for k, v in tags.items()})
        rows.append(row)
    return pd.DataFrame(rows)


def test_the_report_flags_a_cell_of_runs_from_different_code_and_only_that():
    same = {VERSION_TAG: "0.1.0", "git_commit": "abc", DIRTY_TAG: "false"}
    frame = _frame(s0=same, s1={**same, f"{CODE_TAG_PREFIX}my_fusions": "x"})
    (flag,) = report_provenance.notes({"e": frame})
    assert flag.startswith("different code in one cell (e, cell c1: s0, s1): ")
    assert "module my_fusions none -> x" in flag
    assert report_provenance.notes({"e": _frame(s0=same, s1=same)}) == []
    # a run from before code tags is compared on its commit only
    assert code_difference(same, {"git_commit": "abc"}) == []
    assert code_difference(same, {"git_commit": "def"}) == ["glattn commit def -> abc"]


def test_table6_takes_a_reused_runs_measurements_from_its_source():
    frame = _frame(s0={REUSED_FROM_TAG: "src0"}, s1={})
    frame["metrics.perf/train_img_s"] = [float("nan"), 50.0]

    def history(run_ids, key):
        assert run_ids == ["src0"] and key in MEASURED
        return {"src0": {1: 10.0, 2: 20.0}} if key == "perf/train_img_s" else {}

    out = report_provenance.measured_by_source(frame, MEASURED, history)
    assert list(out["metrics.perf/train_img_s"]) == [20.0, 50.0]  # the source's last epoch
    assert list(out[report_provenance.MEASURED_BY]) == ["src0", "id_s1"]


def test_the_sweep_view_filter_names_the_membership_tag():
    assert sweep_member_tag("p1") == "glattn.sweep.p1"
    assert sweep_filter("p1") == f"tags.`glattn.sweep.p1` = '{SWEEP_MEMBER_VALUE}'"


@pytest.mark.slow  # 4 smoke sweeps + a single run: ~14 min on 2 busy cores (load 12)
def test_sweeps_count_reused_jobs_tag_their_source_and_every_grid_member(tmp_path):
    from test_sweep_helpers import PY, env, explain, run_cli

    grid = ["seed=0,1", "debug=smoke", "trainer.max_epochs=1", *SMALL]
    grid += [f"paths.output_dir={tmp_path}"]

    def sweep(experiment, *more):
        done = run_cli(
            ROOT / "run.py", *grid, f"tracking.experiment={experiment}", *more, cwd=ROOT
        )
        assert done.returncode == 0, explain(done, tmp_path)
        return done.stdout + done.stderr

    assert "2 jobs: 2 done, 0 skipped, 0 failed" in sweep("probeC")
    client = store_client(tmp_path)

    def job_runs(experiment):
        exp = client.get_experiment_by_name(f"{experiment}-debug")
        found = client.search_runs([exp.experiment_id])
        parents = [r for r in found if r.data.tags.get("glattn.role") == "sweep"]
        return {
            r.data.tags["seed"]: r for r in found if r.data.tags.get("glattn.role") == "job"
        }, [p.info.run_id for p in parents]

    trained, _ = job_runs("probeC")
    said = sweep("probeE")
    assert "2 jobs: 0 done, 2 reused, 0 skipped, 0 failed" in said
    assert f"reused from: experiment probeC-debug, run {trained['0'].info.run_name}" in said
    (summary,) = tmp_path.glob("sweeps/probeE/*/summary.json")
    counts = {k: len(v) for k, v in json.loads(summary.read_text()).items()}
    assert counts == {"finished": 0, "reused": 2, "skipped": 0, "failed": 0}
    reused, (parent,) = job_runs("probeE")
    for seed, run in reused.items():
        assert run.data.tags[REUSED_FROM_TAG] == trained[seed].info.run_id
        assert run.data.tags[sweep_member_tag(parent)] == SWEEP_MEMBER_VALUE
        assert not [k for k in run.data.metrics if k.startswith(MEASURED_PREFIXES)]
    said = sweep("probeD", "sweep.fuse_seeds=true")
    assert "1 jobs: 0 done, 1 reused, 0 skipped, 0 failed" in said
    assert "nothing to train" in said and "train as one stacked model" not in said
    fused, (parent,) = job_runs("probeD")
    assert sorted(fused) == ["0", "1"]
    for seed, run in fused.items():
        assert run.data.tags[REUSED_FROM_TAG] == trained[seed].info.run_id
        assert run.data.tags[sweep_member_tag(parent)] == SWEEP_MEMBER_VALUE
    # a job FINISHED by a single run earlier is skipped by the sweep and still in its view
    single = [PY, str(ROOT / "run.py"), "seed=0", *grid[1:], "tracking.experiment=probeF"]
    one = subprocess.run(single, cwd=ROOT, env=env(), capture_output=True, text=True)
    assert one.returncode == 0, explain(one, tmp_path)
    said = sweep("probeF")
    assert "2 jobs: 0 done, 1 reused, 1 skipped, 0 failed" in said
    runs, (parent,) = job_runs("probeF")
    members = client.search_runs(
        [client.get_experiment_by_name("probeF-debug").experiment_id], sweep_filter(parent)
    )
    assert sorted(r.data.tags["seed"] for r in members) == ["0", "1"]
