"""GLSA classifiers: backbones, the GLSA block, local attention, fusion and residual options."""

from glattn.models.backbones import BACKBONES, build_backbone
from glattn.models.cbam import CBAM, LOCAL_ATTENTION
from glattn.models.fusion import FUSIONS
from glattn.models.glsa import GLSABlock
from glattn.models.net import GLSANet, build_model
from glattn.models.residual import RESIDUALS
from glattn.models.summary import count_flops, describe_model

REGISTRIES = {
    "backbone": BACKBONES,
    "attention": LOCAL_ATTENTION,
    "fusion": FUSIONS,
    "residual": RESIDUALS,
}

__all__ = [
    "BACKBONES",
    "CBAM",
    "FUSIONS",
    "GLSABlock",
    "GLSANet",
    "LOCAL_ATTENTION",
    "REGISTRIES",
    "RESIDUALS",
    "build_backbone",
    "build_model",
    "count_flops",
    "describe_model",
]
