"""Phase timers (glattn.phases): time/* metrics from a fake clock, each job's own start (a
process started for the job counts from glattn's import, a later job from its own start),
and two real jobs in one process."""

import subprocess
import sys

import pytest

from glattn import phases
from glattn.phases import PhaseTimer


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


def test_a_process_started_for_the_job_counts_from_the_import_later_jobs_from_their_start(
    monkeypatch,
):
    monkeypatch.setattr(phases, "_jobs", 0)
    monkeypatch.setattr(phases, "_origin", None)
    assert phases.job_origin() == phases.IMPORTED_AT
    assert phases.job_started(owns_process=True) == phases.IMPORTED_AT
    second = phases.job_started(owns_process=True)  # the basic launcher's next job
    assert second > phases.IMPORTED_AT and phases.job_origin() == second
    monkeypatch.setattr(phases, "_jobs", 0)
    shared = phases.job_started(owns_process=False)  # the sweep's own process, a notebook
    assert shared > second
    timer = PhaseTimer()
    assert 0 <= timer.metrics()["time/wall_s"] < 5


def test_what_ran_before_glattn_was_imported_is_not_the_jobs():
    """``sleep 3 && glattn`` as one process: the sleep (pip in a shell chain, a scheduler's
    prologue) is not the job's start-up."""
    code = (
        "import time; time.sleep(3); import glattn.phases as p; p.job_started(True); "
        "print(p.PhaseTimer().metrics()['time/wall_s'])"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert 0 <= float(done.stdout) < 3


@pytest.mark.slow  # two real smoke runs; the timers themselves are tested on a fake clock above
def test_two_jobs_in_one_process_each_log_their_own_phases(tmp_path):
    """The train task logs time/* (startup, epochs, final evaluation, Grad-CAM, after
    training, fixed cost) into its MLflow run, consistent with each other; the second job
    of a process (Hydra's basic launcher) counts from its own start, not the process's."""
    import time

    from conftest import smoke_cfg, store_client

    from glattn.job import main

    main(smoke_cfg(tmp_path, hydra=True))
    time.sleep(2.0)  # between the jobs: neither job's time
    start = time.perf_counter()
    main(smoke_cfg(tmp_path, "seed=1", hydra=True))
    took = time.perf_counter() - start
    client = store_client(tmp_path)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    (run,) = [r for r in runs if r.data.tags.get("seed") == "1"]
    m = run.data.metrics
    for name in ("startup", "epochs", "final", "gradcam", "after_train", "fixed"):
        assert m[f"time/{name}_s"] >= 0, name
    assert m["time/gradcam_s"] <= m["time/final_s"] <= m["time/after_train_s"]
    assert m["time/startup_s"] + m["time/epochs_s"] <= m["time/wall_s"] <= took
