"""All 48 attention x fusion x residual GLSA models on resnet18 and vgg11 train.

Each case is built by `build_model` from the composed config. The torchvision backbone is
built once per family and shared (frozen) between cases: building and stepping vgg11's
130M parameters 48 times would dominate the fast tier, while what is under test is the
GLSA block on top of a real trunk.
"""

import itertools

import pytest
import torch
import torch.nn.functional as F
from conftest import compose_cfg, options

from glattn.models import backbones, build_model

# the option lists are the option files (attention=none has no block to combine)
ATTENTIONS = [a for a in options("attention") if a != "none"]
COMBOS = list(itertools.product(ATTENTIONS, options("fusion"), options("residual")))
_TRUNKS: dict[str, torch.nn.Module] = {}


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def shared_trunk(monkeypatch):
    real = backbones.build_backbone

    def cached(name, num_classes, weights=None, download=True):
        assert num_classes == 7 and weights is None
        if name not in _TRUNKS:
            _TRUNKS[name] = real(name, num_classes, weights, download).requires_grad_(False)
        return _TRUNKS[name]

    monkeypatch.setattr(backbones, "build_backbone", cached)


@pytest.mark.parametrize("backbone", ["resnet18", "vgg11"])
@pytest.mark.parametrize("attention,fusion,residual", COMBOS)
def test_combination_trains(backbone, attention, fusion, residual, shared_trunk):
    torch.manual_seed(0)
    cfg = compose_cfg(
        f"backbone={backbone}",
        f"attention={attention}",
        f"fusion={fusion}",
        f"residual={residual}",
    )
    model = build_model(cfg).train()
    assert list(model.glsa) == ["layer3" if backbone == "resnet18" else "block4"]
    params = {n: p for n, p in model.glsa.named_parameters() if p.requires_grad}
    assert params and model.count_parameters()["glsa"] == sum(p.numel() for p in params.values())
    optimizer = torch.optim.AdamW(params.values(), lr=1e-2)
    x = torch.randn(2, 3, 64, 64)
    y = torch.tensor([1, 4])
    got_grad = {n: False for n in params}
    for _ in range(2):  # progressive starts at a=0: the rest of the block gets grads at step 2
        optimizer.zero_grad()
        logits = model(x)
        assert logits.shape == (2, 7) and torch.isfinite(logits).all()
        loss = F.cross_entropy(logits, y)
        loss.backward()
        for n, p in params.items():
            assert p.grad is None or torch.isfinite(p.grad).all(), n
            got_grad[n] |= p.grad is not None and bool(p.grad.abs().sum() > 0)
        optimizer.step()
    missing = [n for n, ok in got_grad.items() if not ok]
    assert not missing, f"GLSA parameters that never got a gradient: {missing}"
