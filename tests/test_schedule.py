"""Costliest jobs first (glattn.sweep.schedule): LPT order and makespan arithmetic on fake
costs, plan-mode costs, the configured slots, and the local_gpus launcher's start order."""

import io
import itertools
import random
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest
from omegaconf import OmegaConf

from glattn.sweep import lpt
from glattn.sweep import schedule as S
from glattn.sweep.plan import JobPlan


def test_lpt_order_largest_first_ties_and_unknown_keep_their_order():
    assert S.lpt_order([2, 3, 7, 5, 4]) == [2, 3, 4, 1, 0]
    assert S.lpt_order([1, 5, 1, 5]) == [1, 3, 0, 2]  # stable for ties
    assert S.lpt_order([None, 1.0, None, 2.0]) == [3, 1, 0, 2]
    assert S.lpt_order([]) == []


@pytest.mark.parametrize(
    "costs, slots, given, lpt",
    [
        # given: 2|3, 7 -> slot 0 (2+7=9), 5 -> slot 1 (3+5=8), 4 -> slot 1 (12)
        # LPT:   7|5, 4 -> slot 1 (9), 3 -> slot 0 (10), 2 -> slot 1 (11)
        ([2, 3, 7, 5, 4], 2, 12, 11),
        ([1, 1, 1, 1, 4], 2, 6, 4),  # the long job last runs alone at the end
        ([3, 1, 2], 5, 3, 3),  # more slots than jobs: the longest job
        ([3, 1, 2], 1, 6, 6),  # one slot: the sum, whatever the order
        ([], 4, 0, 0),
    ],
)
def test_makespan_arithmetic(costs, slots, given, lpt):
    assert S.makespan(costs, slots) == given
    assert S.makespan(costs, slots, S.lpt_order(costs)) == lpt


def _optimum(costs, m):
    best = float("inf")
    for assign in itertools.product(range(m), repeat=len(costs)):
        loads = [0.0] * m
        for c, slot in zip(costs, assign):
            loads[slot] += c
        best = min(best, max(loads))
    return best


def test_lpt_within_grahams_bound_of_the_optimum():
    rng = random.Random(0)
    for _ in range(60):
        m = rng.randint(2, 3)
        costs = [rng.uniform(0.1, 10) for _ in range(rng.randint(2, 7))]
        got, best = S.makespan(costs, m, S.lpt_order(costs)), _optimum(costs, m)
        assert best - 1e-9 <= got <= (4 / 3 - 1 / (3 * m)) * best + 1e-9
    with pytest.raises(ValueError, match="slots"):
        S.makespan([1], 0)


def _plan(num, est=None, pflop=None, done=None, error=None):
    return JobPlan(num, [f"seed={num}"], est_s=est, pflop=pflop, done_run=done, error=error)


def test_plan_costs_time_when_every_job_has_it_else_compute():
    timed = [_plan(0, 10, 1.0), _plan(1, 30, 2.0), _plan(2, done="r1"), _plan(3, error="x")]
    assert S.plan_costs(timed) == ([10.0, 30.0, 0.0, 0.0], "s")
    mixed = [_plan(0, 10, 1.0), _plan(1, None, 2.0)]
    assert S.plan_costs(mixed) == ([1.0, 2.0], "PFLOP")


def test_format_makespan_line():
    line = S.format_makespan([1, 1, 1, 1, 4], "PFLOP", 2)
    assert "makespan on 2 slot(s)" in line and "4 PFLOP vs 6 PFLOP" in line
    assert "0.67x" in line and "8 PFLOP" in line
    assert "?" in S.format_makespan([1, None], "s", 2)


def test_configured_slots_from_the_launcher_config():
    def cfg(launcher):
        return OmegaConf.create({"hydra": {"launcher": launcher}})

    local = "hydra_plugins.glattn_local_gpus.local_gpus_launcher.LocalGpusLauncher"
    assert S.configured_slots(cfg({"_target_": local, "gpus": [0, 1], "jobs_per_gpu": 2})) == 4
    assert S.configured_slots(cfg({"_target_": local, "gpus": [], "n_jobs": 3})) == 3
    assert S.configured_slots(cfg({"_target_": "x.Slurm", "array_parallelism": 32})) == 32
    assert S.configured_slots(cfg({"_target_": "hydra._internal.BasicLauncher"})) == 1
    assert S.configured_slots(OmegaConf.create({})) == 1


def test_lpt_jobs_falls_back_to_the_given_order(caplog):
    broken = SimpleNamespace(hydra_context=None, config=None)
    assert lpt.lpt_jobs(broken, [["a=1"], ["a=2"]]) == [0, 1]
    assert "given order" in caplog.text


class _Proc:
    def __init__(self, args, **kw):
        self.returncode = 0
        self.stdin = io.BytesIO()  # the launcher writes the job's pickle here

    def poll(self):
        return 0


def test_local_gpus_starts_costliest_first_and_keeps_job_numbers(tmp_path, monkeypatch):
    from hydra_plugins.glattn_local_gpus import local_gpus_launcher as L

    costs = {"a=small": 1.0, "a=big": 9.0, "a=mid": 4.0}
    monkeypatch.setattr(
        lpt, "lpt_jobs", lambda owner, jobs: S.lpt_order([costs[j[0]] for j in jobs])
    )
    started = []

    def popen(args, **kw):
        started.append(int(Path(args[-2]).name))  # [..., "_worker", job_dir, result_fd]
        return _Proc(args)

    monkeypatch.setattr(subprocess, "Popen", popen)
    config = OmegaConf.create(
        {"hydra": {"sweep": {"dir": str(tmp_path)}, "hydra_logging": None, "verbose": False}}
    )
    jobs = [["a=small"], ["a=big"], ["a=mid"]]
    for order, expected in (("lpt", [11, 12, 10]), ("given", [10, 11, 12])):
        started.clear()
        launcher = L.LocalGpusLauncher(gpus=[], n_jobs=1, poll_s=0.0, order=order)
        launcher.setup(hydra_context=object(), task_function=print, config=config)
        results = launcher.launch(jobs, initial_job_idx=10)
        assert started == expected
        assert [r.overrides for r in results] == jobs  # results stay in the grid's order
    with pytest.raises(ValueError, match="order"):
        L.LocalGpusLauncher(order="random")


def test_sweeper_batches_in_lpt_order_only_for_pools_that_do_not_order_themselves(monkeypatch):
    costs = {"a=small": 1.0, "a=big": 9.0, "a=mid": 4.0}
    monkeypatch.setattr(
        lpt, "lpt_jobs", lambda owner, jobs: S.lpt_order([costs[j[0]] for j in jobs])
    )
    batches = [[["a=small"], ["a=big"]], [["a=mid"]]]

    def sweeper(launcher, parallel):
        hydra = {"launcher": {"_target_": "x.Slurm", "array_parallelism": parallel}}
        return SimpleNamespace(launcher=launcher, config=OmegaConf.create({"hydra": hydra}))

    slurm = SimpleNamespace()
    assert lpt.lpt_batches(sweeper(slurm, 4), batches, 2) == [
        [["a=big"], ["a=mid"]],
        [["a=small"]],
    ]
    assert lpt.lpt_batches(sweeper(slurm, 4), batches, None) == [
        [["a=big"], ["a=mid"], ["a=small"]]
    ]
    assert lpt.lpt_batches(sweeper(slurm, 1), batches, 2) == batches  # one slot: same makespan
    local = SimpleNamespace(order="lpt")  # local_gpus orders its own jobs, numbers unchanged
    assert lpt.lpt_batches(sweeper(local, 4), batches, 2) == batches


def test_makespan_line_for_plan_rows_on_the_configured_slots():
    config = OmegaConf.create({"hydra": {"launcher": {"_target_": "x.S", "array_parallelism": 2}}})
    plans = [_plan(0, 100, 1.0), _plan(1, 100, 1.0), _plan(2, 400, 4.0), _plan(3, done="r")]
    line = S.makespan_line(plans, config)  # given: 100|100, 400 -> 500; LPT: 400|100+100
    assert "on 2 slot(s)" in line and "6.7m vs 8.3m" in line and "0.80x" in line
