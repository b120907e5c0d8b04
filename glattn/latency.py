"""A dedicated inference latency and memory measurement of a trained model (Table 6).

Not the training epochs' timings, which share the machine with data loading, the optimizer
and whatever else runs: a fixed input, ``warmup`` untimed forward passes, then
``torch.utils.benchmark.Timer(...).blocked_autorange`` for at least ``min_run_time_s``
seconds: blocks of forward passes (as many per block as make the timer's own cost
negligible: one for any model slower than ~10 ms; the Timer synchronizes CUDA), reported as
the median and the interquartile range of the blocks' time per pass, with the batch size
and device named. Memory: on a GPU the peak allocated by this process's tensors during the
measurement (``torch.cuda.max_memory_allocated``), on a CPU the process's maximum resident
set size (``resource.getrusage``'s ru_maxrss, the whole process, not the model alone); the
two are labelled differently and never mixed. A spread (IQR / median) above `SPREAD_LIMIT`
means the machine was busy: measure again on an idle machine or a GPU. This is the one
latency measurement of a run; ``perf/infer_latency_ms``, the key older runs logged, is
logged with the same median.
"""

from __future__ import annotations

import resource
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported by the measurement: the report reads the keys without it
    import torch
    from torch import nn

LATENCY_KEY = "perf/latency_ms"  # median of the repeats, ms per forward pass of one batch
LATENCY_IQR_KEY = "perf/latency_iqr_ms"
LATENCY_BATCH_KEY = "perf/latency_batch"
LATENCY_REPEATS_KEY = "perf/latency_repeats"  # timed forward passes in all
INFER_LATENCY_KEY = "perf/infer_latency_ms"  # the same median, under the older runs' key
MEM_RSS_KEY = "perf/mem_rss_mb"  # CPU: the process's max resident set size
MEM_GPU_KEY = "perf/mem_peak_alloc_mb"  # GPU: peak allocated during the measurement
#: every metric a measurement logs (a reused run's are those of the run that trained it)
KEYS = (LATENCY_KEY, LATENCY_IQR_KEY, LATENCY_BATCH_KEY, LATENCY_REPEATS_KEY, INFER_LATENCY_KEY)
KEYS += (MEM_RSS_KEY, MEM_GPU_KEY)
#: the training process's peak memory (job.outputs.model_info); sweep packing sizes jobs by it
PEAK_MEM_KEY = "perf/peak_mem_mb"
DEVICE_TAG = "perf.device"
SPREAD_LIMIT = 0.10
MIN_BLOCKS = 4  # the quartiles need a few blocks however slow the model


@dataclass(frozen=True)
class Latency:
    """One measurement: median and IQR (ms per forward pass of one batch), its setting and
    the memory."""

    median_ms: float
    iqr_ms: float
    repeats: int  # timed forward passes in all
    warmup: int
    batch: int
    device: str
    memory_mb: float
    memory_kind: str  # "rss" (CPU) | "peak_allocated" (GPU)

    @property
    def spread(self) -> float:
        """IQR / median: above SPREAD_LIMIT the machine was not idle."""
        return self.iqr_ms / self.median_ms if self.median_ms > 0 else float("nan")

    def metrics(self) -> dict[str, float]:
        """The MLflow metrics of this measurement (Table 6 reads them)."""
        mem_key = MEM_GPU_KEY if self.memory_kind == "peak_allocated" else MEM_RSS_KEY
        return {
            LATENCY_KEY: self.median_ms,
            INFER_LATENCY_KEY: self.median_ms,
            LATENCY_IQR_KEY: self.iqr_ms,
            LATENCY_BATCH_KEY: float(self.batch),
            LATENCY_REPEATS_KEY: float(self.repeats),
            mem_key: self.memory_mb,
        }

    def tags(self) -> dict[str, str]:
        return {DEVICE_TAG: self.device}


def peak_memory_mb(device: torch.device) -> tuple[float, str]:
    """This process's peak memory in MB and its kind: on a GPU the peak allocated by tensors
    ("peak_allocated"), on a CPU the maximum resident set size ("rss")."""
    import torch

    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20, "peak_allocated"
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return (rss / 2**20 if sys.platform == "darwin" else rss / 1024), "rss"  # bytes vs KiB


def measure_latency(
    model: nn.Module,
    image_size: int,
    device: str | torch.device = "cpu",
    batch: int = 1,
    warmup: int = 5,
    min_run_time_s: float = 0.5,
    channels: int = 3,
) -> Latency:
    """Time forward passes of `model` (eval mode) on a (batch, channels, S, S) input after
    `warmup` untimed ones, for at least `min_run_time_s` seconds and `MIN_BLOCKS` blocks, on
    torch's current number of threads; the model's train/eval mode is restored."""
    if min_run_time_s <= 0 or warmup < 0 or batch < 1:
        raise ValueError(
            f"min_run_time_s={min_run_time_s} (> 0), warmup={warmup} (>= 0), batch={batch} (>= 1)"
        )
    import torch
    from torch.utils.benchmark import Timer

    device = torch.device(device)
    was_training = model.training
    model.eval()
    x = torch.randn(batch, channels, image_size, image_size, device=device)
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    threads = torch.get_num_threads()  # the Timer's default is one
    timer = Timer("model(x)", globals={"model": model, "x": x}, num_threads=threads)
    try:
        with torch.no_grad():  # per thread: the Timer's passes run in it too
            for _ in range(warmup):
                model(x)
            runs = [timer.blocked_autorange(min_run_time=min_run_time_s)]
            while sum(len(m.times) for m in runs) < MIN_BLOCKS:  # a model slower than that / 4
                runs.append(timer.blocked_autorange(min_run_time=min_run_time_s))
    finally:
        model.train(was_training)
    measured = runs[0] if len(runs) == 1 else type(runs[0]).merge(runs)[0]
    passes = sum(len(m.raw_times) * m.number_per_run for m in runs)
    memory, kind = peak_memory_mb(device)
    name = torch.cuda.get_device_name(device) if cuda else f"cpu ({threads} threads)"
    return Latency(
        measured.median * 1000, measured.iqr * 1000, passes, warmup, batch, name, memory, kind
    )


def log_latency(tracker, model: nn.Module, image_size: int, device, step: int) -> Latency:
    """Measure (defaults above: batch 1, 5 warm-up, 0.5 s timed) and log the metrics
    and the device tag into the job's run; returns the measurement."""
    measured = measure_latency(model, image_size, device)
    tracker.log_metrics(measured.metrics(), step=step)
    tracker.set_tags(measured.tags())
    return measured
