"""Local attention for the GLSA block: CBAM (Woo et al., ECCV 2018, arXiv:1807.06521).

Constructor contract (`CONTRACT`, checked for every local attention, whoever wrote it, as the
model is built): `__init__(self, channels, **settings)`,
`forward(x)` returns a tensor of the shape of `x` (B, C, H, W).

Options (conf/attention/*.yaml):
- `cbam`: channel attention sigma(MLP(avgpool(x)) + MLP(maxpool(x))) with a shared MLP of
  C/r hidden units and ReLU, then spatial attention sigma(conv7x7([mean_c; max_c])); the
  spatial convolution is followed by BatchNorm as in the authors' code and timm's
  `CbamModule`, which tests/test_models_numerics.py checks this module against.
- `global_only`: identity in place of CBAM (the GLSA block keeps its global attention).
- `none`: no GLSA block at all (the plain backbone); `NoGLSABlock` is only a marker that
  `glattn.models.net.build_model` recognises, it is never run.
"""

from __future__ import annotations

import torch
from torch import nn

from glattn.contract import Contract
from glattn.models.contract import same_shape_probe

CONTRACT = Contract(
    "attention",
    "`__init__(self, channels, **settings)`; `forward(x)` returns a tensor of the "
    "shape of x (B, C, H, W)",
    same_shape_probe("forward(x)", 1),
)


class ChannelAttention(nn.Module):
    """M_c(F) = sigmoid(W1 relu(W0 avgpool(F)) + W1 relu(W0 maxpool(F)))."""

    def __init__(self, channels: int, reduction: int = 16, mlp_bias: bool = False) -> None:
        super().__init__()
        hidden = max(1, channels // reduction)
        self.fc1 = nn.Conv2d(channels, hidden, 1, bias=mlp_bias)
        self.act = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(hidden, channels, 1, bias=mlp_bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        avg = self.fc2(self.act(self.fc1(x.mean((2, 3), keepdim=True))))  # (B, C, 1, 1)
        mx = self.fc2(self.act(self.fc1(x.amax((2, 3), keepdim=True))))
        return x * torch.sigmoid(avg + mx)


class SpatialAttention(nn.Module):
    """M_s(F) = sigmoid(BN(conv_k([mean_c(F); max_c(F)])))."""

    def __init__(self, kernel_size: int = 7) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)
        self.bn = nn.BatchNorm2d(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = torch.cat([x.mean(1, keepdim=True), x.amax(1, keepdim=True)], dim=1)
        return x * torch.sigmoid(self.bn(self.conv(pooled)))  # (B, 1, H, W) map


class CBAM(nn.Module):
    """Channel attention, then spatial attention (the paper's sequential order)."""

    reference = "CBAM, Woo et al. ECCV 2018 (arXiv:1807.06521)"

    def __init__(
        self, channels: int, reduction: int = 16, kernel_size: int = 7, mlp_bias: bool = False
    ) -> None:
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"attention.kernel_size must be odd, got {kernel_size}")
        self.channel = ChannelAttention(channels, reduction, mlp_bias)
        self.spatial = SpatialAttention(kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.spatial(self.channel(x))


class NoLocalAttention(nn.Identity):
    """Identity in place of CBAM: the GLSA block with global attention only."""

    def __init__(self, channels: int) -> None:
        super().__init__()


class NoGLSABlock(nn.Identity):
    """Marker for `attention=none`: the model is the plain backbone, with no GLSA block."""

    def __init__(self, channels: int) -> None:
        super().__init__()
