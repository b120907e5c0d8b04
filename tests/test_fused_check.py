"""Components that cannot be fused are found before training, with one
line naming the component and why; the user's own fusion from examples/extending/ fuses
(and trains bit-identically to its unfused runs)."""

import pytest
import torch
import torch.nn.functional as F
from conftest import ROOT, compose_cfg
from torch import nn

from glattn.fused.check import fusion_problem
from glattn.fused.stack import FusedModel, member_generator
from glattn.models import build_model

pytestmark = pytest.mark.usefixtures("one_thread")


def _model(*overrides, seed=0):
    torch.manual_seed(seed)
    return build_model(compose_cfg("dataset.image_size=32", *overrides)).train()


class CountingFusion(nn.Module):
    """Python state across calls: a step counter that gates the output."""

    def __init__(self):
        super().__init__()
        self.calls = 0

    def forward(self, A, L, x):
        self.calls += 1
        return A * L if self.calls > 1 else A


class DataDependentFusion(nn.Module):
    """A data-dependent step: `.item()` has no batching rule under vmap."""

    def forward(self, A, L, x):
        return A * L if A.mean().item() > 0 else A + L


def _with_fusion(fusion):
    model = _model()
    (block,) = model.glsa.values()
    block.fusion = fusion
    return model


def test_built_in_components_fuse():
    assert fusion_problem([_model(seed=0), _model(seed=1)], 32) is None


def test_python_state_is_named():
    problem = fusion_problem([_with_fusion(CountingFusion()) for _ in range(2)], 32)
    assert "glsa.layer3.fusion (CountingFusion) keeps Python state" in problem
    assert "'calls'" in problem and "\n" not in problem


def test_missing_batching_rule_is_named():
    problem = fusion_problem([_with_fusion(DataDependentFusion()) for _ in range(2)], 32)
    assert problem.startswith("component glsa.layer3.fusion (DataDependentFusion) cannot run")
    assert "torch.vmap" in problem and "\n" not in problem


def test_different_architectures_refused():
    problem = fusion_problem([_model(), _model("fusion=learnable_gate")], 32)
    assert "member 1's tensors differ" in problem


@pytest.fixture
def gated_conv(monkeypatch):
    """examples/extending/my_fusions.py importable, its option folder on the search path."""
    monkeypatch.syspath_prepend(str(ROOT / "examples" / "extending"))
    yield f"hydra.searchpath=[file://{ROOT / 'examples' / 'extending' / 'my_conf'}]"


def test_users_own_fusion_is_fused(gated_conv):
    models = [_model(gated_conv, "fusion=gated_conv", seed=s) for s in (0, 1, 2)]
    assert type(models[0].glsa["layer3"].fusion).__name__ == "GatedConvFusion"
    assert fusion_problem(models, 32) is None
    alone = [_model(gated_conv, "fusion=gated_conv", seed=s) for s in (0, 1, 2)]
    torch.use_deterministic_algorithms(True)
    try:
        x, y = torch.randn(3, 4, 3, 32, 32), torch.randint(0, 7, (3, 4))
        fused = FusedModel(models, [member_generator(s) for s in (0, 1, 2)]).train()
        out = fused(x)
        torch.stack([F.cross_entropy(out[i], y[i]) for i in range(3)]).sum().backward()
        for i, model in enumerate(alone):
            ref = model(x[i])
            F.cross_entropy(ref, y[i]).backward()
            assert torch.equal(out[i].detach(), ref.detach())  # exact=True: bit-identical
            gate = model.glsa["layer3"].fusion.gate.weight
            assert torch.equal(fused.params["glsa.layer3.fusion.gate.weight"].grad[i], gate.grad)
    finally:
        torch.use_deterministic_algorithms(False)
