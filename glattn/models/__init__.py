"""GLSA classifiers: backbones, the GLSA block, local attention, fusion and residual options."""

from glattn.models.backbones import build_backbone
from glattn.models.cbam import CBAM
from glattn.models.glsa import GLSABlock
from glattn.models.net import GLSANet, build_model
from glattn.models.summary import count_flops, describe_model

__all__ = [
    "CBAM",
    "GLSABlock",
    "GLSANet",
    "build_backbone",
    "build_model",
    "count_flops",
    "describe_model",
]
