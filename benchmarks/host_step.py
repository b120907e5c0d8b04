"""Host-side work per training step of one job, old vs new, side by side in one run.

One job with the real loader stopped near 1,500-1,800 img/s on an H200
whatever the model, so the cap is per job and on the host. Without a GPU this measures what
the host does per batch besides the model (tiny sizes, the CPU):

  params old: DeviceAugment's per-sample random parameters as drawn before: ten generator
              draws and ~40 small tensor ops (sample) + an index-assigned crop matrix and a
              batched matmul (matrices)
  params new: glattn.data.augment today: one generator draw per batch scaled in one pass,
              the affine matrix written out (the same numbers: asserted)
  loader epoch start: the first batch of an epoch with persistent_workers (glattn's
              loaders) vs workers started every epoch (--workers > 0)

and, with cProfile, where the host time of one tiny training epoch goes (the main
process: loader, to_device + augmentation, model, optimizer, the loss guard's syncs).
Prints the ratios and the load average.

    python benchmarks/host_step.py [--batch-size 32] [--repeats 300] [--workers 2]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import math
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gpu_measure as M  # noqa: E402 - the benchmarks folder is not a package


# ----------------------------------------------------------------------------- the old code
def old_sample(aug, n: int, side: int) -> dict:
    """The former DeviceAugment.sample (one draw per parameter), kept as the reference."""

    def uniform(shape, low, high):
        return torch.rand(shape, generator=aug.generator, dtype=torch.float64) * (high - low) + low

    angle = uniform(n, -aug.degrees, aug.degrees)
    area = float(side * side)
    target = area * uniform((n, 10), *aug.scale)
    aspect = torch.exp(uniform((n, 10), math.log(aug.ratio[0]), math.log(aug.ratio[1])))
    w = torch.round(torch.sqrt(target * aspect))
    h = torch.round(torch.sqrt(target / aspect))
    ok = (w > 0) & (w <= side) & (h > 0) & (h <= side)
    first = ok.to(torch.int8).argmax(1, keepdim=True)
    found = ok.any(1)
    w = torch.where(found, w.gather(1, first).squeeze(1), float(side))
    h = torch.where(found, h.gather(1, first).squeeze(1), float(side))
    i = torch.floor(uniform(n, 0, 1) * (side - h + 1))
    j = torch.floor(uniform(n, 0, 1) * (side - w + 1))
    flips = torch.where(uniform((n, 2), 0, 1) < aug.flip_p, -1.0, 1.0)
    b, c, s, hu = aug.jitter
    colour = torch.stack(
        [
            uniform(n, max(0.0, 1 - b), 1 + b),
            uniform(n, max(0.0, 1 - c), 1 + c),
            uniform(n, max(0.0, 1 - s), 1 + s),
            uniform(n, -hu, hu),
        ],
        dim=1,
    )
    order = torch.randperm(4, generator=aug.generator)
    crop = torch.stack([i, j, h, w], 1)
    return dict(angle=angle, crop=crop, flips=flips, colour=colour, order=order)


def old_matrices(params: dict, side: int) -> torch.Tensor:
    i, j, h, w = params["crop"].unbind(1)
    crop = torch.zeros(len(i), 2, 3, dtype=torch.float64)
    crop[:, 0, 0] = params["flips"][:, 0] * w / side
    crop[:, 1, 1] = params["flips"][:, 1] * h / side
    crop[:, 0, 2] = (2 * j + w) / side - 1
    crop[:, 1, 2] = (2 * i + h) / side - 1
    a = torch.deg2rad(params["angle"])
    cos, sin = torch.cos(a), torch.sin(a)
    unrotate = torch.stack([torch.stack([cos, -sin], 1), torch.stack([sin, cos], 1)], 1)
    return unrotate @ crop


# ----------------------------------------------------------------------------- measurements
def params_us(batch: int, side: int, repeats: int) -> tuple[float, float]:
    """Microseconds per batch of (old, new) parameter draws + matrices, interleaved."""
    from glattn.data.augment import DeviceAugment

    old_aug, new_aug = DeviceAugment(224, 0), DeviceAugment(224, 0)
    t_old = t_new = 0.0
    for _ in range(repeats):
        t0 = time.perf_counter()
        p = old_sample(old_aug, batch, side)
        m_old = old_matrices(p, side)
        t1 = time.perf_counter()
        q = new_aug.sample(batch, side)
        m_new = new_aug.matrices(q, side)
        t2 = time.perf_counter()
        t_old, t_new = t_old + t1 - t0, t_new + t2 - t1
        torch.testing.assert_close(q["crop"], p["crop"], rtol=0, atol=0)
        torch.testing.assert_close(q["colour"], p["colour"], rtol=0, atol=0)
        torch.testing.assert_close(m_new, m_old, rtol=0, atol=1e-12)
    return t_old / repeats * 1e6, t_new / repeats * 1e6


def epoch_start_s(data, batch: int, workers: int, persistent: bool, epochs: int = 3) -> float:
    """Mean seconds to the first batch of epochs 2..N (epoch 1 starts the workers anyway)."""
    from torch.utils.data import DataLoader

    from glattn.data.datasets import collate_batch

    ds = data.train.slices()
    loader = DataLoader(
        ds,
        batch_size=batch,
        shuffle=True,
        num_workers=workers,
        collate_fn=collate_batch,
        persistent_workers=persistent,
        drop_last=True,
    )
    firsts = []
    for _ in range(epochs):
        t0 = time.perf_counter()
        it = iter(loader)
        next(it)
        firsts.append(time.perf_counter() - t0)
        for _ in it:
            pass
    return sum(firsts[1:]) / max(len(firsts) - 1, 1)


def profile_epoch(args, data) -> str:
    """cProfile of one tiny training epoch on the CPU: the top host functions."""
    from glattn.engine import train_one_epoch

    cfg = M.job_config(args, "resnet18", True, args.batch_size)
    device = torch.device("cpu")
    model, opt, loss_fn = M.build(cfg, device, "none", list(data.train_counts))
    rt = M.runtime(device)
    loader = data.loaders(args.batch_size, 0, augment="device")["train"]
    rt.augment = data.augmenter()
    train_one_epoch(model, loader, loss_fn, opt, rt, 1)
    prof = cProfile.Profile()
    prof.enable()
    train_one_epoch(model, loader, loss_fn, opt, rt, 2)
    prof.disable()
    out = io.StringIO()
    pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(12)
    return out.getvalue()


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=300)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--no-profile", action="store_true")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    load = os.getloadavg()
    print(f"host work per step (CPU, 1 thread); load average {load[0]:.1f} {load[1]:.1f}\n")
    old, new = params_us(args.batch_size, 256, args.repeats)
    print("| what | old | new | old / new |\n|---|---|---|---|")
    print(
        f"| augmentation parameters, batch {args.batch_size} (us) | {old:.0f} | {new:.0f} | "
        f"{old / new:.2f}x |",
        flush=True,
    )
    ns = argparse.Namespace(image_size=32, num_images=100, tiny=True, batch_size=16, steps=2)
    ns.work = Path(tempfile.mkdtemp(prefix="glattn-host-step-"))
    from glattn.data import build_data

    data = build_data(M.job_config(ns, "resnet18", True, ns.batch_size))
    if args.workers > 0:
        per_epoch = epoch_start_s(data, 8, args.workers, persistent=False)
        kept = epoch_start_s(data, 8, args.workers, persistent=True)
        print(
            f"| first batch of an epoch, {args.workers} workers (ms) | {per_epoch * 1e3:.0f} "
            f"(workers every epoch) | {kept * 1e3:.0f} (persistent_workers) | "
            f"{per_epoch / kept:.1f}x |"
        )
    if not args.no_profile:
        print("\none tiny training epoch (resnet18 + GLSA, 32 px), main process, cProfile:\n")
        print(profile_epoch(ns, data))
    load = os.getloadavg()
    print(f"load average at the end {load[0]:.1f} {load[1]:.1f}")


if __name__ == "__main__":
    main()
