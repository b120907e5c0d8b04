"""trainer.compile (glattn.models.compiled): the mode per device, regional compilation of the
GLSA blocks in place (names and state dict unchanged), and on the CPU the compiled block
computes what the eager block computes (slow tier: compiling takes ~30 s on one core)."""

import copy
import shutil

import pytest
import torch

from glattn import build_model
from glattn.models.compiled import compile_mode, compile_model

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


@pytest.mark.parametrize(
    "value, device, mode",
    [
        ("auto", CUDA, "block"),
        ("auto", CPU, "none"),
        ("block", CPU, "block"),
        ("MODEL", CUDA, "model"),
        ("none", CUDA, "none"),
        (True, CPU, "model"),  # the older boolean setting
        (False, CUDA, "none"),
    ],
)
def test_compile_mode(value, device, mode):
    assert compile_mode(value, device) == mode


def test_compile_mode_names_the_key_and_the_choices():
    with pytest.raises(ValueError, match=r"trainer.compile='fast': expected one of auto, block"):
        compile_mode("fast", CPU)


def test_block_mode_compiles_only_the_glsa_blocks_in_place(compose, monkeypatch):
    model = build_model(compose("debug=smoke"))
    compiled = []
    monkeypatch.setattr(torch.nn.Module, "compile", lambda self, **kw: compiled.append(self))
    keys = list(model.state_dict())
    assert compile_model(model, "block", CPU) is model
    assert compiled == list(model.glsa.values()) and len(compiled) == 1
    assert list(model.state_dict()) == keys  # checkpoints keep their names
    compiled.clear()
    assert compile_model(model, "auto", CPU) is model and not compiled  # eager on a CPU


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("gcc") is None, reason="torch.compile on a CPU needs gcc")
def test_compiled_block_equals_eager_forward_and_backward(compose):
    torch.manual_seed(0)
    model = build_model(compose("debug=smoke"))
    (block,) = model.glsa.values()
    eager = copy.deepcopy(block)
    block.compile()
    channels = next(p for p in block.parameters() if p.ndim == 4).shape[1]
    x = torch.randn(2, channels, 4, 4)
    x1, x2 = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    out, ref = block(x1), eager(x2)
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)
    out.square().sum().backward()
    ref.square().sum().backward()
    torch.testing.assert_close(x1.grad, x2.grad, rtol=1e-4, atol=1e-5)
    for (name, p), q in zip(block.named_parameters(), eager.parameters()):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-4, atol=1e-5, msg=name)


def test_eager_runs_blocks_compiled_in_place_eagerly_and_restores_them(compose):
    model = build_model(compose("debug=smoke"))
    compile_model(model, "block", CPU)  # compiles lazily: nothing is compiled until a call
    (block,) = model.glsa.values()
    compiled = block._compiled_call_impl
    assert compiled is not None
    from glattn.models.compiled import eager

    with eager(model):
        assert block._compiled_call_impl is None
    assert block._compiled_call_impl is compiled
