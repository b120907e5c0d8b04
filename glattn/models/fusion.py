"""Fusion of the GLSA block's global (A) and local (L) branches.

Constructor contract (`CONTRACT`, checked for every fusion, whoever wrote it, as the
model is built): `__init__(self, channels, **settings)`;
`forward(A, L, x)` takes three (B, C, H, W) tensors (global attention output, local
attention output, block input) and returns R of the same shape.

- `original`      R = A * L (the reference code's block).
- `learnable_gate` R = g * A + (1 - g) * L, g = sigmoid(w) per channel (Highway networks,
  Srivastava et al. 2015, arXiv:1505.00387).
- `weighted_add`  R = (w0 A + w1 L + w2 A*L) / (eps + w0 + w1 + w2), w = relu(weights)
  (EfficientDet fast normalised fusion, Tan et al. 2020, arXiv:1911.09070).
- `channel_attn`  R = s * A + (1 - s) * L, s = sigmoid(W2 relu(W1 avgpool(A + L)))
  (Squeeze-and-Excitation, Hu et al. 2018, arXiv:1709.01507; the selection form of SKNet).
- `spatial_attn`  R = m * A + (1 - m) * L, m = sigmoid(conv7x7([mean_c A; max_c A; mean_c L;
  max_c L])) (CBAM's spatial attention, Woo et al. 2018, arXiv:1807.06521).
- `cross_attn`    R = A + Wo MHA(q = Wq A, k = Wk L, v = Wv L): A attends to L
  (Vaswani et al. 2017, arXiv:1706.03762).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from glattn.contract import Contract
from glattn.models.contract import same_shape_probe

CONTRACT = Contract(
    "fusion",
    "`__init__(self, channels, **settings)`; `forward(A, L, x)` takes three "
    "(B, C, H, W) tensors and returns R of the same shape",
    same_shape_probe("forward(A, L, x)", 3),
)


def _check_width(name: str, channels: int, reduction: int, heads: int) -> int:
    width = channels // reduction
    if width < 1 or channels % reduction or width % heads:
        raise ValueError(
            f"{name}: channels={channels} / reduction={reduction} must give a width divisible "
            f"by num_heads={heads}"
        )
    return width


class ProductFusion(nn.Module):
    reference = "GLSA baseline: A ⊙ L (element-wise product)"

    def __init__(self, channels: int) -> None:
        super().__init__()

    def forward(self, A: torch.Tensor, L: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return A * L


class GatedFusion(nn.Module):
    reference = "Highway Networks, Srivastava et al. 2015 (arXiv:1505.00387)"

    def __init__(self, channels: int, init_logit: float = 0.0) -> None:
        super().__init__()
        self.logit = nn.Parameter(torch.full((1, channels, 1, 1), float(init_logit)))

    def gate(self) -> torch.Tensor:
        return torch.sigmoid(self.logit)  # (1, C, 1, 1), in (0, 1)

    def forward(self, A: torch.Tensor, L: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        g = self.gate()
        return g * A + (1 - g) * L


class WeightedAddFusion(nn.Module):
    reference = "EfficientDet fast normalised fusion, Tan et al. CVPR 2020 (arXiv:1911.09070)"

    def __init__(self, channels: int, eps: float = 1e-4) -> None:
        super().__init__()
        self.weights = nn.Parameter(torch.ones(3))
        self.eps = eps

    def normalised_weights(self) -> torch.Tensor:
        w = F.relu(self.weights)
        return w / (w.sum() + self.eps)

    def forward(self, A: torch.Tensor, L: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        w = self.normalised_weights()
        return w[0] * A + w[1] * L + w[2] * (A * L)


class ChannelAttnFusion(nn.Module):
    reference = "Squeeze-and-Excitation, Hu et al. CVPR 2018 (arXiv:1709.01507)"

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        hidden = max(1, channels // reduction)
        self.fc1 = nn.Conv2d(channels, hidden, 1)
        self.fc2 = nn.Conv2d(hidden, channels, 1)

    def select(self, A: torch.Tensor, L: torch.Tensor) -> torch.Tensor:
        z = (A + L).mean((2, 3), keepdim=True)  # (B, C, 1, 1)
        return torch.sigmoid(self.fc2(F.relu(self.fc1(z))))

    def forward(self, A: torch.Tensor, L: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        s = self.select(A, L)
        return s * A + (1 - s) * L


class SpatialAttnFusion(nn.Module):
    reference = "CBAM spatial attention, Woo et al. ECCV 2018 (arXiv:1807.06521)"

    def __init__(self, channels: int, kernel_size: int = 7) -> None:
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"fusion.kernel_size must be odd, got {kernel_size}")
        self.conv = nn.Conv2d(4, 1, kernel_size, padding=kernel_size // 2)

    def select(self, A: torch.Tensor, L: torch.Tensor) -> torch.Tensor:
        stats = [A.mean(1, keepdim=True), A.amax(1, keepdim=True)]
        stats += [L.mean(1, keepdim=True), L.amax(1, keepdim=True)]
        return torch.sigmoid(self.conv(torch.cat(stats, dim=1)))  # (B, 1, H, W)

    def forward(self, A: torch.Tensor, L: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        m = self.select(A, L)
        return m * A + (1 - m) * L


class CrossAttnFusion(nn.Module):
    reference = "Cross attention (Transformer), Vaswani et al. NeurIPS 2017 (arXiv:1706.03762)"

    def __init__(self, channels: int, num_heads: int = 8, reduction: int = 4) -> None:
        super().__init__()
        width = _check_width("fusion=cross_attn", channels, reduction, num_heads)
        self.num_heads = num_heads
        self.q = nn.Conv2d(channels, width, 1)
        self.kv = nn.Conv2d(channels, 2 * width, 1)
        self.out = nn.Conv2d(width, channels, 1)

    def forward(self, A: torch.Tensor, L: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        from glattn.models.glsa import multi_head_attention

        k, v = self.kv(L).chunk(2, dim=1)
        return A + self.out(multi_head_attention(self.q(A), k, v, self.num_heads))
