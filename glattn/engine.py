"""One epoch of training and one pass of evaluation (the loop's two steps).

Mixed precision follows the PyTorch AMP recipe (https://pytorch.org/docs/stable/amp.html):
bf16 autocast needs no loss scaling; fp16 on CUDA uses a ``torch.amp.GradScaler``.
"""

from __future__ import annotations

import logging
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from glattn.data.transforms import normalize
from glattn.metrics import compute_metrics

log = logging.getLogger(__name__)


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or inf; the run stops and is marked FAILED."""


@dataclass
class Runtime:
    """How tensors are run: device, autocast dtype, scaler, memory format, clipping."""

    device: torch.device
    amp_dtype: torch.dtype | None = None
    scaler: torch.amp.GradScaler | None = None
    channels_last: bool = False
    grad_clip: float | None = None
    log_every_n_steps: int = 20
    progress: bool = field(default_factory=lambda: sys.stderr.isatty())

    def autocast(self):
        return torch.autocast(
            self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None
        )

    def to_device(self, images: torch.Tensor, labels: torch.Tensor):
        fmt = torch.channels_last if self.channels_last else torch.contiguous_format
        # uint8 batches travel to the device and are normalised there (glattn.data.transforms)
        images = normalize(images.to(self.device, non_blocking=True, memory_format=fmt))
        return images, labels.to(self.device, non_blocking=True)


def _batches(loader, desc: str, rt: Runtime):
    """Iterate a loader with a tqdm bar on a terminal, else plain DEBUG/INFO lines."""
    total = len(loader) if hasattr(loader, "__len__") else None
    if rt.progress:
        try:
            from tqdm.auto import tqdm

            yield from tqdm(loader, desc=desc, total=total, leave=False, dynamic_ncols=True)
            return
        except ImportError:  # tqdm is optional
            pass
    for step, batch in enumerate(loader, 1):
        if step % max(rt.log_every_n_steps, 1) == 0 or step == total:
            log.debug("%s step %d/%s", desc, step, total)
        yield batch


def train_one_epoch(
    model: nn.Module, loader, loss_fn: nn.Module, optimizer, rt: Runtime, epoch: int
) -> dict:
    """Train for one epoch; returns {"loss", "acc", "img_s"} (means over samples)."""
    model.train()
    total_loss, correct, seen = 0.0, 0, 0
    start = time.perf_counter()
    for step, (images, labels) in enumerate(_batches(loader, f"epoch {epoch} train", rt), 1):
        images, labels = rt.to_device(images, labels)
        with rt.autocast():
            logits = model(images)  # (B, num_classes)
            loss = loss_fn(logits, labels)
        if not torch.isfinite(loss):
            lrs = [g["lr"] for g in optimizer.param_groups]
            raise NonFiniteLossError(
                f"non-finite training loss ({loss.item()}) at epoch {epoch}, step {step}, "
                f"lr={lrs}: lower optimizer.lr, set trainer.grad_clip, try trainer.amp=none, "
                "or check the input data for NaNs"
            )
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
        total_loss += loss.item() * n
        correct += (logits.argmax(1) == labels).sum().item()
        seen += n
    elapsed = time.perf_counter() - start
    if seen == 0:
        raise RuntimeError("the training loader yielded no batches (empty train split?)")
    return {"loss": total_loss / seen, "acc": correct / seen, "img_s": seen / elapsed}


@torch.no_grad()
def evaluate(
    model: nn.Module, loader, loss_fn: nn.Module, rt: Runtime, class_names: Sequence[str]
) -> dict:
    """Loss, metrics (glattn.metrics.compute_metrics) plus ``probs`` (N, C) and ``labels``."""
    model.eval()
    total_loss, probs, labels_all = 0.0, [], []
    for images, labels in _batches(loader, "eval", rt):
        images, labels = rt.to_device(images, labels)
        with rt.autocast():
            logits = model(images)
        logits = logits.float()
        total_loss += loss_fn(logits, labels).item() * labels.shape[0]
        probs.append(logits.softmax(1).cpu())
        labels_all.append(labels.cpu())
    if not probs:
        raise RuntimeError("the evaluation loader yielded no batches (empty split?)")
    probs_np = torch.cat(probs).numpy().astype(np.float64)
    labels_np = torch.cat(labels_all).numpy()
    out = compute_metrics(labels_np, probs_np, class_names)
    loss = total_loss / len(labels_np)
    out.update(loss=loss if math.isfinite(loss) else float("nan"))
    out.update(probs=probs_np, labels=labels_np)
    return out
