"""Decode-once cache: same tensors as decoding every time, reused when sources are
unchanged, rebuilt when one changes, safe with concurrent builders, works in workers."""

import multiprocessing as mp
import os

import numpy as np
import pytest
import torch
from fake_datasets import make_ham10000, write_jpeg
from omegaconf import OmegaConf

from glattn.data import build_data
from glattn.data import cache as cache_mod
from glattn.data.cache import CachedImages, DiskImages, build_cache, decode


@pytest.fixture
def jpegs(tmp_path):
    paths = []
    for i in range(6):
        p = tmp_path / "img" / f"ISIC_{i:07d}.jpg"
        write_jpeg(p, i % 7, size=(60, 45), seed=i)
        paths.append(str(p))
    return paths


def test_decode_shape_and_draft_keeps_the_pixels_close(jpegs):
    from PIL import Image

    img = decode(jpegs[0], 20)
    assert img.shape == (20, 20, 3) and img.dtype == np.uint8
    full = np.asarray(Image.open(jpegs[0]).convert("RGB").resize((27, 20)))[:, 3:23]
    assert np.abs(img.astype(int) - full.astype(int)).mean() < 12


def test_cached_equals_uncached(jpegs, tmp_path):
    cached, disk = build_cache(jpegs, 20, tmp_path / "cache"), DiskImages(jpegs, 20)
    for i in range(len(jpegs)):
        assert np.array_equal(cached.get(i), disk.get(i))


def test_cache_is_reused_without_decoding(jpegs, tmp_path, monkeypatch):
    first = build_cache(jpegs, 20, tmp_path / "cache")
    monkeypatch.setattr(cache_mod, "decode", lambda *a: (_ for _ in ()).throw(RuntimeError))
    second = build_cache(jpegs, 20, tmp_path / "cache")
    assert second.folder == first.folder
    assert np.array_equal(second.get(3), first.get(3))


def test_cache_rebuilt_when_a_source_changes(jpegs, tmp_path):
    first = build_cache(jpegs, 20, tmp_path / "cache")
    before = np.array(first.get(2))
    write_jpeg(jpegs[2], 0, size=(60, 45), seed=99)  # new content ...
    st = os.stat(jpegs[2])
    os.utime(jpegs[2], ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # ... and a new mtime
    second = build_cache(jpegs, 20, tmp_path / "cache")
    assert second.folder != first.folder
    assert np.array_equal(second.get(2), decode(jpegs[2], 20))
    assert not np.array_equal(second.get(2), before)
    assert build_cache(jpegs, 24, tmp_path / "cache").folder != second.folder  # size in key


def _build(args):
    paths, side, cache_dir = args
    return str(build_cache(paths, side, cache_dir).folder)


def test_concurrent_builders_share_one_cache(jpegs, tmp_path):
    with mp.get_context("fork").Pool(3) as pool:
        folders = pool.map(_build, [(jpegs, 20, str(tmp_path / "cache"))] * 3)
    assert len(set(folders)) == 1
    entries = [p for p in os.listdir(tmp_path / "cache") if not p.startswith(".")]
    assert entries == [os.path.basename(folders[0])]  # no half-built or duplicate folders
    assert not [p for p in os.listdir(tmp_path / "cache") if ".tmp-" in p]
    cached = CachedImages(folders[0])
    assert all(np.array_equal(cached.get(i), decode(p, 20)) for i, p in enumerate(jpegs))


def bundle_for(tmp_path, cache, **extra):
    cfg = OmegaConf.create(
        {
            "seed": 0,
            "paths": {"output_dir": str(tmp_path)},
            "dataset": dict(
                name="ham10000",
                root=str(tmp_path / "data"),
                image_size=16,
                val_fraction=0.25,
                test_fraction=0.25,
                cache=cache,
                cache_dir=str(tmp_path / "cache"),
                **extra,
            ),
        }
    )
    return build_data(cfg)


def test_bundle_tensors_cached_equal_uncached(tmp_path):
    make_ham10000(tmp_path / "data", lesions_per_class=6, size=(40, 30))
    a, b = bundle_for(tmp_path, True), bundle_for(tmp_path, False)
    assert isinstance(a.train.source, CachedImages) and isinstance(b.train.source, DiskImages)
    for split in ("train", "val", "test"):
        da, db = getattr(a, split), getattr(b, split)
        assert da.image_ids == db.image_ids
        for k in range(len(da)):
            torch.manual_seed(k)  # same random augmentation draw for the train split
            xa, ya = da[k]
            torch.manual_seed(k)
            xb, yb = db[k]
            assert ya == yb and torch.equal(xa, xb)


def test_loader_workers_read_the_memory_map(tmp_path):
    make_ham10000(tmp_path / "data", lesions_per_class=6)
    bundle = bundle_for(tmp_path, True)
    workers = bundle.loaders(8, num_workers=1)["val"]
    plain = bundle.loaders(8, num_workers=0)["val"]
    for (xa, ya), (xb, yb) in zip(workers, plain):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
