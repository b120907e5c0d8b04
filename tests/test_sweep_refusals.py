"""What the glattn sweeper refuses before it leaves a trace: a grid with a job that a single
run would refuse (checked whole, before any folder, store or parent run), a second launch
into a sweep folder in use, ``hydra.job.chdir=true``; and in another Hydra app: no stray
folder, a failed job's error and a non-zero exit status."""

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import CONF_DIR
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.types import HydraContext
from omegaconf import OmegaConf
from test_sweep_helpers import (
    FAKE_DEFAULTS,
    SWEEP_HOOKS,
    env,
    run_cli,
    sweep_dirs,
    write_fake_app,
)

from glattn import cli

pytestmark = pytest.mark.usefixtures("one_thread")
ROOT = Path(__file__).resolve().parents[1]


def _sweeper(tmp_path, *overrides, task=cli._task):
    """A sweeper-like owner (hydra_context, the multirun config, the task function)."""
    GlobalHydra.instance().clear()
    initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR))
    cfg = compose(
        "config",
        overrides=["debug=smoke", f"paths.output_dir={tmp_path / 'out'}", *overrides],
        return_hydra_config=True,
    )
    ctx = HydraContext(config_loader=GlobalHydra.instance().config_loader(), callbacks=None)
    return SimpleNamespace(hydra_context=ctx, config=cfg, task_function=task)


@pytest.mark.parametrize(
    "override,expected",
    [
        ("+trainer.epochs=3", "trainer.epochs: unknown key (did you mean trainer.max_epochs?"),
        ("trainer.amp=fp17", "trainer.amp='fp17': expected one of"),
        ("task=eval", "not a PyTorch checkpoint"),
    ],
)
def test_a_grid_a_single_run_would_refuse_is_refused_whole_before_any_trace(
    tmp_path, override, expected
):
    from hydra_plugins.glattn_sweeper import grid

    junk = tmp_path / "junk.pt"
    junk.write_bytes(os.urandom(3000))
    sweeper = _sweeper(tmp_path)
    extra = [f"ckpt_path={junk}"] if override == "task=eval" else []
    jobs = [["seed=0", override, *extra], ["seed=1", override, *extra]]
    with pytest.raises(SystemExit) as info:
        grid.check_grid(sweeper, jobs, set())
    message = str(info.value.code)
    assert message.startswith("[glattn sweep] the grid is refused before any run or folder")
    assert "2 of 2 job(s)" in message and "job(s) #0, #1" in message
    assert message.count(expected) == 1  # one error, said once for the jobs it hits
    assert not (tmp_path / "out").exists()


def test_a_good_grid_passes_and_seeds_share_one_model_check(tmp_path, monkeypatch):
    from glattn.job import build
    from hydra_plugins.glattn_sweeper import grid

    calls = []
    check_model = build.check_model
    monkeypatch.setattr(build, "check_model", lambda cfg: calls.append(1) or check_model(cfg))
    sweeper = _sweeper(tmp_path)
    jobs = [[f"seed={s}", f"fusion={f}"] for f in ("original", "weighted_add") for s in (0, 1)]
    grid.check_grid(sweeper, jobs, set())
    assert len(calls) == 2  # one per configuration, not per seed
    bad = [*jobs, ["seed=0", "glsa.num_heads=0"], ["seed=1", "glsa.num_heads=0"]]
    assert list(grid.grid_errors(sweeper, bad).values()) == [[4, 5]]  # composed once
    assert grid.seedless(["seed=2", "fusion=x"]) == ("seed=*", "fusion=x")
    assert grid.seedless(["seed=${x}"]) == ("seed=${x}",)  # not a plain seed: its own check


def test_another_task_function_on_glattn_s_conf_is_not_checked(tmp_path):
    from hydra_plugins.glattn_sweeper import grid

    sweeper = _sweeper(tmp_path, task=lambda cfg: None)
    grid.check_grid(sweeper, [["+fake.sleep=1"]], set())  # its own keys: not refused


def test_hydra_job_chdir_is_refused_in_glattn_s_app():
    from hydra_plugins.glattn_sweeper import guard

    guard.check_chdir(OmegaConf.create({"hydra": {"job": {"chdir": False}}}))
    with pytest.raises(SystemExit) as info:
        guard.check_chdir(OmegaConf.create({"hydra": {"job": {"chdir": True}}}))
    assert "hydra.job.chdir=true" in str(info.value.code)
    assert "Leave hydra.job.chdir=false" in str(info.value.code)


def test_a_sweep_folder_takes_one_launch_at_a_time(tmp_path):
    from hydra_plugins.glattn_sweeper import guard

    lock = guard.hold_sweep_dir(tmp_path)
    with pytest.raises(SystemExit) as info:
        guard.hold_sweep_dir(tmp_path)  # another launch (another open file)
    message = str(info.value.code)
    assert "in use by another launch" in message and f"pid {os.getpid()}@" in message
    lock.release()  # the first launch ends
    guard.hold_sweep_dir(tmp_path).release()


def test_a_config_without_an_output_folder_makes_no_folder(tmp_path, monkeypatch):
    from hydra_plugins.glattn_sweeper import guard

    monkeypatch.chdir(tmp_path)
    guard.check_sweep(OmegaConf.create({"db": {"driver": "mysql"}}))
    assert list(tmp_path.iterdir()) == []


def test_failed_jobs_outside_glattn_s_app_are_said_and_exit_non_zero(capsys):
    from hydra_plugins.glattn_sweeper import guard

    ledger = SimpleNamespace(
        jobs=[
            {"num": 0, "overrides": ["x=1"], "hydra_status": "COMPLETED", "error": None},
            {
                "num": 1,
                "overrides": ["x=2"],
                "hydra_status": "FAILED",
                "error": "ValueError: boom",
                "job_dir": "/s/1",
            },
        ]
    )
    with pytest.raises(SystemExit) as info:
        guard.report_failures(ledger)
    assert info.value.code == 1
    err = capsys.readouterr().err
    assert "1 of 2 job(s) failed" in err and "#1" in err and "error: ValueError: boom" in err
    guard.report_failures(SimpleNamespace(jobs=ledger.jobs[:1]))  # nothing failed: no exit


FOREIGN_APP = """
import hydra

@hydra.main(version_base="1.3", config_path=None, config_name="cfg")
def main(cfg):
    if cfg.x == 2:
        raise ValueError(f"boom in x={cfg.x}")
    return cfg.x

if __name__ == "__main__":
    from hydra.core.config_store import ConfigStore
    ConfigStore.instance().store(name="cfg", node={"x": 0})
    main()
"""


@pytest.mark.slow
def test_the_sweeper_in_another_hydra_app(tmp_path):
    """No paths.output_dir: no stray ``None`` folder; a failed job: its error, exit 1."""
    app = tmp_path / "foreign.py"
    app.write_text(textwrap.dedent(FOREIGN_APP))
    res = subprocess.run(
        [sys.executable, str(app), "-m", "hydra/sweeper=glattn", "x=1,2"],
        cwd=tmp_path,
        env=env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 1, (res.stdout, res.stderr)
    assert "ValueError: boom in x=2" in res.stderr
    assert not (tmp_path / "None").exists()


@pytest.mark.slow
@pytest.mark.parametrize(
    "overrides,expected",
    [
        (["+trainer.epochs=3"], "trainer.epochs: unknown key"),
        (["hydra.job.chdir=true"], "hydra.job.chdir=true"),
    ],
)
def test_a_refused_grid_exits_at_once_and_leaves_no_folder_or_run(tmp_path, overrides, expected):
    out = tmp_path / "out"
    start = time.monotonic()
    res = subprocess.run(
        [sys.executable, str(ROOT / "run.py"), "-m", "seed=0,1", "debug=smoke", *overrides]
        + [f"paths.output_dir={out}"],
        cwd=tmp_path,
        env=env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 1
    assert expected in res.stderr and "Traceback" not in res.stdout + res.stderr
    assert not out.exists()  # no sweep folder, no store, no parent run
    print(f"refused in {time.monotonic() - start:.1f} s (load {os.getloadavg()[0]:.1f})")


@pytest.mark.slow
def test_a_second_launch_into_a_sweep_folder_in_use_is_refused(tmp_path):
    """Two launches, one hydra.sweep.dir: the second is refused in one line, the first's
    summary counts its jobs as done (no status file of its is overwritten)."""
    app = write_fake_app(tmp_path)
    out, sweep = tmp_path / "out", tmp_path / "out" / "sweeps" / "glattn" / "shared"
    args = [*FAKE_DEFAULTS, f"paths.output_dir={out}", f"hydra.sweep.dir={sweep}", "seed=0,1"]
    first = subprocess.Popen(
        [sys.executable, str(app), "-m", *SWEEP_HOOKS, *args, "fake.sleep=15"],
        cwd=tmp_path,
        env=env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not (sweep / "0").exists() and time.monotonic() < deadline:
            time.sleep(0.2)  # the first launch holds the folder once its first job started
        second = run_cli(app, *args, cwd=tmp_path, timeout=300)
        stdout, _ = first.communicate(timeout=300)
    finally:
        first.kill()
    assert second.returncode == 1
    assert "is in use by another launch" in second.stderr
    assert first.returncode == 0
    assert "2 jobs: 2 done, 0 skipped, 0 failed" in stdout
    assert sweep_dirs(out) == [sweep]
