"""The measurements of benchmarks/gpu_check.py: one configuration's training images/s in
steady state (glattn's real code), a plain PyTorch loop of the same torchvision model (the
reference row), the loader alone, and jobs sharing the GPU (worker processes).

Steady state: a warm-up pass (cuDNN autotuning, torch.compile's compilation: timed on its
own, the "compile s" column), then two timed passes of which the faster is reported, so a
late recompile or a first-pass allocator growth does not count as training speed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def compose(*overrides: str):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=str(ROOT / "conf")):
        return hydra_compose("config", overrides=list(overrides))


def job_config(args, backbone: str, glsa: bool, batch_size: int | None = None):
    return compose(
        f"backbone={backbone}",
        f"attention={'cbam' if glsa else 'none'}",
        "dataset=synthetic",
        f"dataset.image_size={args.image_size}",
        f"dataset.num_images={args.num_images}",
        *(["dataset.source_width=48", "dataset.source_height=36"] if args.tiny else []),
        f"paths.output_dir={args.work}",
        f"trainer.batch_size={batch_size or args.batch_size}",
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


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def build(cfg, device: torch.device, mode: str, counts):
    """glattn's model (trainer.compile `mode`: none | block | model), AdamW, its loss."""
    from glattn import build_model
    from glattn.losses import build_loss
    from glattn.models.compiled import compile_model

    model = build_model(cfg).to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    loss_fn = build_loss(cfg.loss, counts).to(device)
    return compile_model(model, mode, device), opt, loss_fn


def synthetic_batches(args, device: torch.device, steps: int, batch_size: int | None = None):
    """The same normalised float batch `steps` times, already on the device (and in the
    memory format the runtime uses, so no step converts it)."""
    g = torch.Generator().manual_seed(0)
    b = batch_size or args.batch_size
    x = torch.randn(b, 3, args.image_size, args.image_size, generator=g)
    y = torch.randint(0, 7, (b,), generator=g)
    fmt = torch.channels_last if device.type == "cuda" else torch.contiguous_format
    x, y = x.to(device).contiguous(memory_format=fmt), y.to(device)  # as the Runtime wants
    return [(x, y)] * steps


def peak(device: torch.device) -> tuple[float | None, float | None]:
    """(allocated, reserved) peak MiB since the last reset; None on a CPU."""
    if device.type != "cuda":
        return None, None
    return (
        torch.cuda.max_memory_allocated(device) / 2**20,
        torch.cuda.max_memory_reserved(device) / 2**20,
    )


def _steady(run_pass, device, passes: int = 2) -> tuple[float, float]:
    """(warm-up seconds, images/s of the fastest of `passes` timed passes); `run_pass()`
    trains one pass and returns its image count."""
    sync(device)
    t0 = time.perf_counter()
    run_pass()
    sync(device)
    warm = time.perf_counter() - t0
    best = 0.0
    for _ in range(passes):
        t0 = time.perf_counter()
        images = run_pass()
        sync(device)
        best = max(best, images / (time.perf_counter() - t0))
    return warm, best


def measure(args, backbone, glsa, mode, source, device, data, batch_size=None) -> dict:
    """One glattn configuration: {"img_s", "warm_s", "peak", "reserved"} (see module)."""
    from glattn.engine import train_one_epoch

    b = batch_size or args.batch_size
    cfg = job_config(args, backbone, glsa, b)
    torch.manual_seed(0)
    model, opt, loss_fn = build(cfg, device, mode, list(data.train_counts))
    rt = runtime(device)
    if source == "synthetic":
        batches = synthetic_batches(args, device, args.steps, b)
    else:
        batches = data.loaders(b, args.workers, augment="device")["train"]
        rt.augment = data.augmenter()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    epoch = iter(range(1, 10**6))

    def run_pass() -> int:
        train_one_epoch(model, batches, loss_fn, opt, rt, next(epoch))
        return len(batches) * b  # full batches (drop_last / synthetic)

    warm, img_s = _steady(run_pass, device, args.passes)
    allocated, reserved = peak(device)
    return {"img_s": img_s, "warm_s": warm, "peak": allocated, "reserved": reserved}


def plain_loop(args, backbone: str, device: torch.device) -> float:
    """The reference: torchvision's model (head for 7 classes), AdamW, cross-entropy, the
    same precision and memory format, a textbook loop on device tensors; images/s."""
    import torchvision

    torch.manual_seed(0)
    model = getattr(torchvision.models, backbone)(num_classes=7).to(device)
    cuda = device.type == "cuda"
    if cuda:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    batches = synthetic_batches(args, device, args.steps)

    def run_pass() -> int:
        model.train()
        for x, y in batches:
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda):
                loss = torch.nn.functional.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        return len(batches) * args.batch_size

    return _steady(run_pass, device, args.passes)[1]


def loader_alone(args, device: torch.device, data) -> float:
    """The input pipeline without a model: workers slice the cache, the batch travels to
    the device and is augmented there (glattn.data.augment); images/s."""
    rt = runtime(device)
    loader = data.loaders(args.batch_size, args.workers, augment="device")["train"]
    augment = data.augmenter()

    def run_pass() -> int:
        last = None
        for images, labels in loader:
            last = rt.to_device(images, labels, augment)
        del last
        return len(loader) * args.batch_size

    return _steady(run_pass, device, args.passes)[1]


# ----------------------------------------------------------------------------- jobs sharing
def worker(args) -> None:
    """One of k jobs sharing the GPU: train until --seconds after the common start."""
    from glattn.data import build_data
    from glattn.engine import train_one_epoch

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    cfg = job_config(args, args.model, True)
    data = build_data(cfg)
    model, opt, loss_fn = build(cfg, device, "none", list(data.train_counts))
    rt = runtime(device)
    loader = data.loaders(args.batch_size, args.workers, augment="device")["train"]
    rt.augment = data.augmenter()
    train_one_epoch(model, loader, loss_fn, opt, rt, 1)  # warm-up (CUDA context, cudnn)
    sync(device)
    if device.type == "cuda":
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
    allocated, reserved = peak(device)
    out = {"img_s": images / elapsed, "peak": allocated, "reserved": reserved}
    Path(args.out).write_text(json.dumps(out))


def share(args, jobs: int, script: str) -> list[dict]:
    """Start `jobs` worker processes of `script` on the same GPU, release them together."""
    run = args.work / f"share-{jobs}"
    run.mkdir(parents=True, exist_ok=True)
    go = run / "go"
    go.unlink(missing_ok=True)
    procs, outs, readies = [], [], []
    for k in range(jobs):
        out, ready = run / f"job{k}.json", run / f"job{k}.ready"
        out.unlink(missing_ok=True)
        ready.unlink(missing_ok=True)
        cmd = [sys.executable, script, "--worker", "--model", args.share_model]
        cmd += ["--seconds", str(args.share_seconds), "--out", str(out), "--ready", str(ready)]
        cmd += ["--go", str(go), *args.passthrough]
        cmd += ["--workers", str(max(1, args.workers // jobs) if args.workers else 0)]
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
