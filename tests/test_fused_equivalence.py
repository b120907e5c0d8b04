"""M members fused for k steps equal M separate trainings.

resnet18 + GLSA + CBAM at 32 px, batch 4, fp32, deterministic algorithms on the CPU: each
member's parameters, BatchNorm running statistics and per-step losses after k optimizer
steps equal the same model trained alone within 1e-5 relative (norm of the difference over
the norm of the reference, per tensor), for every fusion and every deterministic residual
(the fast tier: the whole cross product, 18 pairs). For drop_path / dropout the
draws come from each member's own generator: they differ between members and repeat for a
seed.
"""

import itertools

import pytest
import torch
import torch.nn.functional as F
from conftest import compose_cfg, options

from glattn.fused.stack import FusedModel, MemberNoise, member_generator
from glattn.models import build_model

pytestmark = pytest.mark.usefixtures("one_thread")

SEEDS = (0, 1, 2)
STEPS = 2
BATCH = 4
DETERMINISTIC_RESIDUALS = [r for r in options("residual") if r != "drop_path"]
# the fast tier: three fusions, each deterministic residual once (SGD adds a fourth pair)
FAST = [
    ("original", "original"),
    ("cross_attn", "learnable_gate"),
    ("weighted_add", "progressive"),
]
SLOW = [c for c in itertools.product(options("fusion"), DETERMINISTIC_RESIDUALS) if c not in FAST]


@pytest.fixture(autouse=True)
def _deterministic():
    torch.use_deterministic_algorithms(True)
    yield
    torch.use_deterministic_algorithms(False)


def _members(*overrides: str) -> list[torch.nn.Module]:
    """The model each seed builds (the job seeds before building: glattn.job.build)."""
    cfg = compose_cfg("backbone=resnet18", "attention=cbam", "dataset.image_size=32", *overrides)
    models = []
    for seed in SEEDS:
        torch.manual_seed(seed)
        models.append(build_model(cfg).train())
    return models


def _data():
    gen = torch.Generator().manual_seed(123)
    x = torch.randn(len(SEEDS), STEPS, BATCH, 3, 32, 32, generator=gen)
    y = torch.randint(0, 7, (len(SEEDS), STEPS, BATCH), generator=gen)
    return x, y


def _optimizer(kind: str, model: torch.nn.Module) -> torch.optim.Optimizer:
    if kind == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.05)
    return torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True)


def _separate(models, x, y, kind):
    losses = []
    for i, model in enumerate(models):
        opt, mine = _optimizer(kind, model), []
        for step in range(STEPS):
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(x[i, step]), y[i, step])
            loss.backward()
            opt.step()
            mine.append(loss.item())
        losses.append(mine)
    return losses


def _fused(models, x, y, kind):
    fused = FusedModel(models, [member_generator(s) for s in SEEDS]).train()
    opts = [_optimizer(kind, m) for m in models]
    losses = [[] for _ in models]
    for step in range(STEPS):
        fused.zero_grad()
        out = fused(x[:, step])  # (M, B, classes)
        per_member = [F.cross_entropy(out[i], y[i, step]) for i in range(len(models))]
        torch.stack(per_member).sum().backward()
        fused.share_grads()
        for i, opt in enumerate(opts):
            opt.step()
            losses[i].append(per_member[i].item())
    return fused, losses


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double(), b.double()
    return float((a - b).norm() / b.norm().clamp_min(1e-12))


def _assert_equal_training(overrides, kind="adamw"):
    x, y = _data()
    alone = _members(*overrides)
    init = [{k: v.clone() for k, v in m.state_dict().items()} for m in alone]
    ref_losses = _separate(alone, x, y, kind)
    fused, losses = _fused(_members(*overrides), x, y, kind)
    for i, model in enumerate(alone):
        assert losses[i] == pytest.approx(ref_losses[i], rel=1e-5)
        mine, ref = fused.member_state_dict(i), model.state_dict()
        assert list(mine) == list(ref)
        for name, tensor in ref.items():
            if tensor.dtype == torch.int64:  # num_batches_tracked
                assert torch.equal(mine[name], tensor), name
                continue
            assert _rel(mine[name], tensor) <= 1e-5, (i, name, _rel(mine[name], tensor))
        moved = [n for n in ref if "running_mean" in n and not torch.equal(ref[n], init[i][n])]
        assert moved, "BatchNorm statistics never changed: the comparison would be vacuous"
    assert ref_losses[0] != ref_losses[1]  # the members really are different models


@pytest.mark.parametrize("fusion,residual", FAST)
def test_fused_members_equal_separate_trainings(fusion, residual):
    _assert_equal_training((f"fusion={fusion}", f"residual={residual}"))


@pytest.mark.slow
def test_fused_sgd_equals_separate():
    _assert_equal_training(("fusion=learnable_gate", "residual=progressive"), kind="sgd")


@pytest.mark.parametrize("fusion,residual", SLOW)  # ~36 s for the 15 pairs on 2 cores
def test_fused_every_combination(fusion, residual):
    _assert_equal_training((f"fusion={fusion}", f"residual={residual}"))


def _drop_masks(seeds, steps=3):
    cfg = compose_cfg("dataset.image_size=32", "residual=drop_path", "residual.p=0.5")
    models = []
    for seed in seeds:
        torch.manual_seed(seed)
        models.append(build_model(cfg).train())
    fused = FusedModel(models, [member_generator(s) for s in seeds]).train()
    assert any(isinstance(m, MemberNoise) for m in fused.template.modules())
    x = torch.randn(len(seeds), 16, 3, 32, 32)
    return [fused._masks(x.shape[1:]) for _ in range(steps)], fused, x


def test_drop_path_draws_are_each_members_own():
    first, fused, x = _drop_masks(SEEDS)
    again, _, _ = _drop_masks(SEEDS)
    (name,) = first[0]
    masks = torch.stack([m[name] for m in first])  # (steps, M, B, 1, 1, 1)
    assert masks.shape == (3, 3, 16, 1, 1, 1)
    for a, b in itertools.combinations(range(3), 2):
        assert not torch.equal(masks[:, a], masks[:, b])  # members draw differently
    assert not torch.equal(masks[0], masks[1])  # and anew each step
    assert torch.equal(masks, torch.stack([m[name] for m in again]))  # a seed repeats
    alone, _, _ = _drop_masks((1,))  # member 1's draws do not depend on its neighbours
    assert torch.equal(masks[:, 1], torch.stack([m[name][0] for m in alone]))
    assert set(masks.unique().tolist()) == {0.0, 2.0}  # kept rows scaled by 1/(1-p)
    out = fused(x)  # the fused forward runs with them (vmap randomness="error")
    assert out.shape == (3, 16, 7) and torch.isfinite(out).all()


@pytest.mark.slow
def test_fused_kernels_match_to_fp32_rounding():
    """exact=False (trainer.deterministic=false): grouped convolutions and wide BatchNorms
    really run fused: one step's outputs match to 1e-4 relative, the gradients to 1e-3 (the
    stem's gradient differed by 7.5e-5 here: fp32 rounding of the grouped kernels, amplified
    by BatchNorm over 4 samples; glattn.fused.exact)."""
    x, y = _data()
    alone = _members()
    fused = FusedModel(_members(), [member_generator(s) for s in SEEDS], exact=False).train()
    assert not fused.looped
    out = fused(x[:, 0])
    torch.stack([F.cross_entropy(out[i], y[i, 0]) for i in range(len(SEEDS))]).sum().backward()
    for i, model in enumerate(alone):
        ref = model(x[i, 0])
        F.cross_entropy(ref, y[i, 0]).backward()
        assert _rel(out[i].detach(), ref.detach()) <= 1e-4  # 1.5e-5 measured
        for name, param in model.named_parameters():
            assert _rel(fused.params[name].grad[i], param.grad) <= 1e-3, name
