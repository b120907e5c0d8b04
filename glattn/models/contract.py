"""The contract probe of the shape-preserving families (local attention, fusion, residual):
build-time check that a component's `forward` returns a tensor of its input's shape through
which gradients flow back to its inputs (glattn.contract.Contract runs it in every build).

The probe runs the built module once, in eval mode, on small deterministic (2, C, 7, 7)
inputs on the module's own device (the meta device included), then backward from the
output's sum; it draws no random numbers and changes no state (BatchNorm statistics stay as
they are, parameters' gradients are put back as they were).
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
        inputs = [t.requires_grad_() for t in probe_inputs(module, channels, n_inputs)]
        params = list(module.parameters())
        grads = [p.grad for p in params]
        was_training = module.training
        module.eval()
        try:
            with torch.enable_grad():
                out = module(*inputs)
                shape = tuple(inputs[0].shape)
                if not isinstance(out, torch.Tensor):
                    kind = type(out).__name__
                    return f"{call} returned {kind}, expected a tensor of shape {shape}"
                if tuple(out.shape) != shape:
                    got = tuple(out.shape)
                    return f"{call} on {shape} inputs returned shape {got}, expected {shape}"
                if not out.requires_grad:
                    return f"{call} returned a tensor without a gradient path to its inputs"
                out.float().sum().backward()
            if all(t.grad is None for t in inputs):
                return f"backward from {call} reached none of its inputs"
        finally:
            module.train(was_training)
            for p, g in zip(params, grads):
                p.grad = g
        return None

    return probe
