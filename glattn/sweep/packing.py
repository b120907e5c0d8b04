"""``hydra.launcher.jobs_per_gpu=auto``: how many jobs share each GPU.

One job of this grid cannot keep a large GPU busy on its own (measured on an H200: one
resnet18 + GLSA job with the real loader trained 1,469 img/s, two jobs 4,614 in all, four
5,477), so the local_gpus launcher packs several jobs per GPU. The choice is the largest
number that fits both limits:

    memory: k_mem = floor(HEADROOM x free GPU memory / (per-job peak + CUDA_CONTEXT_BYTES))
    CPU:    k_cpu = floor(CPU cores / (GPUs x CORES_PER_JOB))   (main process + 2 workers)
    k = clamp(min(k_mem, k_cpu), 1, MAX_JOBS)

so k jobs never need more than the GPU's free memory (the peak is the caching
allocator's reserved memory of a measured probe, or FINISHED runs' logged
``perf/peak_mem_mb`` x RESERVED_FACTOR, the allocator's usual overhead over what tensors
allocate). Where no peak can be measured the choice is 1 (the safe one) and says so.

The per-job peak comes from, in order: the tracking store (FINISHED runs with the same
backbone, dataset and task as every job still to run: plan mode's references) or a short
measured probe (glattn.sweep.probe: the job's model, optimizer and batch size, a few
training steps on random device tensors, in a child process pinned to the GPU so the
launcher itself never holds a CUDA context).

`decide` is pure (tests call it with fake memory figures); the GPU queries sit behind the
`GpuMemory` seam (`query_gpu_memory`, replaceable by any callable gpu id -> GpuMemory).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from glattn.latency import PEAK_MEM_KEY

log = logging.getLogger(__name__)

#: fraction of the free memory the jobs may plan to use (fragmentation, cuDNN workspaces)
HEADROOM = 0.9
#: memory a process holds on the GPU before its first tensor (CUDA context, cuBLAS/cuDNN)
CUDA_CONTEXT_BYTES = 1.0 * 2**30
#: caching allocator's reserved memory over max_memory_allocated (perf/peak_mem_mb)
RESERVED_FACTOR = 1.25
#: CPU cores one job needs to feed its GPU share (main process + 2 loader workers); on the
#: 16-core H200 machine 4 jobs (4 cores each) gave 3.73x one job, 2 jobs 3.14x
CORES_PER_JOB = 3
#: more jobs than this per GPU did not pay anywhere measured (and each costs a context)
MAX_JOBS = 4


@dataclass(frozen=True)
class GpuMemory:
    """One GPU's memory in bytes: total and free now (other processes' use subtracted)."""

    total: float
    free: float


@dataclass(frozen=True)
class Decision:
    jobs_per_gpu: int
    reason: str

    def line(self) -> str:
        return f"jobs_per_gpu=auto: {self.jobs_per_gpu} job(s) per GPU ({self.reason})"


def _gib(n: float) -> str:
    return f"{n / 2**30:.1f} GiB"


def decide(
    memory: GpuMemory | None,
    job_peak: float | None,
    cpu_cores: int,
    gpus: int,
    source: str = "measured",
    max_jobs: int = MAX_JOBS,
) -> Decision:
    """The jobs per GPU for a per-job peak of `job_peak` bytes (None: unknown) on GPUs with
    `memory` (the smallest free memory of the pool), `cpu_cores` cores shared by `gpus`
    GPUs; see the module docstring. Pure arithmetic, no GPU needed."""
    if gpus < 1:
        return Decision(1, "no GPU: CPU slots are hydra.launcher.n_jobs")
    if memory is None:
        return Decision(1, "GPU memory unknown (no nvidia-smi or torch.cuda): the safe choice")
    if job_peak is None or job_peak <= 0:
        return Decision(1, "no measured peak memory per job: the safe choice")
    need = job_peak + CUDA_CONTEXT_BYTES
    usable = HEADROOM * min(memory.free, memory.total)
    k_mem = int(usable // need)
    k_cpu = max(1, cpu_cores // (gpus * CORES_PER_JOB))
    k = max(1, min(k_mem, k_cpu, max_jobs))
    facts = (
        f"per job {_gib(job_peak)} peak ({source}) + {_gib(CUDA_CONTEXT_BYTES)} context; "
        f"{_gib(memory.free)} free of {_gib(memory.total)}, {HEADROOM:.0%} usable: "
        f"{k_mem} fit; {cpu_cores} CPU cores / ({gpus} GPU x {CORES_PER_JOB}): {k_cpu}"
    )
    if k_mem < 1:
        return Decision(1, f"one job needs more than the usable memory: {facts}")
    limit = "memory" if k == k_mem else ("CPU cores" if k == k_cpu else f"at most {max_jobs}")
    return Decision(k, f"limited by {limit}: {facts}")


# ----------------------------------------------------------------------------- time
#: aggregate training throughput of k jobs sharing one GPU over one job alone, the only
#: measurement so far (one H200, resnet18 + GLSA, real loader, 2026-12-04, with
#: the per-job ceiling of that day); `speedup` interpolates between these, and holds the
#: last value beyond them. Pass a measured figure (benchmarks/gpu_check.py) where there is one.
MEASURED_SPEEDUP = {1: 1.0, 2: 3.14, 4: 3.73}


def speedup(k: int, table: dict[int, float] | None = None) -> float:
    """Aggregate throughput of `k` jobs on one GPU over one job alone (`table`: measured
    figures by k, default MEASURED_SPEEDUP; linear between them, flat beyond the last)."""
    table = dict(MEASURED_SPEEDUP if table is None else table)
    table.setdefault(1, 1.0)
    if k < 1:
        raise ValueError(f"jobs per GPU={k}: expected at least 1")
    points = sorted(table.items())
    if k >= points[-1][0]:
        return float(points[-1][1])
    for (k0, s0), (k1, s1) in zip(points, points[1:]):
        if k0 <= k <= k1:
            return float(s0 + (s1 - s0) * (k - k0) / (k1 - k0))
    return float(points[0][1])


def packed_wall_s(job_seconds, gpus: int, jobs_per_gpu: int, gain: float) -> float:
    """Predicted wall time of jobs that take `job_seconds` each alone on a GPU, on `gpus`
    GPUs with `jobs_per_gpu` sharing each, `gain` = aggregate speedup of that many jobs
    (`speedup`): a shared job runs at gain / jobs_per_gpu of its speed alone, and the
    gpus x jobs_per_gpu slots take the jobs costliest first (glattn.sweep.schedule)."""
    from glattn.sweep.schedule import lpt_order, makespan

    if gpus < 1 or jobs_per_gpu < 1 or gain <= 0:
        raise ValueError(f"gpus={gpus}, jobs_per_gpu={jobs_per_gpu}, speedup={gain}: expected > 0")
    each = [float(s) * jobs_per_gpu / gain for s in job_seconds]
    return makespan(each, gpus * jobs_per_gpu, lpt_order(each))


def plan_line(
    plans,
    config,
    client=None,
    memory_probe: Callable[[str], GpuMemory | None] | None = None,
    cpu_cores: int | None = None,
) -> str | None:
    """Plan mode's packing line under ``hydra/launcher=local_gpus`` on GPUs (None otherwise):
    the jobs_per_gpu the launch would take (auto: `decide` on FINISHED runs' peak memory;
    without one the launch probes, here 1 is shown) and the grid's predicted wall time on
    those GPUs (`packed_wall_s` of plan mode's time estimates, `speedup`)."""
    from omegaconf import OmegaConf

    from glattn.sweep.schedule import parse_gpus, visible_gpus
    from glattn.sweep.units import fmt_seconds

    launcher = OmegaConf.select(config, "hydra.launcher", default=None)
    if launcher is None or not str(launcher.get("_target_", "")).endswith("LocalGpusLauncher"):
        return None
    gpus = parse_gpus(launcher.get("gpus"))
    gpus = visible_gpus() if gpus is None else gpus
    if not gpus:
        return None
    value = launcher.get("jobs_per_gpu", "auto")
    if str(value) == "auto":
        peak = stored_peak(plans, client)
        cores = cpu_cores or os.cpu_count() or 1
        source = f"FINISHED runs' {PEAK_MEM_KEY}"
        memory = pool_memory(gpus, memory_probe or query_gpu_memory)
        d = decide(memory, peak, cores, len(gpus), source)
        if peak is None:
            d = Decision(d.jobs_per_gpu, d.reason + "; the launch probes the costliest job")
    else:
        d = Decision(int(value), "as configured")
    todo = [p for p in plans if p.done_run is None and p.error is None]
    if any(p.est_s is None for p in todo):
        return f"  {d.line()}; wall time on {len(gpus)} GPU(s): ? (not every job has a time)"
    k = d.jobs_per_gpu
    gain = speedup(k)
    wall = packed_wall_s([p.est_s for p in todo], len(gpus), k, gain) if todo else 0.0
    return (
        f"  {d.line()}; predicted wall time on {len(gpus)} GPU(s): {fmt_seconds(wall)} "
        f"(each job's estimate x {k} / {gain:.2f}, the aggregate of {k} jobs measured in "
        "glattn.sweep.packing.MEASURED_SPEEDUP; costliest first; early stopping not counted)"
    )


# ----------------------------------------------------------------------------- GPU seam
def query_gpu_memory(gpu: str) -> GpuMemory | None:
    """Total and free memory of GPU `gpu` from nvidia-smi (no CUDA context in this
    process), else from torch.cuda.mem_get_info in a child process; None if neither works."""
    smi = shutil.which("nvidia-smi")
    if smi:
        try:
            out = subprocess.run(
                [smi, "--query-gpu=memory.total,memory.free", "--format=csv,noheader,nounits"]
                + ["-i", str(gpu)],
                capture_output=True,
                text=True,
                timeout=30,
                check=True,
            ).stdout.split(",")
            return GpuMemory(float(out[0]) * 2**20, float(out[1]) * 2**20)
        except (OSError, subprocess.SubprocessError, ValueError, IndexError):
            pass
    code = "import json, torch; f, t = torch.cuda.mem_get_info(0); print(json.dumps([t, f]))"
    try:
        out = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
            env=dict(os.environ, CUDA_VISIBLE_DEVICES=str(gpu)),
        ).stdout
        total, free = json.loads(out.strip().splitlines()[-1])
        return GpuMemory(float(total), float(free))
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return None


def pool_memory(gpus: Sequence[str], probe: Callable[[str], GpuMemory | None]):
    """The smallest free memory among `gpus` (every GPU takes the same k), or None."""
    found = [probe(g) for g in gpus]
    if not found or any(m is None for m in found):
        return None
    return min(found, key=lambda m: m.free)


# ----------------------------------------------------------------------------- peak memory
def stored_peak(plans, client) -> float | None:
    """Bytes: the largest ``perf/peak_mem_mb`` x RESERVED_FACTOR of FINISHED runs whose
    (backbone, dataset, task) is one of the jobs' to run (plan mode's reference key), when
    every such key has one; else None (a job without a measurement could need more)."""
    from glattn.sweep import store

    keys = {p.key for p in plans if p.done_run is None and p.error is None}
    if client is None or not keys:
        return None
    peaks: dict[tuple, float] = {}
    for run in store.finished_runs(client):
        tags, value = run.data.tags, run.data.metrics.get(PEAK_MEM_KEY)
        key = (tags.get("backbone"), tags.get("dataset"), tags.get("task", "train"))
        if value and key in keys:
            peaks[key] = max(peaks.get(key, 0.0), float(value))
    if set(peaks) != keys:
        return None
    return max(peaks.values()) * 2**20 * RESERVED_FACTOR


def probe_target(plans):
    """The job to probe: the largest compute per epoch and image (plan mode's PFLOP /
    max_epochs) x batch size, i.e. the biggest model at the biggest batch; None if none."""
    todo = [p for p in plans if p.done_run is None and p.error is None and p.pflop]
    if not todo:
        return None
    return max(todo, key=lambda p: p.pflop / max(p.max_epochs or 1, 1) * (p.batch_size or 1))


def choose(
    owner,
    jobs: Sequence[Sequence[str]],
    gpus: Sequence[str],
    plans: Callable[[], list] | None = None,
    memory_probe: Callable[[str], GpuMemory | None] = query_gpu_memory,
    peak_probe: Callable[[Path, str | None], float | None] | None = None,
    cpu_cores: int | None = None,
) -> Decision:
    """jobs_per_gpu for the grid `jobs` on `gpus` (`owner`: the launcher, with
    ``hydra_context`` and ``config``; `plans`: plan mode's rows of `jobs`, built when
    needed; None: none, so no peak either): free memory from `memory_probe`, the per-job
    peak from the tracking store, else `peak_probe` of the costliest job (`probe_target`)."""
    cores = cpu_cores or os.cpu_count() or 1
    if not gpus:
        return decide(None, None, cores, 0)
    memory = pool_memory(gpus, memory_probe)
    if memory is None:
        return decide(None, None, cores, len(gpus))
    try:
        from glattn.sweep import probe, store

        rows = plans() if plans is not None else []
        tracked = store.tracking_enabled(owner.config)
        client = store.client_for(owner.config, create=False) if tracked else None
        peak, source = stored_peak(rows, client), "FINISHED runs' perf/peak_mem_mb"
        target = probe_target(rows) if peak is None else None
        if target is not None:
            with tempfile.TemporaryDirectory(prefix="glattn-probe-") as tmp:
                cfg_yaml = probe.write_config(owner, list(jobs[target.num]), Path(tmp))
                peak = (peak_probe or probe.probe_peak)(cfg_yaml, gpus[0])
            source = f"probe of job #{target.num}, {probe.PROBE_STEPS} steps"
    except Exception as e:  # noqa: BLE001 - packing is an optimisation: 1 is always safe
        log.warning("jobs_per_gpu=auto: no peak memory (%s: %s)", type(e).__name__, e)
        peak, source = None, "unknown"
    members = fused_members(jobs)
    if peak is not None and members > 1:  # a fused job holds its members' models at once
        peak, source = peak * members, f"{source}, x {members} fused members"
    return decide(memory, peak, cores, len(gpus), source)


def fused_members(jobs: Sequence[Sequence[str]]) -> int:
    """The most members of any fused job of the grid (glattn.sweep.fuse; 1: none fused)."""
    from glattn.job.protocol import fused_seeds

    return max((len(fused_seeds(job) or ()) for job in jobs), default=0) or 1
