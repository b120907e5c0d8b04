"""``trainer.compile``: torch.compile of the GLSA blocks alone (regional compilation), the whole
model, or nothing.

Regional compilation (https://pytorch.org/tutorials/recipes/regional_compilation.html)
compiles the repeated or custom part of a model and leaves the rest eager: here the GLSA
block, whose many small kernels (1x1 convs, head reshapes, attention, CBAM's pools and
sigmoids, the fusion's elementwise ops) are where the block's step time exceeds its FLOPs
(measured on an H200: 1.22x the step of attention=none on resnet18 against 1.06x in FLOPs), while
torchvision's backbone is already a few large cuDNN kernels. ``nn.Module.compile()``
compiles in place, so parameter names, state dicts and checkpoints do not change.

    auto   block on CUDA, none elsewhere (the default: compiling pays on a GPU; on a CPU the
           compile time is rarely won back in a short run)
    block  every GLSA block (model.glsa) compiled in place
    model  torch.compile(model) (the returned wrapper keeps the model as ``_orig_mod``)
    none   eager

``true``/``false`` (the older boolean setting) mean ``model``/``none``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from glattn.schema import TrainerSchema, choices_of

#: the named modes of ``trainer.compile``, from its declaration (true/false also allowed)
COMPILE_MODES = tuple(c for c in choices_of(TrainerSchema, "compile") if isinstance(c, str))


def compile_mode(value, device: torch.device) -> str:
    """The effective mode (block | model | none) of a ``trainer.compile`` value on `device`;
    ValueError naming the key, the value and the choices for anything else."""
    if isinstance(value, bool):
        return "model" if value else "none"
    mode = str(value).lower()
    if mode not in COMPILE_MODES:
        raise ValueError(
            f"trainer.compile={value!r}: expected one of {', '.join(COMPILE_MODES)} "
            "(or true/false: model/none)"
        )
    if mode == "auto":
        return "block" if device.type == "cuda" else "none"
    return mode


def compile_model(model: nn.Module, value, device: torch.device) -> nn.Module:
    """`model` with ``trainer.compile=value`` applied (see the module docstring)."""
    mode = compile_mode(value, device)
    if mode == "model":
        return torch.compile(model)
    if mode == "block":
        for block in getattr(model, "glsa", {}).values():
            block.compile()
    return model


@contextmanager
def eager(model: nn.Module) -> Iterator[nn.Module]:
    """Run the modules compiled in place (block mode) eagerly inside the block: one-off
    passes such as the Grad-CAM grid's (new shapes, forward and tensor hooks) would each
    recompile, seconds on a GPU, for a pass that runs once. ``nn.Module.compile`` keeps the
    compiled callable in ``_compiled_call_impl``; None means eager."""
    saved = []
    for module in model.modules():
        if getattr(module, "_compiled_call_impl", None) is not None:
            saved.append((module, module._compiled_call_impl))
            module._compiled_call_impl = None
    try:
        yield model
    finally:
        for module, impl in saved:
            module._compiled_call_impl = impl
