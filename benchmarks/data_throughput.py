"""Images/s of the data pipeline, side by side in one run, on synthetic 600x450 JPEGs
(HAM10000's size) read through the real HAM10000 reader:

  (a)  plain:  every epoch, PIL open + decode (JPEG draft mode) + resize/crop per image
  (a0) plain, no draft: the same with a full-resolution decode, as most pipelines do
  (b)  cached: glattn.data.cache: decode + resize once into a memory-mapped uint8 store
               (epoch 1 includes building it), later epochs read the store

All feed the same evaluation transform and the batch normalisation (glattn.data.transforms:
uint8 batches, normalised per batch, on the CPU here); (a) and (b) yield identical tensors
(asserted),
(a0) differs slightly (draft mode scales in the DCT). Ratios compare the mean img/s of
epochs >= 2. One torch thread by default, as in a DataLoader worker.

Then training augmentation at --augment-size (224), from the cache (glattn.data.augment):

  loader, old: dataset.augment=cpu: the per-image torchvision pipeline (train_transform:
               rotation, random resized crop, flips, colour jitter) in the loader
  loader, new: dataset.augment=device: the loader only slices the cache (one slice per
               batch) and hands on uint8; augmentation happens on the training device
  augmentation's own cost on the CPU device, same batches, side by side: the old pipeline
  (per image), glattn.data.augment.DeviceAugment (one affine warp + batched colour ops)
  and kornia.augmentation (per-sample parameters on batches; if installed)

The last line reads `loader img/s per core at 224: NEW vs OLD (Rx)`.

    python benchmarks/data_throughput.py [--num-images 300] [--epochs 3] [--sizes 64 224]
        [--augment-size 224] [--skip-decode]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps
from torch.utils.data import DataLoader

from glattn.data.augment import DeviceAugment
from glattn.data.cache import DiskImages, build_cache
from glattn.data.datasets import LesionDataset, collate_batch
from glattn.data.ham10000 import read_ham10000
from glattn.data.synthetic import ensure_synthetic
from glattn.data.transforms import eval_transform, normalize, resize_side, train_transform


class FullDecode(DiskImages):
    """Plain pipeline without draft mode: decode at full resolution, then resize."""

    def get(self, i: int) -> np.ndarray:
        with Image.open(self.paths[i]) as im:
            im = ImageOps.fit(im.convert("RGB"), (self.side, self.side), Image.BILINEAR)
        return np.asarray(im)


def run_epoch(dataset, batch_size: int, workers: int) -> tuple[float, list[torch.Tensor]]:
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=workers)
    start = time.perf_counter()
    # the loaders yield uint8 batches; normalising them is part of the pipeline's cost here
    # (on a GPU it runs on the device, after a 4x smaller copy)
    batches = [normalize(x) for x, _ in loader]
    return time.perf_counter() - start, batches


def loader_rate(dataset, batch_size: int, workers: int, epochs: int, **kw) -> list[float]:
    """Images/s that reach the training loop, per epoch (the loop does nothing else)."""
    rates = []
    for _ in range(epochs):
        loader = DataLoader(dataset, batch_size=batch_size, num_workers=workers, **kw)
        start, n = time.perf_counter(), 0
        for images, _ in loader:
            n += images.shape[0]
        rates.append(n / (time.perf_counter() - start))
    return rates


def kornia_pipeline(size: int):
    """The same augmentation with kornia.augmentation (None when kornia is not installed)."""
    try:
        import kornia.augmentation as K
    except ImportError:
        return None
    return K.AugmentationSequential(
        K.RandomRotation(180.0, p=1.0),
        K.RandomResizedCrop((size, size), scale=(0.35, 1.0), ratio=(3 / 4, 4 / 3)),
        K.RandomHorizontalFlip(),
        K.RandomVerticalFlip(),
        K.ColorJitter(0.2, 0.2, 0.2, 0.02),
    )


def augment_rate(fn, batches: list[torch.Tensor], repeats: int) -> float:
    fn(batches[0])  # warm-up
    start, n = time.perf_counter(), 0
    for _ in range(repeats):
        for b in batches:
            fn(b)
            n += b.shape[0]
    return n / (time.perf_counter() - start)


def compare_augmentation(args, paths, ids, labels, work: Path) -> None:
    size = args.augment_size
    side = resize_side(size)
    source = build_cache(paths, side, work / f"cache-{size}")
    rows = np.arange(len(paths))
    old_ds = LesionDataset(source, rows, ids, labels, train_transform(size))
    new_ds = old_ds.slices()
    torch.manual_seed(0)
    old = loader_rate(old_ds, args.batch_size, args.workers, args.epochs, shuffle=True)
    new = loader_rate(
        new_ds, args.batch_size, args.workers, args.epochs, shuffle=True, collate_fn=collate_batch
    )
    cores = max(args.workers, 1)
    old_core, new_core = np.mean(old[1:] or old) / cores, np.mean(new[1:] or new) / cores
    print(
        f"\ntraining augmentation at {size} px from the cache ({side} px): "
        f"batch {args.batch_size}, {args.workers} workers (= {cores} core(s))\n"
    )
    print("| loader | " + " | ".join(f"epoch {e} img/s" for e in range(1, args.epochs + 1)) + " |")
    print("|---" * (args.epochs + 1) + "|")
    print(
        "| old: per-image transform (augment=cpu) | " + " | ".join(f"{r:,.0f}" for r in old) + " |"
    )
    print("| new: cache slices (augment=device) | " + " | ".join(f"{r:,.0f}" for r in new) + " |")

    # the augmentation itself, on the CPU as the device (on a GPU it is nearly free)
    batches = [
        collate_batch(new_ds.__getitems__(list(range(k, min(k + args.batch_size, len(rows))))))[0]
        for k in range(0, len(rows), args.batch_size)
    ]
    batches = [b for b in batches if b.shape[0] == args.batch_size] or batches[:1]
    tf, aug = train_transform(size), DeviceAugment(size, seed=0)
    costs = {
        "old: torchvision v2, per image": lambda b: [tf(x) for x in b],
        "new: DeviceAugment (one affine warp + batched colour)": aug,
    }
    kornia = kornia_pipeline(size)
    if kornia is not None:
        costs["kornia.augmentation 0.9 (float batch)"] = lambda b: kornia(b.float().div(255))
    print(f"\n| augmentation on the CPU device, {size} px | img/s | ms/img | vs old |")
    print("|---|---|---|---|")
    rates = {name: augment_rate(fn, batches, args.repeats) for name, fn in costs.items()}
    base = rates["old: torchvision v2, per image"]
    for name, rate in rates.items():
        print(f"| {name} | {rate:,.0f} | {1000 / rate:.2f} | {rate / base:.2f}x |")
    if kornia is None:
        print("(kornia is not installed: pip install kornia to compare it too)")
    print(
        f"\nloader img/s per core at {size}: {new_core:,.0f} vs {old_core:,.0f} "
        f"({new_core / old_core:.1f}x)"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--num-images", type=int, default=300)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--sizes", type=int, nargs="+", default=[64, 224])
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1, as in a worker)")
    ap.add_argument("--work-dir", default=None, help="default: a temporary folder")
    ap.add_argument("--augment-size", type=int, default=224)
    ap.add_argument("--repeats", type=int, default=2, help="passes over the augmented batches")
    ap.add_argument("--skip-decode", action="store_true", help="only the augmentation part")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    work = Path(args.work_dir or tempfile.mkdtemp(prefix="glattn-bench-"))
    for old in work.glob("cache-*"):  # epoch 1 of (b) must include building the cache
        shutil.rmtree(old)
    start = time.perf_counter()
    frame = read_ham10000(ensure_synthetic(work / "data", args.num_images, 600, 450))
    print(
        f"{len(frame)} synthetic 600x450 JPEGs ready in {time.perf_counter() - start:.1f} s "
        f"({work}); batch {args.batch_size}, {args.workers} workers, "
        f"{args.threads} torch threads\n"
    )
    ids, labels, paths = frame["image_id"], frame["label"], frame["path"].tolist()
    if not args.skip_decode:
        compare_decode(args, frame, work)
    compare_augmentation(args, paths, ids, labels, work)


def compare_decode(args, frame, work: Path) -> None:
    rows = np.arange(len(frame))
    ids, labels, paths = frame["image_id"], frame["label"], frame["path"].tolist()
    print(
        "| image size | pipeline | "
        + " | ".join(f"epoch {e} img/s" for e in range(1, args.epochs + 1))
        + " | vs (a) | vs (a0) |"
    )
    print("|---" * (args.epochs + 4) + "|")
    for size in args.sizes:
        side, tf = resize_side(size), eval_transform(size)
        sources = {
            "(a) plain": lambda side=side: DiskImages(paths, side),
            "(a0) plain, no draft": lambda side=side: FullDecode(paths, side),
            "(b) cached": lambda side=side, size=size: build_cache(
                paths, side, work / f"cache-{size}"
            ),
        }
        speed, reference = {}, None
        for name, make in sources.items():
            rates, source = [], None
            for _ in range(args.epochs):
                t0 = time.perf_counter()
                source = make() if source is None else source  # cache build counts in epoch 1
                build = time.perf_counter() - t0
                seconds, batches = run_epoch(
                    LesionDataset(source, rows, ids, labels, tf), args.batch_size, args.workers
                )
                rates.append(len(rows) / (seconds + build))
                if name != "(a0) plain, no draft":
                    if reference is None:
                        reference = batches
                    else:
                        assert all(torch.equal(a, b) for a, b in zip(reference, batches))
            speed[name] = rates
        later = {name: np.mean(rates[1:]) for name, rates in speed.items()}
        for name, rates in speed.items():
            print(
                f"| {size} | {name} | "
                + " | ".join(f"{r:,.0f}" for r in rates)
                + f" | {later[name] / later['(a) plain']:.1f}x"
                + f" | {later[name] / later['(a0) plain, no draft']:.1f}x |"
            )
    print("\ncached and plain tensors identical: yes (asserted)")


if __name__ == "__main__":
    main()
