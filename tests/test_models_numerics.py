"""Numerical truths of the GLSA parts: attention, fusions, residuals and CBAM vs formulas."""

import math

import pytest
import torch
import torch.nn.functional as F
from timm.layers.cbam import CbamModule

from glattn.models.cbam import CBAM
from glattn.models.fusion import (
    ChannelAttnFusion,
    CrossAttnFusion,
    GatedFusion,
    ProductFusion,
    SpatialAttnFusion,
    WeightedAddFusion,
)
from glattn.models.glsa import GLSABlock, multi_head_attention
from glattn.models.residual import (
    AddResidual,
    DropPathResidual,
    GatedResidual,
    ProgressiveResidual,
)

C, H, W = 32, 5, 6


def randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def randomise(module: torch.nn.Module, seed: int = 1, scale: float = 0.3) -> torch.nn.Module:
    """Give every parameter (and BN buffer) random values so no formula holds by accident."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(scale * torch.randn(p.shape, generator=gen))
        for name, b in module.named_buffers():
            if name.endswith("running_var"):
                b.copy_(torch.rand(b.shape, generator=gen) + 0.5)
            elif name.endswith("running_mean"):
                b.copy_(torch.randn(b.shape, generator=gen))
    return module


def conv1x1(x, weight, bias=None):
    """A 1x1 convolution written as a matrix product over channels."""
    out = torch.einsum("oc,bchw->bohw", weight[:, :, 0, 0], x)
    return out if bias is None else out + bias[None, :, None, None]


def reference_mha(q, k, v, heads):
    """Explicit softmax(Q K^T / sqrt(d)) V per head, (B, C, H, W) maps in and out."""
    b, c, h, w = q.shape
    d = c // heads
    out = torch.empty_like(q).reshape(b, c, h * w)
    for i in range(heads):
        sl = slice(i * d, (i + 1) * d)
        qi, ki, vi = (t.reshape(b, c, h * w)[:, sl].transpose(1, 2) for t in (q, k, v))
        attn = torch.softmax(qi @ ki.transpose(1, 2) / math.sqrt(d), dim=-1)  # (B, N, N)
        out[:, sl] = (attn @ vi).transpose(1, 2)
    return out.reshape(b, c, h, w)


@pytest.mark.parametrize("heads", [1, 4, 8])
def test_sdpa_matches_explicit_attention(heads):
    q, k, v = (randn(2, C, H, W, seed=s) for s in (1, 2, 3))
    diff = (multi_head_attention(q, k, v, heads) - reference_mha(q, k, v, heads)).abs().max()
    assert diff <= 1e-5


@pytest.mark.parametrize("reduction", [1, 4])
def test_glsa_block_equals_its_formula(reduction):
    block = randomise(
        GLSABlock(C, CBAM(C, reduction=4), GatedFusion(C), GatedResidual(C), 4, reduction)
    ).eval()
    x = randn(2, C, H, W)
    w = C // reduction
    qkv = conv1x1(x, block.qkv.weight, block.qkv.bias)
    q, k, v = qkv[:, :w], qkv[:, w : 2 * w], qkv[:, 2 * w :]
    A = reference_mha(q, k, v, 4)
    if reduction == 1:
        assert isinstance(block.proj, torch.nn.Identity)  # the seed's full-width block
    else:
        A = conv1x1(A, block.proj.weight, block.proj.bias)
    with torch.no_grad():
        L = block.local_attention(x + A)
        R = block.fusion(A, L, x)
        expected = block.residual(x, R)
        tol = 1e-5 * max(1.0, expected.abs().max().item())
        assert (block.global_attention(x) - A).abs().max() <= tol
        assert (block(x) - expected).abs().max() <= tol


def test_fusion_original():
    A, L, x = randn(2, C, H, W, seed=1), randn(2, C, H, W, seed=2), randn(2, C, H, W, seed=3)
    assert torch.equal(ProductFusion(C)(A, L, x), A * L)


def test_fusion_learnable_gate():
    A, L, x = randn(2, C, H, W, seed=1), randn(2, C, H, W, seed=2), randn(2, C, H, W, seed=3)
    fusion = GatedFusion(C)
    assert torch.allclose(fusion(A, L, x), 0.5 * A + 0.5 * L)  # logit 0 at init
    with torch.no_grad():
        fusion.logit.copy_(3 * randn(1, C, 1, 1, seed=4))
    g = 1 / (1 + torch.exp(-fusion.logit))
    assert ((g > 0) & (g < 1)).all() and ((fusion.gate() > 0) & (fusion.gate() < 1)).all()
    assert (fusion(A, L, x) - (g * A + (1 - g) * L)).abs().max() <= 1e-6


def test_fusion_weighted_add():
    A, L, x = randn(2, C, H, W, seed=1), randn(2, C, H, W, seed=2), randn(2, C, H, W, seed=3)
    fusion = WeightedAddFusion(C, eps=1e-4)
    with torch.no_grad():
        fusion.weights.copy_(torch.tensor([0.7, -0.4, 1.9]))  # the negative one is clipped
    w0, w1, w2 = 0.7 / (0.7 + 1.9 + 1e-4), 0.0, 1.9 / (0.7 + 1.9 + 1e-4)
    expected = w0 * A + w1 * L + w2 * A * L
    assert (fusion(A, L, x) - expected).abs().max() <= 1e-5


def test_fusion_channel_attn():
    A, L, x = randn(2, C, H, W, seed=1), randn(2, C, H, W, seed=2), randn(2, C, H, W, seed=3)
    fusion = randomise(ChannelAttnFusion(C, reduction=4))
    z = (A + L).mean((2, 3))  # (B, C)
    hidden = F.relu(z @ fusion.fc1.weight[:, :, 0, 0].T + fusion.fc1.bias)
    s = torch.sigmoid(hidden @ fusion.fc2.weight[:, :, 0, 0].T + fusion.fc2.bias)
    s = s[:, :, None, None]
    assert ((s > 0) & (s < 1)).all()
    assert (fusion(A, L, x) - (s * A + (1 - s) * L)).abs().max() <= 1e-5


def test_fusion_spatial_attn():
    A, L, x = randn(2, C, H, W, seed=1), randn(2, C, H, W, seed=2), randn(2, C, H, W, seed=3)
    fusion = randomise(SpatialAttnFusion(C, kernel_size=3))
    stats = torch.stack([A.mean(1), A.max(1).values, L.mean(1), L.max(1).values], 1)
    m = torch.sigmoid(F.conv2d(stats, fusion.conv.weight, fusion.conv.bias, padding=1))
    assert m.shape == (2, 1, H, W)
    assert (fusion(A, L, x) - (m * A + (1 - m) * L)).abs().max() <= 1e-5


def test_fusion_cross_attn():
    A, L, x = randn(2, C, H, W, seed=1), randn(2, C, H, W, seed=2), randn(2, C, H, W, seed=3)
    fusion = randomise(CrossAttnFusion(C, num_heads=2, reduction=2))
    q = conv1x1(A, fusion.q.weight, fusion.q.bias)
    kv = conv1x1(L, fusion.kv.weight, fusion.kv.bias)
    k, v = kv[:, : C // 2], kv[:, C // 2 :]
    expected = A + conv1x1(reference_mha(q, k, v, 2), fusion.out.weight, fusion.out.bias)
    assert (fusion(A, L, x) - expected).abs().max() <= 1e-4 * expected.abs().max()


def test_residual_original_and_gate():
    x, R = randn(2, C, H, W, seed=1), randn(2, C, H, W, seed=2)
    assert torch.equal(AddResidual(C)(x, R), x + R)
    res = GatedResidual(C)
    with torch.no_grad():
        res.logit.copy_(3 * randn(1, C, 1, 1, seed=3))
    g = 1 / (1 + torch.exp(-res.logit))
    assert ((res.gate() > 0) & (res.gate() < 1)).all()
    assert (res(x, R) - (g * x + (1 - g) * R)).abs().max() <= 1e-6


def test_residual_progressive():
    x, R = randn(2, C, H, W, seed=1), 1e6 * randn(2, C, H, W, seed=2)
    res = ProgressiveResidual(C)
    assert res.alpha.item() == 0.0
    assert torch.equal(res(x, R), x)  # exactly the identity at its initial value
    with torch.no_grad():
        res.alpha.fill_(0.3)
    R = randn(2, C, H, W, seed=2)
    assert (res(x, R) - (x * 0.7 + R * 0.3)).abs().max() <= 1e-6


@pytest.mark.parametrize("p", [0.2, 0.5])
def test_residual_drop_path(p):
    n = 4000
    x, R = randn(n, 3, 2, 2, seed=1), randn(n, 3, 2, 2, seed=2) + 5.0  # R never 0
    res = DropPathResidual(3, p=p)
    assert torch.equal(res.eval()(x, R), x + R)
    torch.manual_seed(0)
    out = res.train()(x, R)
    dropped = (out == x).flatten(1).all(1)
    kept = ((out - x) - R / (1 - p)).abs().flatten(1).amax(1) <= 1e-5
    assert (dropped ^ kept).all()  # whole samples: each is either fully dropped or fully kept
    sigma = math.sqrt(p * (1 - p) / n)
    assert abs(dropped.float().mean().item() - p) <= 4 * sigma


def test_drop_path_rejects_bad_rate():
    with pytest.raises(ValueError, match="residual.p"):
        DropPathResidual(8, p=1.0)


@pytest.mark.parametrize("mlp_bias", [False, True])
@pytest.mark.parametrize("train", [False, True])
def test_cbam_matches_timm(mlp_bias, train):
    ours = randomise(CBAM(C, reduction=8, kernel_size=7, mlp_bias=mlp_bias))
    ref = CbamModule(C, rd_channels=C // 8, spatial_kernel_size=7, mlp_bias=mlp_bias)
    ref_state = {
        "channel.fc1.weight": ours.channel.fc1.weight,
        "channel.fc2.weight": ours.channel.fc2.weight,
        "spatial.conv.conv.weight": ours.spatial.conv.weight,
    }
    if mlp_bias:
        ref_state["channel.fc1.bias"] = ours.channel.fc1.bias
        ref_state["channel.fc2.bias"] = ours.channel.fc2.bias
    for key, value in ours.spatial.bn.state_dict().items():
        ref_state[f"spatial.conv.bn.{key}"] = value
    ref.load_state_dict({k: v.detach().clone() for k, v in ref_state.items()}, strict=True)
    ours.train(train), ref.train(train)
    x = randn(3, C, 7, 9, seed=5)
    assert (ours(x) - ref(x)).abs().max() <= 1e-5


def test_cbam_reduction_and_kernel_checks():
    assert CBAM(64, reduction=16).channel.fc1.out_channels == 4
    with pytest.raises(ValueError, match="kernel_size"):
        CBAM(64, kernel_size=4)


def test_glsa_rejects_indivisible_width():
    with pytest.raises(ValueError, match="qkv_reduction"):
        GLSABlock(48, CBAM(48), ProductFusion(48), AddResidual(48), num_heads=8, qkv_reduction=4)
