"""Real-size rehearsal of the data pipeline: a synthetic set of HAM10000's size and format,
then what a first real run would cost before any model computes anything.

The set: 10,015 JPEGs at 600x450 (quality 90), 7,470 lesions, HAM10000's class counts
(nv 6705, mel 1113, bkl 1099, bcc 514, akiec 327, vasc 142, df 115), in the Kaggle layout
(HAM10000_metadata.csv + HAM10000_images_part_1/_2), read by the real HAM10000 reader.
The built-in generator (glattn.data.synthetic.render_lesion/render_image) takes 0.31 s a
lesion plus 0.09 s a 600x450 photograph on this machine (about 54 min of one core for the
set), so it draws a pool of
--pool-lesions lesions per class with 3 photographs each, and every file of the set is one
of its class's pool photographs, shifted (np.roll) and flipped at random and JPEG-encoded
anew: distinct files with the generator's image statistics, so decoding costs what it
would on the generator's own images.

Measured, each phase in a fresh process (so "peak RSS" is that phase's own high-water mark,
torch import included):

  generate     writing the set (--jobs processes)
  cache        reading + checking the metadata, then building the decode-once cache at
               resize_side(224) = 256 px (glattn.data.cache); its bytes on disk
  first batch  build_data + loaders + the first training batch (augmented as the run
               would), with the cache already built; and, side by side, the pipeline
               without the cache (dataset.cache=false: every image decoded per epoch)
  epoch        one epoch of the training loader at 224 (the data pipeline alone, no
               model): cached + augment=device (the default: the loader slices the cache,
               DeviceAugment runs on the training device, here the CPU), cached +
               augment=cpu (per-image torchvision transforms in the loader, the pipeline
               the former default), and cache=false + augment=cpu (no cache at all)

One torch thread, --workers DataLoader workers (default 0), batch 32. The machine's load
average is printed at the start and the end. --tiny runs the same code on 70 images at
80x60 and 32 px in one process (what the test runs); --inline runs phases in-process.

    nice python benchmarks/full_size.py [--root outputs/bench_full_size] [--jobs 2]
        [--workers 0] [--keep] [--tiny] [--inline] [--json results.json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
FULL = {"num_images": 10015, "num_lesions": 7470, "width": 600, "height": 450, "size": 224}
FULL.update(fraction=0.15, floor=1)
#: --tiny: every class needs a few lesions in each of 4 folds (val and test fractions 0.25)
TINY = {"num_images": 100, "num_lesions": 80, "width": 80, "height": 60, "size": 32}
TINY.update(fraction=0.25, floor=6)


# ----------------------------------------------------------------------------- the set
def lesion_plan(num_images: int, num_lesions: int, floor: int = 1) -> list[tuple[str, int]]:
    """(dx, images) per lesion: HAM10000's class counts scaled to num_images, lesions per
    class in proportion, images spread over a class's lesions; every class gets at least
    `floor` lesions (nv absorbs the rounding). At full size the counts are HAM10000's."""
    from glattn.data.classes import CLASS_NAMES, HAM10000_DX_COUNTS

    total = sum(HAM10000_DX_COUNTS.values())
    images = {c: round(num_images * HAM10000_DX_COUNTS[c] / total) for c in CLASS_NAMES}
    images = {c: max(floor, n) for c, n in images.items()}
    images["nv"] += num_images - sum(images.values())
    lesions = {c: round(num_lesions * images[c] / num_images) for c in CLASS_NAMES}
    lesions = {c: min(images[c], max(floor, n)) for c, n in lesions.items()}
    lesions["nv"] += num_lesions - sum(lesions.values())
    plan = []
    for c in CLASS_NAMES:
        base, extra = divmod(images[c], lesions[c])
        plan += [(c, base + (i < extra)) for i in range(lesions[c])]
    return plan


PHOTOS_PER_POOL_LESION = 3
#: {dx: photographs}, set before the writer processes fork (so it is not pickled per task)
_POOL: dict = {}


def _executor(jobs: int):
    import multiprocessing

    if jobs <= 1:
        return _Serial()
    return ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("fork"))


def _pool_lesion(args) -> list[np.ndarray]:
    """Photographs (H, W, 3) uint8 of one generated lesion."""
    from glattn.data.synthetic import _jitter, render_image, render_lesion

    index, dx, width, height = args
    rng = np.random.default_rng([0, index])
    lesion = render_lesion(rng, dx, min(width, height))
    skin = _jitter(rng, (215, 165, 140), 8) * rng.uniform(0.75, 1.1)
    return [
        np.asarray(render_image(rng, lesion, skin, width, height))
        for _ in range(PHOTOS_PER_POOL_LESION)
    ]


def _write_files(args) -> list[tuple]:
    """Write the files of a chunk of lesions, each a varied copy of a pool photograph."""
    from PIL import Image

    from glattn.data.synthetic import LOCALIZATIONS

    chunk, folders = args
    rows = []
    for index, dx, n, first in chunk:
        rng = np.random.default_rng([1, index])
        photos = _POOL[dx]
        site = str(rng.choice(LOCALIZATIONS))
        for k in range(n):
            img = photos[int(rng.integers(len(photos)))]
            img = np.roll(img, tuple(rng.integers(-40, 41, 2)), axis=(0, 1))
            if rng.random() < 0.5:
                img = img[:, ::-1]
            image_id = f"ISIC_{first + k:07d}"
            Image.fromarray(np.ascontiguousarray(img)).save(
                Path(folders[(first + k) % 2]) / f"{image_id}.jpg", quality=90
            )
            rows.append((f"HAM_{index:07d}", image_id, dx, "synthetic", "50", "male", site))
    return rows


def generate(root: Path, p: dict, jobs: int, pool_lesions: int) -> dict:
    import pandas as pd

    from glattn.data.classes import CLASS_NAMES

    if root.exists():
        shutil.rmtree(root)
    folders = [root / "HAM10000_images_part_1", root / "HAM10000_images_part_2"]
    for f in folders:
        f.mkdir(parents=True)
    plan = lesion_plan(p["num_images"], p["num_lesions"], p["floor"])
    lesions, first = [], 0
    for i, (dx, n) in enumerate(plan):
        lesions.append((i, dx, n, first))
        first += n
    pool_tasks = [
        (1000 * c + j, dx, p["width"], p["height"])
        for c, dx in enumerate(CLASS_NAMES)
        for j in range(pool_lesions)
    ]
    chunks = [lesions[i : i + 256] for i in range(0, len(lesions), 256)]
    t0 = time.perf_counter()
    with _executor(jobs) as ex:
        photos = list(ex.map(_pool_lesion, pool_tasks))
    _POOL.clear()
    _POOL.update({dx: [] for dx in CLASS_NAMES})
    for (_, dx, _, _), ims in zip(pool_tasks, photos):
        _POOL[dx] += ims
    pool_s = time.perf_counter() - t0
    tasks = [(chunk, [str(f) for f in folders]) for chunk in chunks]
    with _executor(jobs) as ex:
        rows = [r for part in ex.map(_write_files, tasks) for r in part]
    cols = ["lesion_id", "image_id", "dx", "dx_type", "age", "sex", "localization"]
    pd.DataFrame(rows, columns=cols).to_csv(root / "HAM10000_metadata.csv", index=False)
    seconds = time.perf_counter() - t0
    jpeg_bytes = sum(f.stat().st_size for d in folders for f in d.iterdir())
    return {
        "images": len(rows),
        "lesions": len(plan),
        "seconds": seconds,
        "pool_s": pool_s,
        "pool_photos": len(pool_tasks) * PHOTOS_PER_POOL_LESION,
        "jpeg_bytes": jpeg_bytes,
        "jobs": jobs,
    }


class _Serial:
    """ProcessPoolExecutor's map in this process (--jobs 1)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def map(self, fn, items):
        return map(fn, items)


# ----------------------------------------------------------------------------- pipeline
def data_cfg(root, cache_dir, size: int, cache: bool, augment: str, workers: int, fraction):
    from omegaconf import OmegaConf

    return OmegaConf.create(
        {
            "seed": 0,
            "paths": {"output_dir": str(cache_dir.parent)},
            "dataset": {
                "name": "ham10000",
                "root": str(root),
                "image_size": size,
                "val_fraction": fraction,
                "test_fraction": fraction,
                "cache": cache,
                "cache_dir": str(cache_dir),
                "num_workers": workers,
                "augment": augment,
            },
        }
    )


def _loaders(bundle, batch: int, workers: int, augment: str):
    """Train loader and batch transform for `augment`, whichever loader API is present."""
    import inspect

    from glattn.data.transforms import normalize

    kwargs = {}
    if "augment" in inspect.signature(bundle.loaders).parameters:
        kwargs["augment"] = augment
    loader = bundle.loaders(batch, workers, **kwargs)["train"]
    aug = bundle.augmenter(augment) if hasattr(bundle, "augmenter") and kwargs else None
    return loader, (aug if aug is not None else normalize)


def cache_phase(root: Path, cache_dir: Path, size: int) -> dict:
    from glattn.data.cache import build_cache
    from glattn.data.ham10000 import read_ham10000
    from glattn.data.transforms import resize_side

    if cache_dir.exists():
        shutil.rmtree(cache_dir)
    t0 = time.perf_counter()
    frame = read_ham10000(root)
    read_s = time.perf_counter() - t0
    build_cache(frame["path"].tolist(), resize_side(size), cache_dir)
    seconds = time.perf_counter() - t0 - read_s
    size_bytes = sum(f.stat().st_size for f in cache_dir.rglob("*") if f.is_file())
    return {"read_s": read_s, "seconds": seconds, "cache_bytes": size_bytes}


def first_batch_phase(root, cache_dir, size, cache, augment, workers, fraction, batch=32):
    from glattn.data import build_data

    t0 = time.perf_counter()
    bundle = build_data(data_cfg(root, cache_dir, size, cache, augment, workers, fraction))
    loader, transform = _loaders(bundle, batch, workers, augment)
    images, _ = next(iter(loader))
    x = transform(images)
    seconds = time.perf_counter() - t0
    assert x.shape[-1] == size, x.shape
    return {"seconds": seconds, "train_images": len(bundle.train)}


def epoch_phase(root, cache_dir, size, cache, augment, workers, fraction, batch=32) -> dict:
    from glattn.data import build_data

    bundle = build_data(data_cfg(root, cache_dir, size, cache, augment, workers, fraction))
    loader, transform = _loaders(bundle, batch, workers, augment)
    t0 = time.perf_counter()
    n = 0
    for images, _ in loader:
        x = transform(images)
        n += len(x)
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "images": n, "img_s": n / seconds}


# ----------------------------------------------------------------------------- driver
PIPELINES = [  # (label, cache, augment)
    ("cached, augment=device (default)", True, "device"),
    ("cached, augment=cpu (former default)", True, "cpu"),
    ("cache=false, augment=cpu (no cache)", False, "cpu"),
]


def run_phase(name: str, kwargs: dict) -> dict:
    import torch

    torch.set_num_threads(1)
    fn = {
        "generate": generate,
        "cache": cache_phase,
        "first_batch": first_batch_phase,
        "epoch": epoch_phase,
    }[name]
    out = fn(**kwargs)
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def _phase(name: str, kwargs: dict, inline: bool) -> dict:
    if inline:
        return run_phase(name, kwargs)
    blob = json.dumps({"name": name, "kwargs": {k: str(v) for k, v in kwargs.items()}})
    res = subprocess.run(
        [sys.executable, __file__, "--phase", blob],
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    if res.returncode:
        raise RuntimeError(f"phase {name} failed:\n{res.stderr[-4000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def _typed(kwargs: dict) -> dict:
    out = {}
    for k, v in kwargs.items():
        if k in ("root", "cache_dir"):
            out[k] = Path(v)
        elif k == "p":
            out[k] = json.loads(v.replace("'", '"'))
        elif v in ("True", "False"):
            out[k] = v == "True"
        elif v.isdigit():
            out[k] = int(v)
        elif k == "fraction":
            out[k] = float(v)
        else:
            out[k] = v
    return out


def mb(n: float) -> str:
    return f"{n / 1e6:,.0f} MB" if n >= 1e6 else f"{n / 1e3:,.1f} kB"


def report(res: dict, p: dict, load: tuple) -> str:
    g, c = res["generate"], res["cache"]
    lines = [
        f"{g['images']:,} JPEGs at {p['width']}x{p['height']}, {g['lesions']:,} lesions "
        f"({'HAM10000 class counts' if p is FULL else 'HAM10000 proportions, floored'})"
        f", training at {p['size']} px, batch 32, one torch thread; load average "
        f"{load[0]:.1f} at the start, {load[1]:.1f} at the end",
        "",
        "| phase | time | peak RSS | size |",
        "|---|---|---|---|",
        f"| generate the set ({g['jobs']} processes; {g['pool_photos']} generator photographs "
        f"in {g['pool_s']:.0f} s, then the files) | {g['seconds']:.0f} s | "
        f"{g['peak_rss_mb']:,.0f} MB | {mb(g['jpeg_bytes'])} of JPEGs |",
        f"| read + check the metadata | {c['read_s']:.1f} s | | |",
        f"| build the image cache ({res['side']} px) | {c['seconds']:.0f} s | "
        f"{c['peak_rss_mb']:,.0f} MB | {mb(c['cache_bytes'])} cache |",
    ]
    for label, _, _ in PIPELINES:
        fb = res["first_batch"].get(label)
        if fb:
            lines.append(
                f"| time to the first training batch, {label} | {fb['seconds']:.1f} s | "
                f"{fb['peak_rss_mb']:,.0f} MB | |"
            )
    base = res["epoch"].get(PIPELINES[1][0])
    for label, _, _ in PIPELINES:
        ep = res["epoch"].get(label)
        if ep:
            ratio = f", {ep['img_s'] / base['img_s']:.2f}x of cached+cpu" if base else ""
            lines.append(
                f"| one training epoch, data only, {label} | {ep['seconds']:.0f} s "
                f"({ep['img_s']:,.0f} img/s{ratio}) | {ep['peak_rss_mb']:,.0f} MB | |"
            )
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", type=Path, default=ROOT / "outputs" / "bench_full_size")
    ap.add_argument("--jobs", type=int, default=2, help="processes generating the set")
    ap.add_argument("--pool-lesions", type=int, default=6, help="generated lesions a class")
    ap.add_argument("--workers", type=int, default=0, help="DataLoader workers")
    ap.add_argument("--tiny", action="store_true", help="100 small images (tests)")
    ap.add_argument(
        "--images", type=int, default=None, help="a dry run: this many full-size images"
    )
    ap.add_argument("--inline", action="store_true", help="phases in this process")
    ap.add_argument("--keep", action="store_true", help="keep the generated set and cache")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here")
    ap.add_argument("--phase", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.phase:  # a child process: one phase, its result as the last stdout line
        spec = json.loads(args.phase)
        print(json.dumps(run_phase(spec["name"], _typed(spec["kwargs"]))))
        return 0
    from glattn.data.transforms import resize_side

    p = TINY if args.tiny else FULL
    if args.images and not args.tiny:  # same shape, fewer images (lesions in proportion)
        p = {**FULL, "num_images": args.images, "floor": 6}
        p["num_lesions"] = round(args.images * FULL["num_lesions"] / FULL["num_images"])
    inline = args.inline or args.tiny
    data, cache = args.root / "HAM10000", args.root / "cache"
    load0 = os.getloadavg()[0]
    print(f"load average at start: {load0:.2f}", flush=True)
    res = {"side": resize_side(p["size"]), "first_batch": {}, "epoch": {}}
    gen = {"root": data, "p": p, "jobs": args.jobs, "pool_lesions": args.pool_lesions}
    res["generate"] = _phase("generate", gen, inline)
    print(f"generate: {res['generate']}", flush=True)
    res["cache"] = _phase("cache", {"root": data, "cache_dir": cache, "size": p["size"]}, inline)
    print(f"cache: {res['cache']}", flush=True)
    for label, use_cache, augment in PIPELINES:
        kw = dict(root=data, cache_dir=cache, size=p["size"], cache=use_cache)
        kw.update(augment=augment, workers=args.workers, fraction=p["fraction"])
        res["first_batch"][label] = _phase("first_batch", kw, inline)
        res["epoch"][label] = _phase("epoch", kw, inline)
        print(f"{label}: {res['first_batch'][label]} {res['epoch'][label]}", flush=True)
    load1 = os.getloadavg()[0]
    res["load"] = [load0, load1]
    print()
    print(report(res, p, (load0, load1)))
    if args.json:
        args.json.write_text(json.dumps(res, indent=1, default=str))
    if not args.keep:
        shutil.rmtree(args.root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
