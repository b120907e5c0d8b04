"""The contract probe of the shape-preserving families (local attention, fusion, residual):
build-time check that a component's `forward` returns a tensor of its input's shape.

The probe runs the built module once, in eval mode and without gradients, on small
deterministic (2, C, 7, 7) inputs on the module's own device (the meta device included), so
it draws no random numbers and changes no state (BatchNorm statistics stay as they are).
"""

from __future__ import annotations

import itertools

import torch
from torch import nn

PROBE_SIDE = 7


def _device(module: nn.Module) -> torch.device:
    for t in itertools.chain(module.parameters(), module.buffers()):
        return t.device
    return torch.device("cpu")


def probe_inputs(module: nn.Module, channels: int, n: int) -> list[torch.Tensor]:
    shape = (2, int(channels), PROBE_SIDE, PROBE_SIDE)
    base = torch.linspace(-1.0, 1.0, 2 * int(channels) * PROBE_SIDE**2, device=_device(module))
    base = base.reshape(shape)
    return [base * (0.5 + 0.25 * i) + 0.1 * i for i in range(n)]


def same_shape_probe(call: str, n_inputs: int):
    """A probe for `forward(*n_inputs tensors)` -> a tensor of the first input's shape."""

    def probe(module: nn.Module, channels: int) -> str | None:
        if not isinstance(module, nn.Module):
            return f"the constructor returned {type(module).__name__}, expected a torch nn.Module"
        inputs = probe_inputs(module, channels, n_inputs)
        was_training = module.training
        module.eval()
        try:
            with torch.no_grad():
                out = module(*inputs)
        finally:
            module.train(was_training)
        shape = tuple(inputs[0].shape)
        if not isinstance(out, torch.Tensor):
            return f"{call} returned {type(out).__name__}, expected a tensor of shape {shape}"
        if tuple(out.shape) != shape:
            return f"{call} on {shape} inputs returned shape {tuple(out.shape)}, expected {shape}"
        return None

    return probe
