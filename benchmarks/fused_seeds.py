"""Fused seeds vs separate jobs on the CPU at small sizes.

Three members (seeds 0, 1, 2) of one config (``--overrides``, default resnet18 + GLSA +
CBAM) train ``--steps`` AdamW steps on random batches three ways, each after ``--warmup``
untimed steps:

  separate:    the three models one after another (the work of 3 jobs sharing the cores);
  fused:       one `glattn.fused.stack.FusedModel` (vmap; grouped convolutions), exact=False;
  fused exact: exact=True (convolutions and BatchNorms member by member: bit-identical to
               the separate models on the CPU, glattn.fused.exact).

Prints aggregate img/s of each and the load average, and as its last line
``fused 3 seeds vs 3 separate jobs: R x`` (fused img/s over separate img/s). A CPU figure
says little about a GPU, where fusion's grouped kernels fill an otherwise idle device
(arXiv:2102.02344); the GPU rows belong to benchmarks/gpu_check.py, whose fused rows
train the members through this module's `members`, `fuse` and `fused_steps`.

    python benchmarks/fused_seeds.py [--size 32] [--batch 8] [--steps 5] [--overrides ...]
    python benchmarks/fused_seeds.py --device cuda --size 224 --batch 32   # not run here
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from glattn.fused.stack import FusedModel, member_generator  # noqa: E402

SEEDS = (0, 1, 2)


def _sync(device: torch.device) -> float:
    """A timestamp after the device's queued work (CUDA kernels run asynchronously)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


def build(overrides: list[str], size: int, device: torch.device) -> list[torch.nn.Module]:
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(version_base="1.3", config_dir=str(ROOT / "conf")):
        cfg = compose("config", overrides=[f"dataset.image_size={size}", *overrides])
    return members(cfg, device)


def members(cfg, device: torch.device) -> list[torch.nn.Module]:
    """One model of the composed `cfg` per seed of SEEDS (the members' initial weights)."""
    from glattn.models import build_model

    models = []
    for seed in SEEDS:
        torch.manual_seed(seed)
        models.append(build_model(cfg).to(device).train())
    return models


def separate(models, x, y, steps: int) -> float:
    opts = [torch.optim.AdamW(m.parameters(), lr=1e-3) for m in models]
    start = _sync(x.device)
    for step in range(steps):
        for i, (model, opt) in enumerate(zip(models, opts)):
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(model(x[i, step]), y[i, step]).backward()
            opt.step()
    return _sync(x.device) - start


def fuse(models, exact: bool = False) -> tuple[FusedModel, list[torch.optim.Optimizer]]:
    """The members as one `FusedModel` (in-model draws from each seed's generator) and each
    member's own AdamW, which updates its slice of the stack."""
    model = FusedModel(models, [member_generator(s) for s in SEEDS], exact=exact).train()
    return model, [torch.optim.AdamW(m.parameters(), lr=1e-3) for m in models]


def fused_steps(model, opts, batches, device, loss_fn=F.cross_entropy, autocast=None) -> int:
    """Train the fused `model` one step per ((M, B, C, H, W) images, (M, B) labels) of
    `batches` (drawn inside the loop: a loader's time counts); `autocast`: a context
    factory (e.g. glattn.runtime.Runtime.autocast). Returns the images trained, all members
    together, after the device's queued work."""
    images = 0
    for x, y in batches:
        model.zero_grad()
        with autocast() if autocast else nullcontext():
            out = model(x)  # (M, B, num_classes)
            losses = [loss_fn(out[i], y[i]) for i in range(len(opts))]
        torch.stack(losses).sum().backward()
        model.share_grads()
        for opt in opts:
            opt.step()
        images += y.numel()
    _sync(device)
    return images


def fused(models, x, y, steps: int, exact: bool) -> float:
    model, opts = fuse(models, exact)
    start = _sync(x.device)
    fused_steps(model, opts, ((x[:, step], y[:, step]) for step in range(steps)), x.device)
    return _sync(x.device) - start


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--overrides", nargs="*", default=[])
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    total = args.steps + args.warmup
    x = torch.randn(len(SEEDS), total, args.batch, 3, args.size, args.size, device=device)
    y = torch.randint(0, 7, (len(SEEDS), total, args.batch), device=device)
    images = len(SEEDS) * args.steps * args.batch
    print(f"{device}; load average before: {os.getloadavg()}; threads {torch.get_num_threads()}")
    rows = {}
    for name, run in (
        ("separate", lambda m, a, b, n: separate(m, a, b, n)),
        ("fused", lambda m, a, b, n: fused(m, a, b, n, exact=False)),
        ("fused exact", lambda m, a, b, n: fused(m, a, b, n, exact=True)),
    ):
        models = build(args.overrides, args.size, device)
        run(models, x[:, : args.warmup], y[:, : args.warmup], args.warmup)  # untimed
        # each way gets fresh models: the timed steps start from the same weights
        models = build(args.overrides, args.size, device)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        seconds = run(models, x[:, args.warmup :], y[:, args.warmup :], args.steps)
        rows[name] = images / seconds
        peak = (
            f", peak {torch.cuda.max_memory_allocated(device) / 2**20:.0f} MiB"
            if device.type == "cuda"
            else ""
        )
        print(f"{name:12s} {rows[name]:8.1f} img/s  ({seconds:.2f} s, {images} images{peak})")
    print(f"load average after: {os.getloadavg()}")
    print(f"fused 3 seeds vs 3 separate jobs: {rows['fused'] / rows['separate']:.2f} x")


if __name__ == "__main__":
    main()
