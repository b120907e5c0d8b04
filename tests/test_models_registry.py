"""Composing every model option, and clear errors for bad options (the `_target_` extension
point and the contract errors: test_registries)."""

import functools

import pytest
import torch
from conftest import compose_cfg, options
from hydra.errors import MissingConfigException
from hydra.utils import instantiate
from omegaconf import OmegaConf

from glattn.groups import MODEL_GROUPS, TARGET_GROUPS
from glattn.models import GLSABlock, build_model

GROUPS = {name: options(name) for name in MODEL_GROUPS if name in TARGET_GROUPS}


def test_option_files_hold_the_paper_options():
    assert set(GROUPS["attention"]) == {"cbam", "global_only", "none"}
    assert set(GROUPS["fusion"]) == {
        "original",
        "learnable_gate",
        "weighted_add",
        "channel_attn",
        "spatial_attn",
        "cross_attn",
    }
    assert set(GROUPS["residual"]) == {"original", "learnable_gate", "progressive", "drop_path"}
    assert len(GROUPS["backbone"]) == 9


@pytest.mark.parametrize(
    "group,option", [(g, o) for g in GROUPS if g != "backbone" for o in GROUPS[g]]
)
def test_every_option_composes_and_instantiates(group, option):
    cfg = compose_cfg(f"{group}={option}")
    assert OmegaConf.select(cfg, f"{group}._partial_") is True
    factory = instantiate(cfg[group])
    assert isinstance(factory, functools.partial)
    assert factory.func.__module__ == f"glattn.models.{'cbam' if group == 'attention' else group}"
    module = factory(64)  # channels arrive at build time
    x = torch.randn(2, 64, 3, 3, requires_grad=True)
    if group == "attention":
        out = module(x)
    elif group == "fusion":
        out = module(x, torch.randn(2, 64, 3, 3), torch.randn(2, 64, 3, 3))
    else:
        out = module(x, torch.randn(2, 64, 3, 3))
    assert out.shape == x.shape
    out.sum().backward()
    assert x.grad is not None


@pytest.mark.parametrize("option", GROUPS["backbone"])
def test_every_backbone_option_composes(option):
    cfg = compose_cfg(f"backbone={option}")
    factory = instantiate(cfg.backbone)
    assert isinstance(factory, functools.partial) and factory.keywords["name"] == option
    assert cfg.backbone.weights is None


def test_glsa_default_composes():
    cfg = compose_cfg()
    factory = instantiate({k: v for k, v in cfg.glsa.items() if k != "position"})
    assert factory.func is GLSABlock
    assert list(cfg.glsa.position) == ["stride16"]
    assert cfg.glsa.qkv_reduction == 4


@pytest.mark.parametrize("group", sorted(GROUPS))
def test_unknown_option_lists_allowed_names(group):
    with pytest.raises(MissingConfigException) as err:
        compose_cfg(f"{group}=foo")
    message = str(err.value)
    assert "foo" in message
    for name in GROUPS[group]:
        assert name in message


def test_option_without_partial_is_rejected():
    cfg = compose_cfg("residual._partial_=false")
    with pytest.raises(ValueError, match="cfg.residual must set `_partial_: true`"):
        build_model(cfg)


def test_bad_position_lists_allowed_positions():
    cfg = compose_cfg("glsa.position=[stride7]")
    with pytest.raises(ValueError, match=r"glsa.position=\['stride7'\].*layer3, stride16"):
        build_model(cfg)
    cfg = compose_cfg("backbone=vgg11", "glsa.position=[layer3]")
    with pytest.raises(ValueError, match="block4"):
        build_model(cfg)


def test_bad_head_count_names_the_keys():
    cfg = compose_cfg("glsa.num_heads=7")
    with pytest.raises(ValueError, match="glsa.num_heads=7"):
        build_model(cfg)


def test_settings_reach_the_modules():
    cfg = compose_cfg(
        "residual=drop_path",
        "residual.p=0.3",
        "attention.reduction=8",
        "glsa.num_heads=4",
        "glsa.qkv_reduction=2",
    )
    block = build_model(cfg).glsa["layer3"]
    assert block.residual.drop.p == 0.3 and block.residual.drop.mode == "row"
    assert block.local_attention.channel.fc1.out_channels == 256 // 8
    assert block.num_heads == 4 and block.qkv.out_channels == 3 * 128
