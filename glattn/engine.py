"""One epoch of training and one pass of evaluation (the loop's two steps).

Mixed precision follows the PyTorch AMP recipe (https://pytorch.org/docs/stable/amp.html):
bf16 autocast needs no loss scaling; fp16 on CUDA uses a ``torch.amp.GradScaler``.

No host synchronisation per step: on a GPU every ``.item()`` waits for the queued kernels,
which costs most on the grid's small, fast models. The loss sum, the correct count and a
non-finite flag accumulate on the device; the host reads them every
``trainer.log_every_n_steps`` steps and at the end of the epoch, so the non-finite-loss guard
still raises before the loop saves a checkpoint, and names the first bad step (from the
per-step losses kept on the device since the last check).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from glattn.errors import UserError
from glattn.logging_utils import StepProgress
from glattn.metrics import compute_metrics
from glattn.runtime import Runtime

log = logging.getLogger(__name__)


class NonFiniteLossError(UserError, RuntimeError):
    """The training loss became NaN or inf; the run stops and is marked FAILED."""


def _progress(loader, desc: str, rt: Runtime, level: int) -> StepProgress:
    """The loop's progress: a bar on a wide-enough terminal, else lines (glattn.logging_utils)."""
    total = len(loader) if hasattr(loader, "__len__") else None
    return StepProgress(desc, total, bar=rt.progress, logger=log, level=level)


class _Guard:
    """The non-finite-loss guard without a per-step sync: per-step losses stay on the
    device until `check()` reads one flag; then the first bad step is found among them."""

    def __init__(self, device: torch.device, epoch: int):
        self.epoch, self.bad = epoch, torch.zeros((), dtype=torch.bool, device=device)
        self.losses: list[torch.Tensor] = []
        self.first_step = 1

    def add(self, loss: torch.Tensor) -> None:
        self.losses.append(loss)
        self.bad |= ~torch.isfinite(loss)

    def check(self, optimizer) -> None:
        if self.bad.item():  # the one sync, every log_every_n_steps steps
            losses = torch.stack(self.losses).float().cpu()
            k = int((~torch.isfinite(losses)).nonzero()[0, 0])
            lrs = [g["lr"] for g in optimizer.param_groups]
            raise NonFiniteLossError(
                f"non-finite training loss ({losses[k].item()}) at epoch {self.epoch}, step "
                f"{self.first_step + k}, lr={lrs}: lower optimizer.lr, set trainer.grad_clip, "
                "try trainer.amp=none, or check the input data for NaNs"
            )
        self.first_step += len(self.losses)
        self.losses.clear()


def train_one_epoch(
    model: nn.Module, loader, loss_fn: nn.Module, optimizer, rt: Runtime, epoch: int
) -> dict:
    """Train for one epoch; returns {"loss", "acc", "img_s"} (means over samples).
    Raises NonFiniteLossError (epoch, step) before returning when a loss was NaN or inf."""
    model.train()
    total_loss = torch.zeros((), dtype=torch.float64, device=rt.device)
    correct = torch.zeros((), dtype=torch.int64, device=rt.device)
    guard, seen, every = _Guard(rt.device, epoch), 0, max(rt.log_every_n_steps, 1)
    progress = _progress(loader, f"epoch {epoch}", rt, logging.INFO)
    start = time.perf_counter()
    for step, (images, labels) in enumerate(loader, 1):
        images, labels = rt.to_device(images, labels, rt.augment)
        with rt.autocast():
            logits = model(images)  # (B, num_classes)
            loss = loss_fn(logits, labels)
        guard.add(loss.detach())
        optimizer.zero_grad(set_to_none=True)
        if rt.scaler is not None:
            rt.scaler.scale(loss).backward()
            if rt.grad_clip:
                rt.scaler.unscale_(optimizer)
                nn.utils.clip_grad_norm_(model.parameters(), rt.grad_clip)
            rt.scaler.step(optimizer)
            rt.scaler.update()
        else:
            loss.backward()
            if rt.grad_clip:
                nn.utils.clip_grad_norm_(model.parameters(), rt.grad_clip)
            optimizer.step()
        n = labels.shape[0]
        total_loss += loss.detach().double() * n
        correct += (logits.detach().argmax(1) == labels).sum()
        seen += n
        progress.step(n)
        if step % every == 0:
            guard.check(optimizer)  # the loop's one sync: the running loss costs no other
            progress.report(total_loss.item() / seen, optimizer.param_groups[0]["lr"])
    progress.close()
    guard.check(optimizer)
    elapsed = time.perf_counter() - start  # after the last read: the device work is done
    if seen == 0:
        raise RuntimeError("the training loader yielded no batches (empty train split?)")
    return {
        "loss": total_loss.item() / seen,
        "acc": correct.item() / seen,
        "img_s": seen / elapsed,
    }


@torch.no_grad()
def evaluate(
    model: nn.Module, loader, loss_fn: nn.Module, rt: Runtime, class_names: Sequence[str]
) -> dict:
    """Loss, metrics (glattn.metrics.compute_metrics) plus ``probs`` (N, C) and ``labels``."""
    model.eval()
    total_loss = torch.zeros((), dtype=torch.float64, device=rt.device)
    probs, labels_all = [], []
    progress, every = _progress(loader, "eval", rt, logging.DEBUG), max(rt.log_every_n_steps, 1)
    for step, (images, labels) in enumerate(loader, 1):
        progress.step(labels.shape[0])
        if step % every == 0:
            progress.report()
        images, labels = rt.to_device(images, labels)
        with rt.autocast():
            logits = model(images)
        logits = logits.float()
        total_loss += loss_fn(logits, labels).double() * labels.shape[0]
        probs.append(logits.softmax(1))  # stays on the device: one copy at the end
        labels_all.append(labels)
    progress.close()
    if not probs:
        raise RuntimeError("the evaluation loader yielded no batches (empty split?)")
    probs_np = torch.cat(probs).cpu().numpy().astype(np.float64)
    labels_np = torch.cat(labels_all).cpu().numpy()
    out = compute_metrics(labels_np, probs_np, class_names)
    loss = total_loss.item() / len(labels_np)
    out.update(loss=loss if math.isfinite(loss) else float("nan"))
    out.update(probs=probs_np, labels=labels_np)
    return out
