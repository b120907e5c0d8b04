"""hydra.launcher.jobs_per_gpu=auto (glattn.sweep.packing): the decision never exceeds the
GPU's memory, says why, falls back to 1 when it cannot know; the sweep-level choice probes
the costliest job (fake GPU probes: no GPU needed) or reads FINISHED runs' peak memory."""

import itertools
from types import SimpleNamespace

import pytest
from conftest import CONF_DIR
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.types import HydraContext
from omegaconf import OmegaConf

from glattn.sweep import packing as P
from glattn.sweep.plan import JobPlan

GIB = 2**30


def test_decide_fits_memory_cpu_and_the_cap_and_names_the_limit():
    h200 = P.GpuMemory(139 * GIB, 139 * GIB)
    d = P.decide(h200, 6 * GIB, cpu_cores=16, gpus=1)
    assert d.jobs_per_gpu == 4 and "limited by at most 4" in d.reason  # 17 fit, 5 by cores
    d = P.decide(P.GpuMemory(24 * GIB, 24 * GIB), 8 * GIB, cpu_cores=64, gpus=1)
    # 0.9 x 24 GiB = 21.6 GiB; (8 + 1) GiB a job: 2 fit
    assert d.jobs_per_gpu == 2 and "limited by memory" in d.reason and "2 fit" in d.reason
    d = P.decide(h200, 2 * GIB, cpu_cores=16, gpus=2)  # 16 // (2 x 3) = 2 by cores
    assert d.jobs_per_gpu == 2 and "limited by CPU cores" in d.reason
    assert d.line().startswith("jobs_per_gpu=auto: 2 job(s) per GPU (")


def test_decide_uses_free_memory_not_total():
    shared = P.GpuMemory(80 * GIB, 20 * GIB)  # another process holds 60 GiB
    d = P.decide(shared, 5 * GIB, cpu_cores=64, gpus=1)
    assert d.jobs_per_gpu == 3  # 0.9 x 20 // 6 = 3, not 0.9 x 80 // 6 = 12
    assert "20.0 GiB free of 80.0 GiB" in d.reason


@pytest.mark.parametrize(
    "memory, peak, gpus, words",
    [
        (None, 4 * GIB, 1, "GPU memory unknown"),
        (P.GpuMemory(80 * GIB, 80 * GIB), None, 1, "no measured peak memory"),
        (P.GpuMemory(80 * GIB, 80 * GIB), 0.0, 1, "no measured peak memory"),
        (P.GpuMemory(80 * GIB, 80 * GIB), 4 * GIB, 0, "no GPU"),
        (P.GpuMemory(16 * GIB, 16 * GIB), 40 * GIB, 1, "one job needs more than"),
    ],
)
def test_decide_falls_back_to_one_and_says_why(memory, peak, gpus, words):
    d = P.decide(memory, peak, cpu_cores=32, gpus=gpus)
    assert d.jobs_per_gpu == 1 and words in d.reason


def test_decide_never_exceeds_the_free_memory():
    for free_gib, peak_gib, cores, gpus in itertools.product(
        (8, 24, 40, 80, 139), (0.5, 1, 3, 7, 20, 60), (2, 8, 16, 128), (1, 2, 4)
    ):
        memory = P.GpuMemory(160 * GIB, free_gib * GIB)
        d = P.decide(memory, peak_gib * GIB, cpu_cores=cores, gpus=gpus)
        assert 1 <= d.jobs_per_gpu <= P.MAX_JOBS
        if d.jobs_per_gpu > 1:  # more than one job only where they all fit
            need = d.jobs_per_gpu * (peak_gib * GIB + P.CUDA_CONTEXT_BYTES)
            assert need <= P.HEADROOM * free_gib * GIB, (free_gib, peak_gib, cores, gpus)


def test_pool_memory_is_the_smallest_free_and_none_if_any_gpu_is_unknown():
    found = {"0": P.GpuMemory(80 * GIB, 70 * GIB), "1": P.GpuMemory(80 * GIB, 30 * GIB)}
    assert P.pool_memory(["0", "1"], found.get).free == 30 * GIB
    assert P.pool_memory(["0", "2"], found.get) is None


def _plan(num, backbone, pflop, epochs=10, batch=32, done=None):
    p = JobPlan(num, [f"backbone={backbone}"], key=(backbone, "synthetic", "train"))
    p.pflop, p.max_epochs, p.batch_size, p.done_run = pflop, epochs, batch, done
    return p


def test_probe_target_is_the_largest_compute_per_epoch_times_batch():
    plans = [
        _plan(0, "resnet18", 10.0),
        _plan(1, "resnet50", 30.0, epochs=100),  # 0.3 per epoch
        _plan(2, "vgg16", 6.0, epochs=5, batch=64),  # 1.2 x 64: the largest
        _plan(3, "resnet152", 1e6, done="run-id"),  # done: not run, not probed
    ]
    assert P.probe_target(plans).num == 2
    assert P.probe_target([_plan(0, "resnet18", None)]) is None


def _finished(backbone, peak_mb):
    return SimpleNamespace(
        data=SimpleNamespace(
            tags={"backbone": backbone, "dataset": "synthetic", "task": "train"},
            metrics={"perf/peak_mem_mb": peak_mb} if peak_mb else {},
        )
    )


def test_stored_peak_needs_every_key_and_takes_the_largest(monkeypatch):
    from glattn.sweep import store

    runs = [_finished("resnet18", 2000.0), _finished("resnet50", 5000.0)]
    runs += [_finished("resnet50", 4000.0), _finished("vgg16", None)]
    monkeypatch.setattr(store, "finished_runs", lambda client: runs)
    plans = [_plan(0, "resnet18", 1.0), _plan(1, "resnet50", 2.0)]
    assert P.stored_peak(plans, object()) == 5000.0 * 2**20 * P.RESERVED_FACTOR
    plans.append(_plan(2, "vgg16", 3.0))  # logged no peak: unknown, so the probe decides
    assert P.stored_peak(plans, object()) is None
    assert P.stored_peak(plans[:2], None) is None


def _plans(owner, jobs):
    from glattn.sweep.plan import build_plan

    return lambda: build_plan(owner, [list(j) for j in jobs])[0]


def _owner(tmp_path, *overrides):
    """A launcher-like owner (hydra_context + the multirun config), as Hydra gives one."""
    GlobalHydra.instance().clear()
    initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR))
    cfg = compose(
        "config",
        overrides=["debug=smoke", f"paths.output_dir={tmp_path}", "tracking=none", *overrides],
        return_hydra_config=True,
    )
    ctx = HydraContext(config_loader=GlobalHydra.instance().config_loader(), callbacks=None)
    return SimpleNamespace(hydra_context=ctx, config=cfg)


def test_choose_probes_the_costliest_job_with_its_config(tmp_path):
    owner = _owner(tmp_path)
    jobs = [["backbone=resnet18"], ["backbone=resnet50", "trainer.batch_size=24"]]
    seen = {}

    def peak_probe(cfg_yaml, gpu):
        seen["cfg"], seen["gpu"] = OmegaConf.load(cfg_yaml), gpu
        return 10 * GIB

    try:
        d = P.choose(
            owner,
            jobs,
            ["3"],
            _plans(owner, jobs),
            memory_probe=lambda gpu: P.GpuMemory(139 * GIB, 139 * GIB),
            peak_probe=peak_probe,
            cpu_cores=9,
        )
    finally:
        GlobalHydra.instance().clear()
    assert seen["gpu"] == "3"  # the probe runs pinned to a GPU of the pool
    assert seen["cfg"].backbone.name == "resnet50" and seen["cfg"].trainer.batch_size == 24
    assert {"optimizer", "dataset", "attention"} <= set(seen["cfg"])
    assert d.jobs_per_gpu == 3 and "limited by CPU cores" in d.reason  # 9 // 3
    assert "probe of job #1" in d.reason


def test_choose_falls_back_to_one_when_a_probe_fails(tmp_path):
    owner = _owner(tmp_path)
    try:
        d = P.choose(
            owner,
            [["seed=0"], ["seed=1"]],
            ["0"],
            _plans(owner, [["seed=0"], ["seed=1"]]),
            memory_probe=lambda gpu: P.GpuMemory(80 * GIB, 80 * GIB),
            peak_probe=lambda cfg_yaml, gpu: None,
        )
        assert d.jobs_per_gpu == 1 and "no measured peak" in d.reason
        d = P.choose(owner, [["seed=0"]], ["0"], list, memory_probe=lambda gpu: None)
        assert d.jobs_per_gpu == 1 and "GPU memory unknown" in d.reason
    finally:
        GlobalHydra.instance().clear()
    assert P.choose(owner, [["seed=0"]], [], list).reason.startswith("no GPU")


def test_probe_trains_the_config_in_a_child_and_reports_no_gpu_memory_on_a_cpu(compose, tmp_path):
    import json
    import subprocess
    import sys

    import torch

    from glattn.sweep.probe import PROBE_KEYS

    if torch.cuda.is_available():
        pytest.skip("on a GPU machine the probe measures the GPU")
    cfg = compose("debug=smoke", "trainer.batch_size=4")
    path = tmp_path / "probe.yaml"
    path.write_text(OmegaConf.to_yaml(OmegaConf.masked_copy(cfg, list(PROBE_KEYS)), resolve=True))
    res = subprocess.run(
        [sys.executable, "-m", "glattn.sweep.probe", str(path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    found = json.loads(res.stdout.strip().splitlines()[-1])
    assert found == {"reserved": None, "allocated": None, "device": "cpu"}


def test_launcher_accepts_auto_and_refuses_other_words():
    from hydra_plugins.glattn_local_gpus.local_gpus_launcher import LocalGpusLauncher

    assert LocalGpusLauncher(gpus=["0", "1"]).slots() == ["0", "1"]  # auto: 1 until decided
    assert LocalGpusLauncher(gpus=["0"], jobs_per_gpu=2).slots() == ["0", "0"]
    with pytest.raises(ValueError, match="jobs_per_gpu='many': expected an integer >= 1 or auto"):
        LocalGpusLauncher(jobs_per_gpu="many")


# ----------------------------------------------------------------------------- time
def test_speedup_interpolates_the_measured_table_and_holds_beyond_it():
    table = {2: 3.0, 4: 3.6}
    assert P.speedup(1, table) == 1.0  # one job alone is 1x by definition
    assert P.speedup(3, table) == pytest.approx(3.3)
    assert P.speedup(8, table) == 3.6
    assert P.speedup(4) == P.MEASURED_SPEEDUP[4]
    with pytest.raises(ValueError, match="expected at least 1"):
        P.speedup(0, table)


@pytest.mark.parametrize(
    "seconds, gpus, k, gain, wall",
    [
        ([10.0] * 6, 1, 1, 1.0, 60.0),  # one at a time: the sum
        ([10.0] * 6, 2, 1, 1.0, 30.0),  # two GPUs: half
        ([10.0] * 6, 1, 2, 3.0, 20.0),  # 2 jobs at 3x together: each 10 x 2 / 3, 3 rounds
        ([10.0] * 6, 1, 3, 3.0, 20.0),  # 3 jobs at 3x: each takes 10 s, 2 rounds
        ([30.0, 10.0, 10.0, 10.0], 2, 1, 1.0, 30.0),  # costliest first: 30 | 10+10+10
    ],
)
def test_packed_wall_time_arithmetic(seconds, gpus, k, gain, wall):
    assert P.packed_wall_s(seconds, gpus, k, gain) == pytest.approx(wall)


def test_estimate_hours_on_the_users_gpus_with_packing():
    import pandas as pd

    from glattn.sweep.estimate import EXPERIMENTS_DIR, estimate, job_grid, train_images

    path = EXPERIMENTS_DIR / "table3_fusion.yaml"
    jobs, epochs = job_grid(path)
    measured = pd.DataFrame(
        [
            {"backbone": b, "attention": a, "img_s": 700.0}
            for b in {j["backbone"] for j in jobs}
            for a in {j["attention"] for j in jobs}
        ]
    )
    alone_h = epochs * train_images("ham10000") / 700.0 / 3600  # every job: same model rate
    one = estimate(measured, [path]).iloc[0]
    assert one.jobs == len(jobs) and one.jobs_without_measurement == 0
    assert one.hours_upper_bound == pytest.approx(len(jobs) * alone_h)
    assert one.wall_hours == pytest.approx(one.hours_upper_bound)  # 1 GPU, 1 job: the sum
    packed = estimate(measured, [path], gpus=2, jobs_per_gpu=4, gain=3.6).iloc[0]
    rounds = -(-len(jobs) // 8)  # 8 slots
    assert packed.wall_hours == pytest.approx(rounds * alone_h * 4 / 3.6)
    assert packed.hours_upper_bound == one.hours_upper_bound  # the alone figure stays


def test_estimate_auto_packing_from_the_measured_peak_memory():
    from types import SimpleNamespace

    import pandas as pd

    from glattn.sweep.estimate import jobs_per_gpu_for

    frame = pd.DataFrame({"metrics.perf/peak_mem_mb": [3000.0, 9000.0, None]})
    args = SimpleNamespace(jobs_per_gpu="auto", gpu_memory_gib=24.0, cpu_cores=64, gpus=1)
    d = jobs_per_gpu_for(args, frame)
    # 9000 MB x 1.25 reserved = 11 GiB + 1 GiB context a job; 0.9 x 24 GiB: 1 fits
    assert d.jobs_per_gpu == 1 and "perf/peak_mem_mb" in d.reason
    args.gpu_memory_gib = 139.0
    assert jobs_per_gpu_for(args, frame).jobs_per_gpu == 4
    assert jobs_per_gpu_for(args, pd.DataFrame()).reason.startswith("no measured peak")
    args.jobs_per_gpu = "3"
    assert jobs_per_gpu_for(args, frame) == P.Decision(3, "as given")


# ----------------------------------------------------------------------------- plan mode
def _timed(num, est_s, done=None):
    p = _plan(num, "resnet18", 1.0, done=done)
    p.est_s = est_s
    return p


def _launcher(**kw):
    node = {"_target_": "x.LocalGpusLauncher", "gpus": ["0", "1"], "jobs_per_gpu": "auto", **kw}
    return OmegaConf.create({"hydra": {"launcher": node}})


def test_plan_line_predicts_the_wall_time_on_the_gpus_with_packing(monkeypatch):
    from glattn.sweep import store

    monkeypatch.setattr(store, "finished_runs", lambda client: [_finished("resnet18", 4000.0)])
    plans = [_timed(i, 3600.0) for i in range(8)] + [_timed(8, None, done="run")]
    probe = {"0": P.GpuMemory(80 * GIB, 80 * GIB), "1": P.GpuMemory(80 * GIB, 80 * GIB)}.get
    line = P.plan_line(plans, _launcher(), object(), probe, cpu_cores=64)
    # 4000 MB x 1.25 + 1 GiB a job: 4 per GPU (the cap); 8 slots, 1 h x 4 / 3.73 each
    assert "jobs_per_gpu=auto: 4 job(s) per GPU" in line
    assert "predicted wall time on 2 GPU(s): 64.3m" in line  # 3600 x 4 / 3.73 = 3861 s
    fixed = P.plan_line(plans, _launcher(jobs_per_gpu=1), None, probe)
    assert "1 job(s) per GPU (as configured)" in fixed and "4.0h" in fixed  # 8 h on 2 GPUs
    unknown = P.plan_line(plans, _launcher(), None, probe, cpu_cores=64)
    assert "1 job(s) per GPU" in unknown and "the launch probes the costliest job" in unknown


def test_plan_line_only_for_local_gpus_on_gpus():
    plans = [_timed(0, 10.0)]
    assert P.plan_line(plans, _launcher(gpus=[])) is None  # CPU: the makespan line covers it
    slurm = OmegaConf.create({"hydra": {"launcher": {"_target_": "x.Slurm"}}})
    assert P.plan_line(plans, slurm) is None
    assert P.plan_line(plans, OmegaConf.create({})) is None
    line = P.plan_line([_timed(0, None)], _launcher(jobs_per_gpu=2), None, lambda g: None)
    assert line.endswith("? (not every job has a time)")


def test_a_fused_job_counts_the_memory_of_all_its_members(tmp_path):
    """sweep.fuse_seeds: one job holds 3 members' models and activations at once."""
    owner = _owner(tmp_path)
    plain = [["backbone=resnet18", "seed=0"]]
    fused = [["backbone=resnet18", "seed=0", "sweep.fused_seeds=[0,1,2]"]]
    decisions = {}
    try:
        for name, jobs in (("plain", plain), ("fused", fused)):
            decisions[name] = P.choose(
                owner,
                jobs,
                ["0"],
                _plans(owner, jobs),
                memory_probe=lambda gpu: P.GpuMemory(139 * GIB, 139 * GIB),
                peak_probe=lambda cfg_yaml, gpu: 30 * GIB,
                cpu_cores=64,
            )
    finally:
        GlobalHydra.instance().clear()
    assert P.fused_members(fused) == 3 and P.fused_members(plain) == 1
    assert "x 3 fused members" in decisions["fused"].reason
    assert decisions["fused"].jobs_per_gpu < decisions["plain"].jobs_per_gpu
