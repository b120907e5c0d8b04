"""GLSA classifiers: backbones, the GLSA block, local attention, fusion and residual options."""

import importlib
import logging

from glattn import groups
from glattn.models.backbones import BACKBONES, build_backbone
from glattn.models.cbam import CBAM, LOCAL_ATTENTION
from glattn.models.fusion import FUSIONS
from glattn.models.glsa import GLSABlock
from glattn.models.net import GLSANet, build_model
from glattn.models.residual import RESIDUALS
from glattn.models.summary import count_flops, describe_model

#: The model groups' registries (glattn.groups.MODEL_GROUPS with a registry).
REGISTRIES = {g: groups.load_registry(g) for g in groups.MODEL_GROUPS if groups.group(g).registry}

log = logging.getLogger(__name__)


def references(group: str, targets=()) -> dict[str, str]:
    """{option: reference string} of a model family's registry, for the report's tables.
    `targets`: `_target_`s of logged runs; their modules are imported first (an extension
    registers itself on import), skipping any that cannot be imported here."""
    for target in targets:
        module = str(target).rpartition(".")[0]
        if module:
            try:
                importlib.import_module(module)
            except Exception as err:  # the report still shows the run, without a reference
                log.warning("cannot import %s for its %s reference: %s", module, group, err)
    return {name: ref for name, ref in REGISTRIES[group].references().items() if ref}


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
    "references",
]
