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

    python benchmarks/data_throughput.py [--num-images 300] [--epochs 3] [--sizes 64 224]
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

from glattn.data.cache import DiskImages, build_cache
from glattn.data.datasets import LesionDataset
from glattn.data.ham10000 import read_ham10000
from glattn.data.synthetic import ensure_synthetic
from glattn.data.transforms import eval_transform, normalize, resize_side


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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--num-images", type=int, default=300)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--sizes", type=int, nargs="+", default=[64, 224])
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1, as in a worker)")
    ap.add_argument("--work-dir", default=None, help="default: a temporary folder")
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
