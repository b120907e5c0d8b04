"""GLSANet: a torchvision backbone with GLSA blocks inserted after chosen trunk stages.

`build_model(cfg)` reads cfg.backbone, cfg.glsa, cfg.attention, cfg.fusion, cfg.residual
(each `_target_` + settings, `_partial_: true`, completed here with channel counts) and
cfg.dataset.num_classes. `attention=none` gives the plain backbone (no GLSA parameters).
Every component, glattn's or a user's (any `_target_`, no registration), is checked against
its family's contract as it is built (its constructor signature, then a probe forward and
backward on a small input): a breach fails here, before data work.
"""

from __future__ import annotations

import functools

import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch import nn

from glattn.contract import Contract
from glattn.groups import MODEL_GROUPS
from glattn.models import backbones as bb
from glattn.models import cbam, fusion, residual
from glattn.models.cbam import NoGLSABlock
from glattn.models.glsa import GLSABlock

DEFAULT_POSITION = ("stride16",)  # the reference code's place: the 14x14 map of a 224 input


class GLSANet(nn.Module):
    """`backbone` (intact torchvision model) + `glsa` (stage name -> GLSABlock)."""

    def __init__(
        self, backbone: nn.Module, blocks: dict[str, nn.Module] | None = None, name: str = ""
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.backbone_name = name or type(backbone).__name__.lower()
        self.family = bb.family(backbone)
        self.glsa = nn.ModuleDict(blocks or {})
        unknown = set(self.glsa) - {s.name for s in bb.stages(backbone)}
        if unknown:
            raise ValueError(f"GLSA blocks at unknown stages {sorted(unknown)}")

    @property
    def gradcam_layer(self) -> nn.Module:
        return bb.gradcam_layer(self.backbone)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        # Stages are re-derived on each call (cheap) rather than stored, so that copies and
        # replicas of the model never run another model's modules.
        for stage in bb.stages(self.backbone):
            x = stage(x)
            if stage.name in self.glsa:
                x = self.glsa[stage.name](x)
        return x  # (B, C, H/32, W/32)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(self.backbone.avgpool(self.forward_features(x)), 1)
        return bb.head(self.backbone)(x)  # (B, num_classes)

    def count_parameters(self) -> dict[str, int]:
        """Parameter counts: total = backbone + glsa + head; glsa includes its attention
        (local attention, e.g. CBAM), fusion and residual parts and the qkv/proj convs."""

        def n(modules) -> int:
            return sum(p.numel() for m in modules for p in m.parameters())

        blocks = list(self.glsa.values())
        head = n([bb.head(self.backbone)])
        return {
            "total": n([self]),
            "backbone": n([self.backbone]) - head,
            "glsa": n(blocks),
            "attention": n([b.local_attention for b in blocks]),
            "fusion": n([b.fusion for b in blocks]),
            "residual": n([b.residual for b in blocks]),
            "head": head,
        }


def _partial(node: DictConfig, key: str) -> functools.partial:
    """Instantiate option `cfg.<key>` (`_target_` + settings) as a partial."""
    if node.get("_partial_") is not True:
        raise ValueError(f"cfg.{key} must set `_partial_: true` (channels arrive at build time)")
    target = node.get("_target_")
    try:
        made = instantiate(node)
    except InstantiationException as err:
        if "Error locating target" not in str(err):
            raise
        raise ValueError(
            f"cfg.{key}._target_={target}: cannot import it ({err.__cause__ or err}); a "
            "module of your own must be on the import path (e.g. PYTHONPATH=<its folder>)"
        ) from err
    return made


def _component(contract: Contract, factory: functools.partial, channels: int) -> nn.Module:
    """`factory(channels)` checked against its family's contract (signature, then a probe)."""
    return contract.build(factory, channels)


def _backbone(cfg: DictConfig) -> tuple[nn.Module, str, str | None]:
    """(model, name, default stage): torchvision's through build_backbone, any other
    `_target_` as a builder checked against the backbone contract (glattn.models.backbones)."""
    made = _partial(cfg.backbone, "backbone")
    num_classes = cfg.dataset.num_classes
    if made.func is bb.build_backbone:
        return made(num_classes=num_classes), cfg.backbone.name, None
    built = bb.BACKBONE_CONTRACT.build(made, num_classes=num_classes, probe_args=(num_classes,))
    return built[0], _backbone_name(cfg), built[1]


def _backbone_name(cfg: DictConfig) -> str:
    """The backbone's option name (hydra.runtime.choices) or its builder's name."""
    choice = OmegaConf.select(cfg, "hydra.runtime.choices.backbone", default=None)
    if choice is None:
        from glattn.config import hydra_config

        hc = hydra_config()
        choice = hc.runtime.choices.get("backbone") if hc is not None else None
    return str(choice or str(cfg.backbone._target_).rsplit(".", 1)[-1])


def resolve_positions(backbone: nn.Module, position, default: str | None = None) -> list[str]:
    """Stage names for `glsa.position` (a name or list of names; null = the seed's place).
    `default`: an extension backbone's own stage for the seed's place (`stride16`)."""
    if position is None:
        position = DEFAULT_POSITION
    wanted = [position] if isinstance(position, str) else list(position)
    names = {}
    for stage in bb.stages(backbone):
        for alias in (stage.name, *stage.aliases):
            names[alias] = stage.name
    names.pop("stem", None)
    if default is not None:
        names[DEFAULT_POSITION[0]] = names.get(default, default)
    bad = [p for p in wanted if p not in names]
    if bad or not wanted:
        raise ValueError(
            f"glsa.position={wanted} is not valid for a {bb.family(backbone)} backbone; "
            f"allowed (one or more): {', '.join(names)}"
        )
    return list(dict.fromkeys(names[p] for p in wanted))


def build_model(cfg: DictConfig) -> GLSANet:
    """The whole classifier from a composed config (conf/config.yaml)."""
    for key in (*MODEL_GROUPS, "dataset"):
        if key not in cfg:
            raise KeyError(f"config has no `{key}` group; compose conf/config.yaml")
    backbone, backbone_name, default_stage = _backbone(cfg)
    attention = _partial(cfg.attention, "attention")
    if attention.func is NoGLSABlock:
        return GLSANet(backbone, name=backbone_name)
    glsa_node = OmegaConf.to_container(cfg.glsa, resolve=True)
    position = glsa_node.pop("position", None)
    block = _partial(OmegaConf.create(glsa_node), "glsa")
    if not (isinstance(block.func, type) and issubclass(block.func, GLSABlock)):
        raise ValueError(f"cfg.glsa._target_ must be {GLSABlock.__module__}.GLSABlock")
    fuse = _partial(cfg.fusion, "fusion")
    add = _partial(cfg.residual, "residual")
    stages = {s.name: s for s in bb.stages(backbone)}
    blocks = {}
    for name in resolve_positions(backbone, position, default_stage):
        c = stages[name].out_channels
        blocks[name] = block(
            channels=c,
            local_attention=_component(cbam.CONTRACT, attention, c),
            fusion=_component(fusion.CONTRACT, fuse, c),
            residual=_component(residual.CONTRACT, add, c),
        )
    return GLSANet(backbone, blocks, name=backbone_name)
