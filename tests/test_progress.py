"""Progress of the training loop (glattn.logging_utils.StepProgress through glattn.engine):
a bar with loss, lr and img/s on a terminal, the same as plain lines elsewhere, and output
on a narrow or size-less pseudo-terminal (python's pty module, a real child process)."""

from __future__ import annotations

import fcntl
import logging
import os
import pty
import struct
import subprocess
import sys
import termios

import pytest

from glattn.logging_utils import MIN_BAR_COLUMNS, StepProgress, bar_columns

CHILD = r"""
import fcntl, struct, sys, termios
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from glattn.engine import train_one_epoch
from glattn.logging_utils import setup_logging
from glattn.runtime import Runtime

setup_logging(None)
torch.manual_seed(0)
data = TensorDataset(torch.randn(48, 3, 4, 4), torch.arange(48) % 7)
model = nn.Sequential(nn.Flatten(), nn.Linear(48, 7))
opt = torch.optim.SGD(model.parameters(), lr=0.0125)
for cols in map(int, sys.argv[1:]):
    fcntl.ioctl(2, termios.TIOCSWINSZ, struct.pack("HHHH", 24 if cols else 0, cols, 0, 0))
    print(f"=== {cols}", file=sys.stderr, flush=True)
    rt = Runtime(torch.device("cpu"), log_every_n_steps=2)  # progress: stderr is a terminal
    train_one_epoch(model, DataLoader(data, batch_size=8), nn.CrossEntropyLoss(), opt, rt, 1)
print("=== end", file=sys.stderr, flush=True)
"""


def run_on_pty(*columns: int) -> dict[int, str]:
    """The child's terminal output per terminal width (0: a pty nobody gave a size)."""
    master, slave = pty.openpty()
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    env["OMP_NUM_THREADS"] = "1"
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, *map(str, columns)],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=env,
        close_fds=True,
    )
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed its side
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    assert proc.wait(timeout=120) == 0, b"".join(chunks).decode(errors="replace")[-3000:]
    text = b"".join(chunks).decode(errors="replace")
    parts = text.split("=== ")[1:]
    return {int(p.split(None, 1)[0]): p for p in parts if not p.startswith("end")}


@pytest.mark.usefixtures("one_thread")
def test_bar_on_a_terminal_lines_on_narrow_and_sizeless_ones():
    out = run_on_pty(100, 0, 20)
    bar = out[100]
    assert "%|" in bar  # a tqdm bar
    for field in ("train/loss", "lr 1.25e-02", "img/s"):
        assert field in bar
    for cols in (0, 20):  # no bar there (tqdm prints nothing at width 0): plain lines
        lines = [line for line in out[cols].splitlines() if "epoch 1 step " in line]
        assert len(lines) == 3, out[cols]  # 6 steps, one line every 2
        assert "epoch 1 step 2/6 ( 33%)" in lines[0]
        for field in ("train/loss", "lr 1.25e-02", "img/s", "ETA 0:00:0"):
            assert all(field in line for line in lines), lines
        assert "%|" not in out[cols]


def test_bar_columns(monkeypatch):
    master, slave = pty.openpty()
    try:
        with open(slave, "w", closefd=False) as term:
            monkeypatch.delenv("COLUMNS", raising=False)
            assert bar_columns(term) == 0  # a fresh pty has no size
            monkeypatch.setenv("COLUMNS", "120")
            assert bar_columns(term) == 120  # no size: COLUMNS decides
            fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 30, 0, 0))
            assert bar_columns(term) == 0  # narrower than MIN_BAR_COLUMNS: lines
            fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 81, 0, 0))
            assert bar_columns(term) == 81  # the size wins over COLUMNS
    finally:
        os.close(master)
        os.close(slave)
    assert MIN_BAR_COLUMNS > 30


def test_plain_lines_carry_loss_lr_speed_and_eta(caplog):
    log = logging.getLogger("glattn.test.progress")
    progress = StepProgress("epoch 3", 4, bar=False, logger=log)
    with caplog.at_level(logging.INFO, logger="glattn.test.progress"):
        progress.step(16)
        progress.report(1.23456, 0.001)
        progress.step(16)
        progress.report()  # evaluation: no loss, no lr
    first, second = (r.getMessage() for r in caplog.records)
    assert first.startswith("epoch 3 step 1/4 ( 25%)  train/loss 1.2346  lr 1.00e-03  ")
    assert " img/s  ETA " in first
    assert second.startswith("epoch 3 step 2/4 ( 50%)  ") and "loss" not in second
    unknown = StepProgress("eval", None, logger=log)
    unknown.step(4)
    with caplog.at_level(logging.INFO, logger="glattn.test.progress"):
        unknown.report()
    assert caplog.records[-1].getMessage().startswith("eval step 1/?  ")


def test_run_eta_after_each_epoch():
    from glattn.job.trainer import run_eta

    # epoch 1 warms up (20 s); later epochs take 10 s: 8 epochs left -> 80 s
    text = run_eta([20.0, 10.0], 2, 10, bad_epochs=0, patience=None)
    assert text == "run ETA 0:01:20 (8 of 10 epochs left, 10.0 s an epoch)"
    text = run_eta([20.0, 10.0], 2, 10, bad_epochs=1, patience=3)
    assert text.startswith("run ETA 0:01:20 (8 of 10 epochs left, 10.0 s an epoch; ")
    assert "early stopping would end it after epoch 4, in 0:00:20" in text
    assert "early" not in run_eta([5.0], 1, 3, bad_epochs=0, patience=10)  # patience > left
    assert run_eta([5.0, 5.0, 5.0], 3, 3, bad_epochs=0, patience=None) is None  # the last
