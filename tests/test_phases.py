"""Phase timers (glattn.phases): time/* metrics from a fake clock, the process's own start."""

import subprocess
import sys

import pytest

from glattn.phases import PhaseTimer, process_age_s


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_phases_startup_after_train_fixed_and_wall_from_a_fake_clock():
    clock = Clock()
    timer = PhaseTimer(clock, age_s=2.0)  # the process started 2 s before the timer
    clock.now += 3.0  # config, data, model
    timer.on_fit_start(None)
    for _ in range(2):  # as the trainer calls its callbacks; a later epoch does not move
        timer.on_epoch_start(None)  # the end of start-up
        clock.now += 10.0
        timer.on_epoch_end(None, {})
    for name, cost in (("final_eval", 1.0), ("gradcam", 0.5), ("final_eval", 1.0)):
        with timer.phase(name):
            clock.now += cost
    clock.now += 0.25  # artifacts not timed as a phase still count after training
    m = timer.metrics()
    assert m["time/startup_s"] == pytest.approx(5.0)
    assert m["time/epochs_s"] == pytest.approx(20.0)
    assert m["time/final_eval_s"] == pytest.approx(2.0)  # timed twice: summed
    assert m["time/gradcam_s"] == pytest.approx(0.5)
    assert m["time/after_train_s"] == pytest.approx(2.75)
    assert m["time/fixed_s"] == pytest.approx(7.75)
    assert m["time/wall_s"] == pytest.approx(27.75)
    assert timer.summary().startswith("wall 27.8s, epochs 20.0s, fixed 7.8s")


def test_a_phase_that_raises_is_still_timed_and_no_epoch_means_no_startup():
    clock = Clock()
    timer = PhaseTimer(clock, age_s=0.0)
    with pytest.raises(RuntimeError), timer.phase("gradcam"):
        clock.now += 4.0
        raise RuntimeError("figure failed")
    m = timer.metrics()
    assert m["time/gradcam_s"] == 4.0
    assert "time/startup_s" not in m and "time/fixed_s" not in m


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc is Linux's")
def test_process_age_counts_from_the_process_start():
    code = "import time; time.sleep(1.2); from glattn.phases import process_age_s as a; print(a())"
    age = float(
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout
    )
    assert 1.2 <= age < 30
    assert process_age_s() > 0


@pytest.mark.slow  # a real smoke run; the timers themselves are tested on a fake clock above
def test_a_smoke_run_logs_its_phases(tmp_path):
    """The train task logs time/* (startup, epochs, final evaluation, Grad-CAM, after
    training, fixed cost) into its MLflow run, consistent with each other."""
    from conftest import smoke_cfg, store_client

    from glattn.job import main

    main(smoke_cfg(tmp_path, hydra=True))
    client = store_client(tmp_path)
    (run,) = client.search_runs([e.experiment_id for e in client.search_experiments()])
    m = run.data.metrics
    for name in ("startup", "epochs", "final", "gradcam", "after_train", "fixed"):
        assert m[f"time/{name}_s"] >= 0, name
    assert m["time/gradcam_s"] <= m["time/final_s"] <= m["time/after_train_s"]
    assert m["time/fixed_s"] == pytest.approx(m["time/startup_s"] + m["time/after_train_s"])
    assert m["time/epochs_s"] >= m["time/train_total_s"] * 0.99  # + checkpoint, logging
