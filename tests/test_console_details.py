"""The console shows a job's details (class balance, model table) once per sweep; every job's
log files keep them (glattn.logging_utils.OncePerSweep)."""

from __future__ import annotations

import io
import logging

import pytest

from glattn.logging_utils import DETAIL, DETAILS_SHOWN, setup_logging


@pytest.fixture
def hydra_like_root():
    """Root handlers as Hydra's job_logging makes them for each job: a console stream and
    the job's ``<name>.log`` file; the test's own handlers are put back afterwards."""
    root, glattn = logging.getLogger(), logging.getLogger("glattn")
    saved = root.handlers[:], root.level, glattn.handlers[:], glattn.propagate, glattn.level

    def job(run_dir):
        for handler in root.handlers[:]:
            root.removeHandler(handler)
        console = logging.StreamHandler(io.StringIO())
        log_file = logging.FileHandler(run_dir / "glattn.log")
        for handler in (console, log_file):
            handler.setLevel(logging.INFO)
            root.addHandler(handler)
        root.setLevel(logging.INFO)
        return console.stream, run_dir / "glattn.log"

    yield job
    for handler in root.handlers[:]:
        root.removeHandler(handler)
        handler.close()
    for handler in glattn.handlers[:]:
        glattn.removeHandler(handler)
        handler.close()
    root.handlers[:], root.level = saved[0], saved[1]
    glattn.handlers[:], glattn.propagate, glattn.level = saved[2], saved[3], saved[4]


def _job(job, run_dir, sweep_dir):
    run_dir.mkdir(parents=True)
    console, log_file = job(run_dir)
    setup_logging(run_dir, sweep_dir)
    log = logging.getLogger("glattn.job.build")
    log.info("class balance train (150 images): mel 16", extra=DETAIL)
    log.info("epoch 1/1 done")
    return console.getvalue(), log_file.read_text(), (run_dir / "debug.log").read_text()


def test_a_sweep_prints_the_details_once_and_every_job_logs_them(hydra_like_root, tmp_path):
    sweep = tmp_path / "sweep"
    outputs = [_job(hydra_like_root, sweep / str(n), sweep) for n in range(3)]
    shown = [console.count("class balance") for console, _, _ in outputs]
    assert shown == [1, 0, 0]
    assert all("epoch 1/1 done" in console for console, _, _ in outputs)
    for _, log_file, debug_log in outputs:  # the job's own logs keep them
        assert "class balance" in log_file and "class balance" in debug_log
    assert (sweep / DETAILS_SHOWN).is_file()


def test_a_single_run_prints_its_details(hydra_like_root, tmp_path):
    console, _, _ = _job(hydra_like_root, tmp_path / "run", None)
    assert "class balance" in console
    console, _, _ = _job(hydra_like_root, tmp_path / "again", None)
    assert "class balance" in console
