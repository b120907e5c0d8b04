"""Pinned fingerprints: restructuring the job code must not change which
checkpoint folder, MLflow run and skip decision a config maps to. The literals below were
computed on the tree before the job package existed; a change here orphans every finished
run of every sweep, so update them only for a deliberate, documented fingerprint change."""

from conftest import compose_cfg

from glattn.config import config_fingerprint

DEFAULT = "0880b4dd08b2"  # python run.py
TABLE3_FIRST = "f05109669240"  # python run.py -m experiment=table3_fusion, its first job
TABLE3_FIRST_JOB = ("fusion=original", "dataset=ham10000", "seed=0")


def test_default_config_fingerprint_is_unchanged():
    assert config_fingerprint(compose_cfg()) == DEFAULT


def test_experiment_job_fingerprint_is_unchanged(tmp_path):
    job = compose_cfg("experiment=table3_fusion", *TABLE3_FIRST_JOB)
    assert config_fingerprint(job) == TABLE3_FIRST
    # as a Hydra job composes it (hydra node present) under another output directory
    elsewhere = compose_cfg(
        "experiment=table3_fusion",
        *TABLE3_FIRST_JOB,
        f"paths.output_dir={tmp_path}",
        return_hydra_config=True,
    )
    assert config_fingerprint(elsewhere) == TABLE3_FIRST


def test_first_job_is_the_sweeps_first_grid_point():
    """TABLE3_FIRST_JOB is what the experiment's grid expands to first (so the pin is a
    real sweep job, not a hand-picked override list)."""
    from glattn.sweep import expand

    cfg = compose_cfg("experiment=table3_fusion", return_hydra_config=True)
    jobs = expand.jobs(expand.arguments(cfg.hydra.sweeper.params))
    assert tuple(jobs[0]) == TABLE3_FIRST_JOB
