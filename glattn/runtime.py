"""How one job runs its tensors: the `Runtime` (device, autocast dtype, GradScaler, memory
format, clipping, device augmentation), built from ``cfg.trainer`` by `make_runtime`, plus
seeding and the global RNG state a checkpoint carries for an exact resume.

Mixed precision follows the PyTorch AMP recipe (https://pytorch.org/docs/stable/amp.html):
bf16 autocast needs no loss scaling; fp16 on CUDA uses a ``torch.amp.GradScaler``.
"""

from __future__ import annotations

import os
import random
import sys
from dataclasses import dataclass, field

import numpy as np
import torch
from omegaconf import DictConfig

from glattn.data.transforms import normalize


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
    #: training augmentation applied on the device (glattn.data.augment.DeviceAugment, with
    #: state_dict/load_state_dict) to the train loader's raw uint8 batches; None: the loader
    #: already augmented them (dataset.augment=cpu)
    augment: object | None = None

    def autocast(self):
        return torch.autocast(
            self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None
        )

    def to_device(self, images: torch.Tensor, labels: torch.Tensor, augment=None):
        """uint8 batches travel to the device (4x less than float32) and are normalised there
        (glattn.data.transforms), or augmented and normalised there by `augment`."""
        fmt = torch.channels_last if self.channels_last else torch.contiguous_format
        images = images.to(self.device, non_blocking=True)
        images = normalize(images) if augment is None else augment(images)
        return images.contiguous(memory_format=fmt), labels.to(self.device, non_blocking=True)


def seed_everything(seed: int, deterministic: bool) -> None:
    """Seed python, numpy and torch; ``deterministic``: deterministic kernels (CUDA needs
    CUBLAS_WORKSPACE_CONFIG, https://pytorch.org/docs/stable/notes/randomness.html)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
    else:
        torch.use_deterministic_algorithms(False)
        torch.backends.cudnn.benchmark = torch.cuda.is_available()


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; a CUDA device without CUDA is refused."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"trainer.device={name!r}: CUDA is not available on this machine")
    return device


def make_runtime(trainer: DictConfig) -> Runtime:
    """Device, AMP dtype (+GradScaler for fp16 on CUDA), channels_last, clipping."""
    device = resolve_device(str(trainer.device))
    amp = str(trainer.amp).lower()
    dtype = None
    if amp == "auto":
        if device.type == "cuda":
            dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    elif amp == "bf16":
        dtype = torch.bfloat16
    elif amp == "fp16":
        if device.type != "cuda":
            raise ValueError("trainer.amp=fp16 needs CUDA (GradScaler); use bf16 or none")
        dtype = torch.float16
    scaler = torch.amp.GradScaler("cuda") if dtype == torch.float16 else None
    channels_last = trainer.channels_last
    if str(channels_last) == "auto":
        channels_last = device.type == "cuda"
    return Runtime(
        device=device,
        amp_dtype=dtype,
        scaler=scaler,
        channels_last=bool(channels_last),
        grad_clip=trainer.grad_clip,
        log_every_n_steps=int(trainer.log_every_n_steps),
    )


def rng_state() -> dict:
    """The global RNG streams (torch, CUDA, numpy, python) as tensors and plain values, so
    that a ``weights_only=True`` checkpoint can hold them (exact resume)."""
    np_state = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
        "python": random.getstate(),
    }


def set_rng_state(state: dict) -> None:
    """Restore the streams `rng_state` saved."""
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    name, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
