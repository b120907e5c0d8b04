"""GPU check: training images/s of the grid's models on one GPU, side by side in one run.

Prepared so that one call on a GPU machine (at most ~5 minutes, --budget-s) gives the
figures README.md asks for:

  1. one job: resnet18, resnet50, vgg16 at 224 px, plain (attention=none) and with the
     default GLSA block, bf16 autocast + channels_last, eager and torch.compile, on
     synthetic device tensors (the GPU's own speed) and on the real loader (a cache of
     2,000 synthetic images, dataset.augment=device: workers slice the cache, augmentation
     on the GPU), with peak memory;
  2. jobs sharing the GPU (hydra.launcher.jobs_per_gpu): 1, 2 and 4 processes training at
     once, each its own loader, started together; aggregate images/s and peak memory per
     job.

Every figure goes through the real code (glattn.build_model, glattn.data.build_data and its
loaders, glattn.engine.train_one_epoch with its no-sync loop). Rows that would exceed the
time budget are printed as skipped. Without a GPU it runs tiny settings on the CPU in
seconds (what tests/test_gpu_check.py runs) and says that it measured no GPU.

    python benchmarks/gpu_check.py [--budget-s 270] [--batch-size 32] [--workers 8]
    python benchmarks/gpu_check.py --tiny            # forced CPU-sized settings
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
MODELS = ("resnet18", "resnet50", "vgg16")


def compose(*overrides: str):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=str(ROOT / "conf")):
        return hydra_compose("config", overrides=list(overrides))


def job_config(args, backbone: str, glsa: bool):
    return compose(
        f"backbone={backbone}",
        f"attention={'cbam' if glsa else 'none'}",
        "dataset=synthetic",
        f"dataset.image_size={args.image_size}",
        f"dataset.num_images={args.num_images}",
        *(["dataset.source_width=48", "dataset.source_height=36"] if args.tiny else []),
        f"paths.output_dir={args.work}",
        f"trainer.batch_size={args.batch_size}",
        "tracking=none",
    )


def runtime(device: torch.device):
    from glattn.runtime import Runtime

    cuda = device.type == "cuda"
    return Runtime(
        device,
        amp_dtype=torch.bfloat16 if cuda else None,
        channels_last=cuda,
        progress=False,
        log_every_n_steps=10**9,  # the guard reads once per epoch
    )


def build(cfg, device: torch.device, compiled: bool, counts):
    from glattn import build_model
    from glattn.losses import build_loss

    model = build_model(cfg).to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    loss_fn = build_loss(cfg.loss, counts).to(device)
    return (torch.compile(model) if compiled else model), opt, loss_fn


def synthetic_batches(args, device: torch.device, steps: int):
    """The same normalised float batch `steps` times, already on the device (and in the
    memory format the runtime uses, so no step converts it)."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(args.batch_size, 3, args.image_size, args.image_size, generator=g)
    y = torch.randint(0, 7, (args.batch_size,), generator=g)
    fmt = torch.channels_last if device.type == "cuda" else torch.contiguous_format
    x, y = x.to(device).contiguous(memory_format=fmt), y.to(device)  # as the Runtime wants
    return [(x, y)] * steps


def data_for(args, cfg):
    from glattn.data import build_data

    return build_data(cfg)


def peak_mib(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    return torch.cuda.max_memory_allocated(device) / 2**20


def measure(args, backbone: str, glsa: bool, compiled: bool, source: str, device, data):
    """(img/s, peak MiB) of one configuration: a warm-up pass, then a measured one."""
    from glattn.engine import train_one_epoch

    cfg = job_config(args, backbone, glsa)
    torch.manual_seed(0)
    model, opt, loss_fn = build(cfg, device, compiled, list(data.train_counts))
    rt = runtime(device)
    if source == "synthetic":
        warm = synthetic_batches(args, device, args.warmup)
        timed = synthetic_batches(args, device, args.steps)
    else:
        loader = data.loaders(args.batch_size, args.workers, augment="device")["train"]
        rt.augment = data.augmenter()
        warm = timed = loader
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    train_one_epoch(model, warm, loss_fn, opt, rt, 1)
    out = train_one_epoch(model, timed, loss_fn, opt, rt, 2)
    peak = peak_mib(device)
    del model, opt, warm, timed
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return out["img_s"], peak


# ----------------------------------------------------------------------------- jobs sharing
def worker(args) -> None:
    """One of k jobs sharing the GPU: train until --seconds after the common start."""
    from glattn.engine import train_one_epoch

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    cfg = job_config(args, args.model, True)
    data = data_for(args, cfg)
    model, opt, loss_fn = build(cfg, device, False, list(data.train_counts))
    rt = runtime(device)
    if args.source == "synthetic":
        warm = synthetic_batches(args, device, args.warmup)
        loader = synthetic_batches(args, device, args.steps)
    else:
        loader = data.loaders(args.batch_size, args.workers, augment="device")["train"]
        rt.augment = data.augmenter()
        warm = loader
    train_one_epoch(model, warm, loss_fn, opt, rt, 1)  # warm-up (CUDA context, cudnn)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    Path(args.ready).write_text("ready")
    while not Path(args.go).exists():
        time.sleep(0.05)
    images, start, epoch = 0, time.perf_counter(), 2
    while True:
        train_one_epoch(model, loader, loss_fn, opt, rt, epoch)
        images += len(loader) * args.batch_size  # full batches (drop_last)
        epoch += 1
        if time.perf_counter() - start >= args.seconds:
            break
    elapsed = time.perf_counter() - start
    Path(args.out).write_text(json.dumps({"img_s": images / elapsed, "peak": peak_mib(device)}))


def share(args, jobs: int, work: Path) -> list[dict]:
    """Start `jobs` worker processes on the same GPU, release them together, collect."""
    run = work / f"share-{jobs}"
    run.mkdir(parents=True, exist_ok=True)
    go = run / "go"
    go.unlink(missing_ok=True)
    procs, outs, readies = [], [], []
    for k in range(jobs):
        out, ready = run / f"job{k}.json", run / f"job{k}.ready"
        out.unlink(missing_ok=True)
        ready.unlink(missing_ok=True)
        cmd = [
            sys.executable,
            __file__,
            "--worker",
            "--model",
            args.share_model,
            "--source",
            args.share_source,
            "--seconds",
            str(args.share_seconds),
            "--out",
            str(out),
            "--ready",
            str(ready),
            "--go",
            str(go),
            *args.passthrough,
            "--workers",
            str(max(1, args.workers // jobs) if args.workers else 0),
        ]
        threads = 1 if args.tiny else max(1, (os.cpu_count() or 1) // jobs)
        env = dict(os.environ, OMP_NUM_THREADS=str(threads))
        procs.append(subprocess.Popen(cmd, env=env))
        outs.append(out)
        readies.append(ready)
    deadline = time.monotonic() + args.budget_s
    while not all(r.exists() for r in readies):
        if any(p.poll() not in (None, 0) for p in procs) or time.monotonic() > deadline:
            for p in procs:
                p.kill()
            raise RuntimeError(f"a job of the {jobs}-job run failed to start")
        time.sleep(0.1)
    go.write_text("go")
    for p in procs:
        if p.wait() != 0:
            raise RuntimeError(f"a job of the {jobs}-job run exited with {p.returncode}")
    return [json.loads(o.read_text()) for o in outs]


# ----------------------------------------------------------------------------- main
def _mib(value) -> str:
    return "-" if value is None else f"{value:,.0f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiny", action="store_true", help="CPU-sized settings (default off-GPU)")
    ap.add_argument("--budget-s", type=float, default=270.0, help="seconds, whole run")
    ap.add_argument("--batch-size", type=int, default=None, help="default: trainer.batch_size")
    ap.add_argument("--workers", type=int, default=None, help="loader workers (default 8)")
    ap.add_argument("--image-size", type=int, default=None)
    ap.add_argument("--num-images", type=int, default=None)
    ap.add_argument("--steps", type=int, default=None, help="measured steps (synthetic)")
    ap.add_argument("--warmup", type=int, default=None)
    ap.add_argument("--models", nargs="+", default=None)
    ap.add_argument(
        "--jobs", type=int, nargs="*", default=None, help="jobs sharing the GPU (none: skip)"
    )
    ap.add_argument("--no-compile", action="store_true")
    ap.add_argument("--work-dir", default=None, help="default: a temporary folder")
    # worker mode (jobs sharing the GPU)
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--model", default="resnet18", help=argparse.SUPPRESS)
    ap.add_argument("--source", default="loader", help=argparse.SUPPRESS)
    ap.add_argument("--seconds", type=float, default=10.0, help=argparse.SUPPRESS)
    ap.add_argument("--out", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--ready", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--go", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    gpu = torch.cuda.is_available()
    tiny = args.tiny = args.tiny or not gpu
    defaults = dict(
        batch_size=8 if tiny else int(compose().trainer.batch_size),
        workers=0 if tiny else min(8, max(1, (os.cpu_count() or 2) - 1)),
        image_size=32 if tiny else 224,
        num_images=100 if tiny else 2000,
        steps=2 if tiny else 100,
        warmup=1 if tiny else 15,
        models=["resnet18"] if tiny else list(MODELS),
        jobs=[1, 2] if tiny else [1, 2, 4],
    )
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.work = Path(args.work_dir or tempfile.mkdtemp(prefix="glattn-gpu-check-"))
    args.passthrough = [
        "--work-dir",
        str(args.work),
        "--batch-size",
        str(args.batch_size),
        "--image-size",
        str(args.image_size),
        "--num-images",
        str(args.num_images),
        "--steps",
        str(args.steps),
        "--warmup",
        str(args.warmup),
    ] + (["--tiny"] if tiny else [])
    if args.worker:
        return worker(args)
    args.share_model, args.share_source = "resnet18", "loader"
    args.share_seconds = 1.0 if tiny else 15.0
    run(args, gpu, tiny)


SOURCES = ("synthetic", "loader")


def single_row(args, row, device, data, start: float, gpu: bool) -> None:
    backbone, glsa, compiled, source = row
    label = (
        f"| {backbone} | {'yes' if glsa else 'no'} | "
        f"{'compile' if compiled else 'eager'} | {source} |"
    )
    if compiled and (args.no_compile or not gpu):
        print(f"{label} skipped ({'--no-compile' if args.no_compile else 'no GPU'}) | - |")
        return
    # a row starts only while its phase has budget left (one more row may overrun it):
    # eager rows until 45% of the budget, compiled rows (compiling: ~1 min) until 80%
    if time.monotonic() - start > args.budget_s * (0.8 if compiled else 0.45):
        print(f"{label} skipped (time budget) | - |")
        return
    try:
        img_s, peak = measure(args, backbone, glsa, compiled, source, device, data)
    except Exception as e:  # noqa: BLE001 - one failing row (e.g. out of memory) is reported
        print(f"{label} error: {type(e).__name__}: {str(e)[:120]} | - |", flush=True)
        return
    print(f"{label} {img_s:,.0f} | {_mib(peak)} |", flush=True)


def share_table(args, start: float, gpu: bool) -> None:
    print(
        f"\njobs sharing one {'GPU' if gpu else 'CPU'} (jobs_per_gpu): {args.share_model} + "
        "GLSA, eager, real loader + device augmentation, loader workers split between the "
        "jobs, all released together\n"
    )
    print("| jobs | img/s per job | aggregate img/s | vs 1 job | peak MiB per job |")
    print("|---|---|---|---|---|")
    base = None
    if not args.jobs:
        print("| - | not run (--jobs) | - | - | - |")
    for jobs in args.jobs:
        if time.monotonic() - start > args.budget_s * 0.65:
            print(f"| {jobs} | skipped (time budget) | - | - | - |")
            continue
        try:
            results = share(args, jobs, args.work)
        except Exception as e:  # noqa: BLE001 - reported in the table, the run goes on
            print(f"| {jobs} | error: {e} | - | - | - |", flush=True)
            continue
        total = sum(r["img_s"] for r in results)
        base = base or total
        peaks = [r["peak"] for r in results if r["peak"] is not None]
        print(
            f"| {jobs} | {total / jobs:,.0f} | {total:,.0f} | {total / base:.2f}x | "
            f"{_mib(max(peaks) if peaks else None)} |",
            flush=True,
        )


def run(args, gpu: bool, tiny: bool) -> None:
    start = time.monotonic()
    device = torch.device("cuda" if gpu else "cpu")
    name = torch.cuda.get_device_name(0) if gpu else "CPU (no GPU)"
    print(
        f"glattn GPU check on {name}; torch {torch.__version__}; {args.image_size} px, "
        f"batch {args.batch_size}, {args.workers} loader workers, "
        f"{'bf16 + channels_last' if gpu else 'fp32 (CPU)'}; budget {args.budget_s:.0f} s"
    )
    if not gpu:
        print("NO GPU: this run measured no GPU (tiny CPU settings, not GPU figures)")
    cfg = job_config(args, "resnet18", True)
    data = data_for(args, cfg)  # builds the synthetic set and the cache once
    print(
        f"data: {len(data.train)} training images from the cache "
        f"({time.monotonic() - start:.0f} s to prepare)\n"
    )
    header = "| model | GLSA | mode | input | train img/s | peak MiB |\n|---|---|---|---|---|---|"
    eager = [(b, g, False, src) for b in args.models for g in (False, True) for src in SOURCES]
    compiled = [(b, g, True, "synthetic") for b in args.models for g in (False, True)]
    print(header)
    for row in eager:
        single_row(args, row, device, data, start, gpu)
    share_table(args, start, gpu)
    print(f"\ntorch.compile (one job; the first steps include compiling)\n\n{header}")
    for row in compiled:
        single_row(args, row, device, data, start, gpu)
    print(f"\ndone in {time.monotonic() - start:.0f} s" + ("" if gpu else "; measured no GPU"))


if __name__ == "__main__":
    main()
