"""The sweep's parent run opens in glattn's sweep callback (``on_multirun_start``), after the
whole grid is admitted, in Hydra's order: the callback before the sweeper exists; the
sweeper then finds the grid admitted and launches; a refused grid leaves no run and no
folder."""

import signal
from pathlib import Path

import mlflow
import pytest
from conftest import CONF_DIR
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

from glattn import cli
from glattn.job import protocol
from glattn.job.lifecycle import JobInterrupted
from glattn.sweep import outcomes
from hydra_plugins.glattn_sweeper import admission, grid
from hydra_plugins.glattn_sweeper.callback import GlattnSweepCallback

pytestmark = pytest.mark.usefixtures("one_thread")


def _multirun_config(tmp_path, **params: str):
    """The launching process's config, as Hydra passes it to on_multirun_start: the grid
    `params` in ``hydra.sweeper.params`` (as an experiment file declares it)."""
    GlobalHydra.instance().clear()
    initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR))
    config = compose(
        "config",
        overrides=["debug=smoke", f"paths.output_dir={tmp_path / 'out'}"],
        return_hydra_config=True,
    )
    config.hydra.sweeper.params = params
    return config


def test_the_parent_run_opens_in_on_multirun_start_and_the_sweeper_finds_the_grid_admitted(
    tmp_path, monkeypatch
):
    monkeypatch.setattr(cli, "_LAUNCHED", True)  # glattn's own task: its grid checked
    config = _multirun_config(tmp_path, seed="0,1")  # (Hydra re-imports its plugins)
    checked = []
    check_grid = grid.check_grid
    monkeypatch.setattr(
        grid,
        "check_grid",
        lambda owner, jobs, s: checked.append(jobs) or check_grid(owner, jobs, s),
    )
    before = signal.getsignal(signal.SIGTERM)
    GlattnSweepCallback().on_multirun_start(config=config)
    try:
        assert [[o for o in job if o.startswith("seed")] for job in checked[0]] == [
            ["seed=0"],
            ["seed=1"],
        ]  # the whole grid, before the parent
        sweep_dir = str(config.hydra.sweep.dir)
        parent = protocol.read_parent_run_id(sweep_dir)
        assert parent is not None
        run = mlflow.MlflowClient(str(config.tracking.uri)).get_run(parent)
        assert run.info.status == "RUNNING" and run.data.tags["glattn.role"] == "sweep"
        # the sweeper (same process, same folder): admitted already, not checked again
        admission.admit(type("Sweeper", (), {"config": config})(), [["seed=0"], ["seed=1"]])
        assert len(checked) == 1
        # until the sweep ends the parent, a stop signal raises (the sweep's stop path, or
        # the exit hook) instead of ending the process with the parent left RUNNING
        with pytest.raises(JobInterrupted):
            signal.getsignal(signal.SIGTERM)(signal.SIGTERM, None)
        outcomes.abort_parent(config, Path(sweep_dir), JobInterrupted())
        assert mlflow.MlflowClient(str(config.tracking.uri)).get_run(parent).info.status == (
            "KILLED"
        )
        assert signal.getsignal(signal.SIGTERM) is before  # ended: the handler from before
    finally:
        outcomes.release_parent(Path(str(config.hydra.sweep.dir)))
        admission.release(config)
    assert not admission.ADMITTED  # the folder's lock is let go when the jobs have ended


def test_a_refused_grid_opens_no_parent_and_leaves_no_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(cli, "_LAUNCHED", True)
    config = _multirun_config(tmp_path, seed="0,1", **{"trainer.amp": "fp17"})
    with pytest.raises(SystemExit) as info:
        GlattnSweepCallback().on_multirun_start(config=config)
    assert "the grid is refused before any run or folder exists" in str(info.value.code)
    assert "trainer.amp='fp17'" in str(info.value.code)
    assert not (tmp_path / "out").exists()  # no sweep folder, no store, no parent run
    assert not admission.ADMITTED


def test_plan_mode_and_other_sweepers_open_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(cli, "_LAUNCHED", True)
    config = _multirun_config(tmp_path, seed="0,1")
    plan = OmegaConf.merge(config, {"sweep": {"plan": True}})
    GlattnSweepCallback().on_multirun_start(config=plan)
    basic = OmegaConf.merge(config, {"hydra": {"sweeper": {"_target_": "x.BasicSweeper"}}})
    GlattnSweepCallback().on_multirun_start(config=basic)
    assert not (tmp_path / "out").exists() and not admission.ADMITTED
