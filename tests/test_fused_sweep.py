"""``sweep.fuse_seeds=true`` on the sweep side: which jobs fuse, the fused
job's overrides, its members back as the unfused jobs, and the sweep's count of jobs."""

import pytest
from omegaconf import OmegaConf

from glattn.job.protocol import fused_seeds, member_overrides
from glattn.sweep.expand import batches
from glattn.sweep.fuse import fuse_seed_jobs, members
from glattn.sweep.progress import grid_size

GRID = [
    ["fusion=original", "seed=0"],
    ["fusion=original", "seed=1"],
    ["fusion=gated", "seed=0"],
    ["fusion=original", "seed=2"],
    ["fusion=gated", "seed=1"],
    ["fusion=alone", "seed=0"],
]


def test_jobs_that_differ_only_in_seed_fuse_at_their_first_place():
    fused = fuse_seed_jobs(GRID)
    assert fused == [
        ["fusion=original", "seed=0", "sweep.fused_seeds=[0,1,2]"],
        ["fusion=gated", "seed=0", "sweep.fused_seeds=[0,1]"],
        ["fusion=alone", "seed=0"],  # one seed: an ordinary job
    ]
    assert fused_seeds(fused[0]) == [0, 1, 2] and fused_seeds(fused[2]) is None


def test_members_are_the_unfused_jobs_in_their_order():
    fused = fuse_seed_jobs(GRID)
    back = [m for job in fused for m in members(job)]
    assert sorted(map(tuple, back)) == sorted(map(tuple, GRID))
    assert members(fused[0]) == [["fusion=original", f"seed={s}"] for s in (0, 1, 2)]


def test_seed_item_keeps_its_place_and_prefix_forms_are_seen():
    job = ["seed=0", "+tags=[a]", "sweep.fused_seeds=[0,4]", "lr=1", "sweep.fuse_seeds=true"]
    assert member_overrides(job, 4) == ["seed=4", "+tags=[a]", "lr=1"]
    assert fused_seeds(["+sweep.fused_seeds=[3, 5]"]) == [3, 5]


def test_repeated_or_missing_seeds_stay_unfused():
    same = [["a=1", "seed=0"], ["a=1", "seed=0"]]
    assert fuse_seed_jobs(same) == same
    none = [["a=1"], ["a=2"]]
    assert fuse_seed_jobs(none) == none


def test_batches_as_hydra_batches_a_sweep():
    jobs = [[str(i)] for i in range(5)]
    assert batches(jobs, 2) == [jobs[0:2], jobs[2:4], jobs[4:5]]
    assert batches(jobs, None) == batches(jobs, -1) == [jobs]
    with pytest.raises(ValueError, match="max_batch_size=0"):
        batches(jobs, 0)


def test_a_grid_is_hydras_cartesian_product_in_its_order():
    from hydra.errors import HydraException

    from glattn.sweep import expand

    args = expand.arguments({"fusion": "a,b", "seed": "range(0,2)"}, ["lr=0.1", "seed=5,6"])
    assert expand.jobs(args) == [
        ["fusion=a", "seed=5", "lr=0.1"],
        ["fusion=a", "seed=6", "lr=0.1"],
        ["fusion=b", "seed=5", "lr=0.1"],
        ["fusion=b", "seed=6", "lr=0.1"],
    ]  # the command line's seed replaces the file's, in the file's place
    assert expand.jobs(["+x=choice(1,2)"]) == [["+x=1"], ["+x=2"]]
    with pytest.raises(HydraException, match="lr: a grid takes a list"):
        expand.jobs(["lr=interval(0,1)"])
    assert expand.values("choice(a, b)") == ["a", "b"]
    assert expand.values("range(1,7,3)") == ["1", "4"]
    assert expand.values(["x", 2]) == ["x", "2"]
    assert expand.values("glob(*)") == []


def test_grid_size_counts_fused_jobs(tmp_path):
    cfg = {
        "sweep": {"fuse_seeds": True},
        "hydra": {"overrides": {"task": ["fusion=original,gated", "seed=0,1,2"]}},
    }
    OmegaConf.save(OmegaConf.create(cfg), tmp_path / "multirun.yaml")
    assert grid_size(tmp_path) == 2
    cfg["sweep"]["fuse_seeds"] = False
    OmegaConf.save(OmegaConf.create(cfg), tmp_path / "multirun.yaml")
    assert grid_size(tmp_path) == 6


def test_plan_mode_says_how_many_jobs_run_fused(tmp_path):
    from test_sweep_helpers import ROOT, run_cli

    grid = ["fusion=original,learnable_gate", "seed=0,1,2", "residual=original,drop_path"]
    done = run_cli(
        ROOT / "run.py", *grid, "sweep.plan=true", "sweep.fuse_seeds=true",
        f"paths.output_dir={tmp_path}", cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "sweep.fuse_seeds: the 12 jobs run as 4 (seeds fused)" in done.stdout
