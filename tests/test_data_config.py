"""Every conf/dataset option has the contract's keys and composes (that conf/dataset mirrors
each names its reader with `_target_`: tests/test_registries.py); transforms (torchvision v2) give
normalised tensors of the configured size."""

from pathlib import Path

import pytest
import torch
from conftest import options
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from glattn.data.options import check_options
from glattn.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    eval_transform,
    normalize,
    resize_side,
    train_transform,
)

CONF = Path(__file__).resolve().parents[1] / "conf"
CONTRACT_KEYS = {
    "name",
    "root",
    "image_size",
    "num_classes",
    "val_fraction",
    "test_fraction",
    "folds",
    "fold",
    "split_seed",
    "sampler",
    "eval_split",
    "skip_bad_images",
    "cache",
    "cache_dir",
    "num_workers",
}


def _compose(*overrides):
    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF)):
        return compose("config", overrides=list(overrides))


@pytest.mark.parametrize("name", options("dataset"))
def test_each_option_composes_with_contract_keys(name):
    cfg = _compose(f"dataset={name}", "paths.output_dir=/tmp/x")
    assert CONTRACT_KEYS <= set(cfg.dataset)
    assert cfg.dataset.name == name
    if name != "csv":  # csv: num_classes follows its CSV's labels (tests/test_data_csv.py)
        assert cfg.dataset.num_classes == 7
    if name == "synthetic":
        assert "num_images" in cfg.dataset
        o = check_options(cfg)  # defaults are valid
        assert o.root == "/tmp/x/data" and o.cache_dir == "/tmp/x/cache"


def test_transforms_shapes_normalisation_and_randomness():
    side = resize_side(32)
    assert resize_side(224) == 256
    img = torch.full((3, side, side), 128, dtype=torch.uint8)
    img[:, : side // 2] = 30
    x = eval_transform(32)(img)
    assert x.shape == (3, 32, 32) and x.dtype == torch.uint8  # normalised on the device
    assert torch.equal(x, eval_transform(32)(img))  # deterministic
    flat = normalize(eval_transform(32)(torch.full((3, side, side), 124, dtype=torch.uint8)))
    assert flat.dtype == torch.float32
    for c in range(3):
        expected = (124 / 255 - IMAGENET_MEAN[c]) / IMAGENET_STD[c]
        assert torch.allclose(flat[c], torch.tensor(expected), atol=1e-5)
    batch = torch.stack([x, x])  # (B, 3, H, W) batches normalise per channel the same way
    assert torch.equal(normalize(batch)[1], normalize(x))
    assert normalize(flat) is flat  # float input is already normalised
    torch.manual_seed(0)
    outs = [train_transform(32)(img) for _ in range(4)]
    assert all(o.shape == (3, 32, 32) for o in outs)
    assert not all(torch.equal(outs[0], o) for o in outs[1:])  # augmented


def test_data_roots_come_from_the_environment_per_data_set(monkeypatch):
    """A sweep over dataset=ham10000,isic2018 needs one root per data set."""
    from conftest import compose_cfg

    monkeypatch.delenv("GLATTN_HAM10000_ROOT", raising=False)
    assert compose_cfg("dataset=ham10000").dataset.root is None  # unset: a clear error later
    monkeypatch.setenv("GLATTN_HAM10000_ROOT", "/data/ham")
    monkeypatch.setenv("GLATTN_ISIC2018_ROOT", "/data/isic")
    assert compose_cfg("dataset=ham10000").dataset.root == "/data/ham"
    assert compose_cfg("dataset=isic2018").dataset.root == "/data/isic"
    assert compose_cfg("dataset=isic2018", "dataset.root=/x").dataset.root == "/x"
