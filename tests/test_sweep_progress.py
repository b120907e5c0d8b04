"""A sweep's ``job k/N`` and grid ETA (glattn.sweep.progress), from a sweep folder laid out
as Hydra and glattn's jobs leave it."""

import os

from omegaconf import OmegaConf

from glattn.job.protocol import write_status
from glattn.sweep.progress import GridProgress, grid_progress, grid_size


def sweep_folder(tmp_path, done_s=(30.0, 50.0), launcher=None):
    """multirun.yaml of `glattn -m fusion=a,b,c seed=0,1` with an experiment's sweeper
    param (residual: 2 options) -> 12 jobs; `done_s`: the jobs finished, their seconds."""
    cfg = {
        "hydra": {
            "sweep": {"dir": str(tmp_path)},
            "sweeper": {"params": {"residual": "original,progressive"}},
            "overrides": {"task": ["fusion=a,b,c", "seed=0,1", "trainer.max_epochs=2"]},
            "launcher": launcher or {"_target_": "hydra._internal.BasicLauncher"},
            "job": {"num": len(done_s) - 1},
            "mode": "MULTIRUN",
        }
    }
    OmegaConf.save(OmegaConf.create(cfg), tmp_path / "multirun.yaml")
    for num, seconds in enumerate(done_s):
        job = tmp_path / str(num)
        (job / ".hydra").mkdir(parents=True)
        (job / ".hydra" / "config.yaml").write_text("a: 1\n")
        status = write_status(job, "finished")
        os.utime(job / ".hydra" / "config.yaml", (1000.0, 1000.0))
        os.utime(status, (1000.0 + seconds, 1000.0 + seconds))
    (tmp_path / "2" / ".hydra").mkdir(parents=True)  # started, not done
    (tmp_path / "2" / ".hydra" / "config.yaml").write_text("a: 1\n")
    return OmegaConf.create(cfg)


def test_grid_size_as_hydra_counts_it(tmp_path):
    sweep_folder(tmp_path)
    assert grid_size(tmp_path) == 3 * 2 * 2
    assert grid_size(tmp_path / "nowhere") is None


def test_job_k_of_n_and_grid_eta(tmp_path):
    config = sweep_folder(tmp_path)
    progress = grid_progress(config)
    assert (progress.done, progress.total, progress.job_s, progress.slots) == (
        2,
        12,
        [30.0, 50.0],
        1,
    )
    line = progress.line(1)
    assert line.startswith("[glattn sweep] job 2/12 done (#1, 50.0 s); grid ETA 0:06:40 ")
    assert "(10 jobs left, 40.0 s a job on average, 1 at once)" in line


def test_eta_counts_jobs_at_once(tmp_path):
    launcher = {"_target_": "x.SlurmLauncher", "array_parallelism": 4}
    progress = grid_progress(sweep_folder(tmp_path, launcher=launcher))
    assert progress.slots == 4
    assert "grid ETA 0:02:00 (10 jobs left" in progress.line()  # 3 rounds of 4 x 40 s


def test_last_job_and_unknown_grid():
    assert GridProgress(12, 12, [1.0] * 12, 1).line(11).endswith("; grid complete")
    assert GridProgress(3, None, [1.0], 1).line() == "[glattn sweep] job 3/? done"
