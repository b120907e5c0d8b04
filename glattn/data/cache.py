"""Decode-once image cache. Decoding 600x450 JPEGs every epoch dominates a small model's
step time, so each image is decoded once at reduced size (Pillow's JPEG draft mode: the
DCT scales by 1/2, 1/4, 1/8 while decoding), resized and centre-cropped to a square of
`side` pixels, and stored as one uint8 array (N, side, side, 3) in a .npy file that every
epoch, DataLoader worker and later run memory-maps.

The cache folder is named by a hash of the sources (path, size, mtime of every file, in
order) and `side`, so a changed or replaced source file gives a new folder (rebuilt);
unchanged sources reuse it across runs. Building is safe when many processes start at
once (see glattn.data._atomic). Images that fail to decode are marked in index.csv; the
caller fails or skips them (dataset.skip_bad_images).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageOps

from glattn.data._atomic import build_once
from glattn.logging_utils import Progress

log = logging.getLogger(__name__)

CACHE_VERSION = 1  # bump when decode() changes


def decode(path: str | os.PathLike, side: int) -> np.ndarray:
    """(side, side, 3) uint8: shorter side resized to `side`, centre crop (draft decode)."""
    with Image.open(path) as im:
        w, h = im.size
        f = side / min(w, h)
        im.draft("RGB", (math.ceil(w * f), math.ceil(h * f)))  # result stays >= requested
        im = ImageOps.fit(im.convert("RGB"), (side, side), method=Image.BILINEAR)
    return np.asarray(im, dtype=np.uint8)


def scan(paths: Sequence[str], fn: Callable[[int, str], None], what: str) -> dict[int, str]:
    """Run fn(i, path) over all paths on a thread pool (Pillow decodes without the GIL);
    returns {index: error message} for the images that could not be decoded."""
    errors: dict[int, str] = {}

    def work(item):
        i, p = item
        try:
            fn(i, p)
        except Exception as e:  # noqa: BLE001 - any decode failure marks the image bad
            errors[i] = f"{type(e).__name__}: {e}"

    threads = max(1, min(8, os.cpu_count() or 1))
    with ThreadPoolExecutor(threads) as pool, Progress(len(paths), what, logger=log) as bar:
        for _ in pool.map(work, enumerate(paths)):
            bar.update()
    return errors


def cache_key(paths: Sequence[str], side: int) -> str:
    stats = []
    for p in paths:
        st = os.stat(p)
        stats.append((str(p), st.st_size, st.st_mtime_ns))
    blob = json.dumps([CACHE_VERSION, side, stats]).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


class DiskImages:
    """Uncached source: decodes the file on every access (same pixels as the cache)."""

    def __init__(self, paths: Sequence[str], side: int):
        self.paths, self.side = list(paths), side

    def __len__(self) -> int:
        return len(self.paths)

    def get(self, i: int) -> np.ndarray:
        return decode(self.paths[i], self.side)

    def find_bad(self) -> dict[int, str]:
        """Decode every image once at 1/8 scale (cheap) to find unreadable ones up front."""
        return scan(self.paths, lambda i, p: decode(p, 8), "checking images")


class CachedImages:
    """Cached source: rows of a memory-mapped (N, side, side, 3) uint8 array."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.index = pd.read_csv(self.folder / "index.csv", keep_default_na=False)
        self.side = int(json.loads((self.folder / "meta.json").read_text())["side"])
        self._array: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.index)

    def __getstate__(self):  # DataLoader workers re-open the map instead of pickling it
        return {**self.__dict__, "_array": None}

    def get(self, i: int) -> np.ndarray:
        if self._array is None:
            self._array = np.load(self.folder / "images.npy", mmap_mode="r")
        return self._array[i]

    def find_bad(self) -> dict[int, str]:
        bad = self.index[self.index["error"] != ""]
        return dict(zip(bad.index.tolist(), bad["error"]))


def build_cache(paths: Sequence[str], side: int, cache_dir: str | os.PathLike) -> CachedImages:
    """The cache of `paths` at `side` px under cache_dir, built now if absent."""
    paths = [str(p) for p in paths]
    final = Path(cache_dir) / f"images-{side}px-{cache_key(paths, side)}"
    if final.is_dir():
        log.info("image cache: reusing %s", final)

    def build(tmp: Path) -> None:
        start = time.perf_counter()
        array = np.lib.format.open_memmap(
            tmp / "images.npy", mode="w+", dtype=np.uint8, shape=(len(paths), side, side, 3)
        )

        def store(i: int, p: str) -> None:
            array[i] = decode(p, side)

        errors = scan(paths, store, f"building image cache {final.name}")
        array.flush()
        array = None  # release the memmap before the folder is renamed
        pd.DataFrame(
            {"path": paths, "error": [errors.get(i, "") for i in range(len(paths))]}
        ).to_csv(tmp / "index.csv", index=False)
        (tmp / "meta.json").write_text(json.dumps({"side": side, "version": CACHE_VERSION}))
        log.info(
            "image cache: %d images at %d px in %.1f s -> %s",
            len(paths),
            side,
            time.perf_counter() - start,
            final,
        )

    return CachedImages(build_once(final, build))
