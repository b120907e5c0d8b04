"""Bit-exact fusion on the CPU: `loop_inexact`, which makes the template's modules whose
batched (vmapped) form sums in another order than the plain one run member by member.

Why: under `torch.vmap` a convolution with batched weights becomes one grouped convolution
(the speed of horizontal fusion, arXiv:2102.02344) and a BatchNorm over M members one
M-times-wider BatchNorm. On this machine's CPU (oneDNN, torch 2.14) those sum in another
order than the members' own kernels: grouped convolutions differ by ~3e-7 relative for some
shapes (a ResNet's 3-channel stem, its 1x1 stride-2 shortcut, CBAM's 2-channel 7x7), the
BatchNorm backward by ~1e-6, a mean over channels (CBAM's spatial gate, the spatial_attn
fusion) by ~1e-8; BatchNorm over a small batch and Adam's first, sign-like steps amplify
that to 1e-4 of the loss after two steps. A Linear layer's weight gradient differs too for
some shapes (the ResNet head: 512 -> 7 at batch 8, 1.5e-8, a batched matmul against the
plain one); attention, the loss and the optimizer were bit-identical. So with ``exact``
(``trainer.deterministic``) every convolution, Linear, BatchNorm and those channel-mean
modules run member by member (each member's own kernels: no fusion gain for those layers);
without it they run fused and a member matches its unfused job to fp32 rounding (~1e-6 a
step). A user's module that averages over channels may need adding to ``_CHANNEL_MEANS``.

The loop is a `torch.autograd.Function` with its own vmap rule
(https://pytorch.org/docs/stable/notes/extending.func.html): the rule calls the module's
own forward on each member's slice, so autograd differentiates the members' plain ops and
BatchNorm updates each member's slice of the stacked running statistics in place.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import nn
from torch.func import functional_call

_CLASSES: dict[type, type] = {}
#: modules that average over channels (``x.mean(1)``: another summation order under vmap,
#: found by tests/test_fused_equivalence.py): CBAM's spatial gate, the spatial_attn fusion
_CHANNEL_MEANS = ("SpatialAttention", "SpatialAttnFusion")


class _MemberLoop(torch.autograd.Function):
    generate_vmap_rule = False

    @staticmethod
    def forward(module, names, n_inputs, *tensors):
        raise RuntimeError("a looped module runs only inside the fused (vmapped) forward")

    @staticmethod
    def setup_context(ctx, inputs, output):
        pass

    @staticmethod
    def backward(ctx, *grads):  # never reached: autograd sees the members' own ops
        raise RuntimeError("a looped module runs only inside the fused (vmapped) forward")

    @staticmethod
    def vmap(info, in_dims, module, names, n_inputs, *tensors):
        """``tensors``: the module's ``n_inputs`` inputs, then its parameters and buffers."""

        def member(t, dim, i):
            return t if dim is None else t.select(dim, i)

        dims = in_dims[3:]
        outs = []
        module.in_member_loop = True
        try:
            for i in range(info.batch_size):
                args = [member(t, d, i) for t, d in zip(tensors[:n_inputs], dims[:n_inputs])]
                own = {
                    n: member(t, d, i)
                    for n, t, d in zip(names, tensors[n_inputs:], dims[n_inputs:])
                }
                outs.append(functional_call(module, own, tuple(args)))
        finally:
            module.in_member_loop = False
        return torch.stack(outs), 0


class _Looped:
    """Mixin: ``forward(*inputs)`` of the module class after it, run member by member."""

    in_member_loop = False

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        if self.in_member_loop:
            return super().forward(*inputs)
        names = self.state_names
        tensors = [_get(self, n) for n in names]
        return _MemberLoop.apply(self, names, len(inputs), *inputs, *tensors)


@contextmanager
def plain(template: nn.Module):
    """The looped modules run their plain forward (a meta-device shape probe, no vmap)."""
    looped = [m for m in template.modules() if isinstance(m, _Looped)]
    for module in looped:
        module.in_member_loop = True
    try:
        yield template
    finally:
        for module in looped:
            module.in_member_loop = False


def _get(module: nn.Module, name: str) -> torch.Tensor:
    """The tensor ``a.b.weight`` of ``module`` as functional_call has substituted it."""
    owner, _, leaf = name.rpartition(".")
    return getattr(module.get_submodule(owner) if owner else module, leaf)


def _inexact(module: nn.Module) -> bool:
    if type(module).__name__ in _CHANNEL_MEANS:
        return True
    if isinstance(module, (nn.modules.conv._ConvNd, nn.Linear)):
        return True
    return isinstance(module, nn.modules.batchnorm._BatchNorm)


def loop_inexact(template: nn.Module) -> list[str]:
    """Make the template's convolutions, Linears, BatchNorms and channel-mean modules run
    member by member (in place: same names, same state_dict); their names."""
    names = []
    for name, module in template.named_modules():
        cls = type(module)
        if not _inexact(module) or any(name.startswith(f"{n}.") for n in names):
            continue
        if cls not in _CLASSES:
            _CLASSES[cls] = type(f"MemberLooped{cls.__name__}", (_Looped, cls), {})
        module.__class__ = _CLASSES[cls]
        module.state_names = [*dict(module.named_parameters()), *dict(module.named_buffers())]
        names.append(name)
    return names
