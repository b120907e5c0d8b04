"""M same-shaped models trained as one stacked model: `FusedModel`.

Horizontal fusion (Wang et al., "Horizontally Fused Training Array", MLSys 2021,
arXiv:2102.02344): the members' parameters and buffers are stacked along a new leading
dimension and one `torch.func.functional_call` of a stateless template runs under
`torch.vmap`, so a convolution with batched weights is one grouped convolution and a
BatchNorm updates each member's running statistics in its own slice (the buffers are batched
too, which is what torch.func's "Patching Batch Norm" note asks for).

Each member module keeps its own `nn.Parameter` objects, whose storage is re-pointed to its
slice of the stacked tensor: a member's `torch.optim` optimizer, scheduler, grad clipping and
`load_state_dict` act on its slice in place, so the optimizer update of a member *is*
``torch.optim.AdamW``/``SGD`` applied to that member (see glattn/fused/__init__.py).

Randomness inside the forward: `torchvision.ops.StochasticDepth` and `nn.Dropout` are
replaced in the template by `MemberNoise`, whose mask each member draws from its own
`torch.Generator` before the vmapped call; any other random op fails the fusion check
(``vmap(randomness="error")``), and the job runs unfused.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, vmap
from torchvision.ops import StochasticDepth

from glattn.fused.exact import loop_inexact, plain


def member_generator(seed: int, device: str | torch.device = "cpu") -> torch.Generator:
    """The generator of member ``seed``'s in-model random draws (drop_path, dropout): a
    stream of its own, the same for the same seed, unrelated to the data streams."""
    state = np.random.SeedSequence([int(seed), 0x6C5A]).generate_state(2, dtype=np.uint32)
    return torch.Generator(device).manual_seed(int(state[0]) << 32 | int(state[1]))


class MemberNoise(nn.Module):
    """A drop_path / dropout whose mask arrives as the buffer ``mask`` (one per member,
    drawn outside vmap from the member's own generator). ``row``: one draw per sample
    (Stochastic Depth, Huang et al. 2016, arXiv:1603.09382); ``elem``: one per element
    (dropout, Srivastava et al. 2014)."""

    def __init__(self, p: float, kind: str) -> None:
        super().__init__()
        self.p, self.kind = float(p), kind
        self.register_buffer("mask", None, persistent=False)
        self.seen_shape: torch.Size | None = None  # set by a meta-device shape probe

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        if self.mask is None:  # the shape probe on the meta device
            self.seen_shape = x.shape
            return x
        return x * self.mask

    def draw(self, shape: torch.Size, generator: torch.Generator) -> torch.Tensor:
        """One member's mask, scaled by 1/(1-p) as StochasticDepth and Dropout do."""
        keep = 1.0 - self.p
        if self.kind == "row":
            shape = torch.Size([shape[0]] + [1] * (len(shape) - 1))
        elif self.kind == "batch":
            shape = torch.Size([1] * len(shape))
        mask = torch.empty(shape, device=generator.device).bernoulli_(keep, generator=generator)
        return mask.div_(keep) if keep > 0.0 else mask


def _noise_for(module: nn.Module) -> MemberNoise | None:
    if isinstance(module, StochasticDepth) and module.mode in ("row", "batch"):
        return MemberNoise(module.p, "row" if module.mode == "row" else "batch")
    if type(module) is nn.Dropout:
        return MemberNoise(module.p, "elem")
    return None


def _replace_noise(template: nn.Module) -> list[str]:
    """Swap the template's StochasticDepth / Dropout for `MemberNoise`; their names."""
    names = []
    for name, module in list(template.named_modules()):
        for child_name, child in list(module.named_children()):
            noise = _noise_for(child)
            if noise is not None:
                setattr(module, child_name, noise)
                names.append(f"{name}.{child_name}" if name else child_name)
    return names


class FusedModel:
    """``members`` (same architecture, same parameter shapes) as one vmapped model.

    ``model(x)`` takes ``x`` of shape (M, B, ...) and returns (M, B, ...) outputs, member i
    on ``x[i]``. ``active[i] = False`` masks member i out: its slice is computed but its
    BatchNorm statistics are put back after each training forward (its parameters change
    only when its own optimizer steps, which the trainer no longer does)."""

    def __init__(
        self,
        members: Sequence[nn.Module],
        generators: Sequence[torch.Generator],
        exact: bool = True,
    ):
        if len(members) != len(generators):
            raise ValueError("one generator per member")
        self.members = list(members)
        self.generators = list(generators)
        self.active = [True] * len(members)
        self.range = range(len(members))
        self.training = True
        self.template = copy.deepcopy(members[0]).to("meta")  # stateless: no memory
        noise = _replace_noise(self.template)
        self.noise = {name: self.template.get_submodule(name) for name in noise}
        # exact: bit-identical to the unfused members on the CPU (glattn.fused.exact)
        self.looped = loop_inexact(self.template) if exact else []
        self.params = self._stack(lambda m: m.named_parameters(), grad=True)
        self.buffers = self._stack(lambda m: m.named_buffers(), grad=False)
        self._shapes: dict[torch.Size, dict[str, torch.Size]] = {}

    def _stack(self, named, grad: bool) -> dict[str, torch.Tensor]:
        tables = [dict(named(m)) for m in self.members]
        names = list(tables[0])
        for i, table in enumerate(tables[1:], 1):
            if list(table) != names or any(table[n].shape != tables[0][n].shape for n in names):
                raise ValueError(f"member {i} does not have member 0's tensor names and shapes")
        stacked = {}
        for name in names:
            tensor = torch.stack([t[name].detach() for t in tables])
            stacked[name] = tensor.requires_grad_(grad and tables[0][name].requires_grad)
            for i, table in enumerate(tables):  # the member's own tensor is now a slice
                table[name].data = stacked[name].detach()[i]
        return stacked

    def train(self, mode: bool = True) -> FusedModel:
        self.training = mode
        self.template.train(mode)
        for member in self.members:
            member.train(mode)
        return self

    def eval(self) -> FusedModel:
        return self.train(False)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        buffers = dict(self.buffers)
        if self.training and self.noise:
            buffers.update(self._masks(x.shape[1:]))
        frozen = [i for i, on in enumerate(self.active) if not on] if self.training else []
        saved = {n: b[frozen].clone() for n, b in self.buffers.items()} if frozen else {}

        def one(params, buffers, xi):
            return functional_call(self.template, (params, buffers), (xi,))

        out = vmap(one, randomness="error")(self.params, buffers, x)
        # a masked member's statistics do not move: put back after backward (BatchNorm's
        # backward checks that its running statistics were not modified in place)
        self._frozen = (frozen, saved) if frozen else None
        return out

    def _masks(self, shape: torch.Size) -> dict[str, torch.Tensor]:
        """Each noise module's mask, (M, *its input shape), member i's from generator i
        (members masked out draw nothing: their stream stays where their run stopped)."""
        shapes = self._shapes.get(shape)
        if shapes is None:
            with torch.no_grad(), plain(self.template):
                self.template(torch.empty(shape, device="meta"))  # records the noise inputs
            shapes = {name: mod.seen_shape for name, mod in self.noise.items()}
            self._shapes[shape] = shapes
        device = next(iter(self.params.values())).device
        out = {}
        for name, mod in self.noise.items():
            draws = [
                mod.draw(shapes[name], gen) if on else None
                for gen, on in zip(self.generators, self.active)
            ]
            like = next((d for d in draws if d is not None), None)
            if like is None:
                like = torch.ones(shapes[name])
            draws = [torch.ones_like(like) if d is None else d for d in draws]
            out[f"{name}.mask"] = torch.stack(draws).to(device)
        return out

    def zero_grad(self) -> None:
        for tensor in self.params.values():
            tensor.grad = None
        for member in self.members:
            member.zero_grad(set_to_none=True)

    def share_grads(self) -> None:
        """After backward: each member parameter's ``.grad`` is its slice of the stacked
        gradient (so its own optimizer and clipping see exactly its gradient)."""
        for i, member in enumerate(self.members):
            for name, param in member.named_parameters():
                grad = self.params[name].grad
                param.grad = None if grad is None else grad[i]
        self.restore_masked()

    def restore_masked(self) -> None:
        """Put back the BatchNorm statistics of the members masked out of the last step."""
        if getattr(self, "_frozen", None):
            frozen, saved = self._frozen
            with torch.no_grad():
                for name, old in saved.items():
                    self.buffers[name][frozen] = old
        self._frozen = None

    def member_state_dict(self, i: int) -> dict[str, torch.Tensor]:
        """Member i's state_dict as its own tensors (a slice would save the whole stack)."""
        return {k: v.clone() for k, v in self.members[i].state_dict().items()}
