"""How one job runs its tensors: the `Runtime` (device, autocast dtype, GradScaler, memory
format, clipping, device augmentation), built from ``cfg.trainer`` by `make_runtime`, plus
seeding, the global RNG state a checkpoint carries for an exact resume, and the number of
intra-op threads (`choose_threads`).

Mixed precision follows the PyTorch AMP recipe (https://pytorch.org/docs/stable/amp.html):
bf16 autocast needs no loss scaling; fp16 on CUDA uses a ``torch.amp.GradScaler``.
"""

from __future__ import annotations

import logging
import os
import random
import sys
from dataclasses import dataclass, field

import numpy as np
import torch
from omegaconf import DictConfig

from glattn.data.transforms import normalize

log = logging.getLogger(__name__)


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


def choose_threads(
    jobs: int = 1, cores: int | None = None, load: float | None = None, env=None
) -> tuple[int, str]:
    """Intra-op threads for one of ``jobs`` processes running at once, and why.

    ``OMP_NUM_THREADS`` when set (the user's, or a launcher's: local_gpus sets it per job).
    Else the cores this process may use (``os.sched_getaffinity``: a SLURM allocation, a
    taskset) shared among the jobs, and no more than the cores the others leave free (the
    1-minute load average): on a busy machine OpenMP threads that outnumber the free cores
    spin against each other (measured on 2 cores at load 4-7: ~10x slower per step with two
    threads than with one; benchmarks/threads.py)."""
    env = os.environ if env is None else env
    given = str(env.get("OMP_NUM_THREADS", "")).strip()
    if given.isdigit() and int(given) > 0:
        return int(given), "OMP_NUM_THREADS"
    cores = cores or len(os.sched_getaffinity(0))
    load = os.getloadavg()[0] if load is None else load
    share = max(1, cores // max(jobs, 1))
    free = max(cores - load, 0.0) / max(jobs, 1)
    threads = max(1, min(share, round(free)))
    return threads, f"{cores} cores allowed, {jobs} job(s) at once, load average {load:.1f}"


def set_threads(jobs: int = 1) -> int:
    """Apply `choose_threads` to torch (``torch.set_num_threads``) and log the choice."""
    threads, why = choose_threads(jobs)
    if threads != torch.get_num_threads():
        torch.set_num_threads(threads)
    log.info("intra-op threads: %d (%s)", threads, why)
    return threads


def make_runtime(trainer: DictConfig) -> Runtime:
    """Device, AMP dtype (+GradScaler for fp16 on CUDA), channels_last, clipping; sets the
    process's intra-op threads (`set_threads`)."""
    set_threads()
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
