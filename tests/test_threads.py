"""Intra-op thread choice (glattn.runtime.choose_threads): the cores this process may use,
the jobs it shares them with and the load left by others; OMP_NUM_THREADS wins."""

import os

import pytest
import torch

from glattn.runtime import choose_threads, set_threads


@pytest.mark.parametrize(
    "cores, jobs, load, expected",
    [
        (2, 1, 0.2, 2),  # idle 2-core machine: both cores
        (2, 1, 1.0, 1),  # one other busy process: the free core
        (2, 1, 5.5, 1),  # shared, load 4-7: one thread (two would spin against each other)
        (16, 1, 0.0, 16),
        (16, 4, 0.0, 4),  # four jobs at once share the cores
        (16, 4, 8.0, 2),  # ... and what the load leaves free
        (16, 32, 0.0, 1),  # never below one
        (4, 1, 0.4, 4),
    ],
)
def test_threads_from_cores_jobs_and_load(cores, jobs, load, expected):
    threads, why = choose_threads(jobs, cores=cores, load=load, env={})
    assert threads == expected
    assert f"{cores} cores" in why and f"{jobs} job" in why


def test_omp_num_threads_wins():
    assert choose_threads(1, cores=16, load=0.0, env={"OMP_NUM_THREADS": "3"}) == (
        3,
        "OMP_NUM_THREADS",
    )
    assert choose_threads(1, cores=2, load=0.0, env={"OMP_NUM_THREADS": ""})[0] == 2


def test_defaults_read_this_process(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    threads, why = choose_threads()
    assert 1 <= threads <= len(os.sched_getaffinity(0))
    assert f"{len(os.sched_getaffinity(0))} cores allowed" in why


def test_set_threads_applies_the_choice(monkeypatch):
    before = torch.get_num_threads()
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    try:
        assert set_threads() == 1 and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
