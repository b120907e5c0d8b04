"""Can these members be fused? `fusion_problem` answers before any training: None, or one
line naming the component and why (the job then runs its members unfused).

Two things break horizontal fusion (arXiv:2102.02344) under `torch.vmap`: an operator with
no batching rule or a data-dependent step (``.item()``, Python control flow on a tensor, an
in-place write into an unbatched tensor, a random op other than drop_path / dropout), found
by a real vmapped forward and backward of two copies on a tiny input; and Python state a
module keeps across calls (a counter, a cached tensor), which one fused call would update
once for all members, found by comparing each module's plain attributes around two calls.
"""

from __future__ import annotations

import copy
import sys
from collections.abc import Sequence

import torch
from torch import nn

from glattn.fused.stack import FusedModel, member_generator

#: nn.Module attributes that are not a component's own Python state
_MODULE_KEYS = {"training", "_parameters", "_buffers", "_modules", "_non_persistent_buffers_set"}


def _python_state(model: nn.Module) -> dict[str, dict]:
    state = {}
    for name, module in model.named_modules():
        own = {}
        for key, value in vars(module).items():
            if key in _MODULE_KEYS or key.endswith("_hooks") or key.startswith("_forward"):
                continue
            if isinstance(value, (int, float, str, bool, tuple, type(None), torch.Tensor)):
                own[key] = value.clone() if isinstance(value, torch.Tensor) else value
        state[name] = own
    return state


def _changed(before: dict, after: dict) -> tuple[str, str] | None:
    for name, own in after.items():
        old = before.get(name, {})
        for key, value in own.items():
            prev = old.get(key, "<absent>")
            same = (
                torch.equal(prev, value)
                if isinstance(value, torch.Tensor) and isinstance(prev, torch.Tensor)
                else prev is value or prev == value
            )
            if not same:
                return name, key
    return None


def _component(model: nn.Module, tb) -> str:
    """The innermost module of `model` on the traceback: the component that failed."""
    names = {id(m): n for n, m in model.named_modules()}
    found = "the model"
    while tb is not None:
        owner = tb.tb_frame.f_locals.get("self")
        if isinstance(owner, nn.Module) and id(owner) in names and names[id(owner)]:
            found = f"{names[id(owner)]} ({type(owner).__name__})"
        tb = tb.tb_next
    return found


def fusion_problem(
    members: Sequence[nn.Module], image_size: int, device: torch.device | str = "cpu"
) -> str | None:
    """None when ``members`` can train as one `FusedModel`, else which component and why."""
    first = members[0]
    for i, other in enumerate(members[1:], 1):
        a = [(n, t.shape) for n, t in first.state_dict().items()]
        b = [(n, t.shape) for n, t in other.state_dict().items()]
        if a != b:
            return f"member {i}'s tensors differ from member 0's (another architecture)"
    x = torch.randn(2, 2, 3, image_size, image_size, device=device)
    copies = [copy.deepcopy(first).to(device).train() for _ in range(2)]
    before = _python_state(copies[0])
    try:
        copies[0](x[0])
    except Exception as exc:  # not fusion's problem: the plain model fails
        return f"the unfused model fails on a tiny input ({type(exc).__name__}: {exc})"
    changed = _changed(before, _python_state(copies[0]))
    if changed:
        name, key = changed
        kind = type(copies[0].get_submodule(name)).__name__ if name else "the model"
        return (
            f"component {name or 'model'} ({kind}) keeps Python state across calls "
            f"(attribute {key!r} changed): one fused call would update it once for all members"
        )
    try:
        fused = FusedModel(copies, [member_generator(s) for s in range(2)], exact=False)
    except Exception as exc:
        return f"the members cannot be stacked ({type(exc).__name__}: {_first_line(exc)})"
    try:
        fused(x).float().sum().backward()
    except Exception as exc:
        where = _component(fused.template, sys.exc_info()[2])
        return (
            f"component {where} cannot run under torch.vmap "
            f"({type(exc).__name__}: {_first_line(exc)})"
        )
    return None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
