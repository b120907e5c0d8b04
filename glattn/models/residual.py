"""Residual connection around the GLSA block: out = Residual(x, R).

Constructor contract (`CONTRACT`, checked for every residual, whoever wrote it, as the
model is built): `__init__(self, channels, **settings)`;
`forward(x, R)` takes two (B, C, H, W) tensors and returns one of the same shape.

- `original`       x + R (He et al. 2016, arXiv:1512.03385).
- `learnable_gate` g * x + (1 - g) * R, g = sigmoid(w) per channel (Highway networks,
  Srivastava et al. 2015, arXiv:1505.00387).
- `progressive`    x * (1 - a) + R * a, a learnable scalar starting at 0 so the block starts
  as the identity (ReZero, Bachlechner et al. 2020, arXiv:2003.04887).
- `drop_path`      x + DropPath(R): in training whole samples of R are dropped with
  probability `p` and the rest scaled by 1/(1-p); in eval x + R (Stochastic Depth, Huang et
  al. 2016, arXiv:1603.09382; torchvision.ops.StochasticDepth, mode "row").
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision.ops import StochasticDepth

from glattn.contract import Contract
from glattn.models.contract import same_shape_probe

CONTRACT = Contract(
    "residual",
    "`__init__(self, channels, **settings)`; `forward(x, R)` takes two (B, C, H, W) "
    "tensors and returns one of the same shape",
    same_shape_probe("forward(x, R)", 2),
)


class AddResidual(nn.Module):
    reference = "ResNet identity shortcut, He et al. CVPR 2016 (arXiv:1512.03385)"

    def __init__(self, channels: int) -> None:
        super().__init__()

    def forward(self, x: torch.Tensor, R: torch.Tensor) -> torch.Tensor:
        return x + R


class GatedResidual(nn.Module):
    reference = "Highway Networks, Srivastava et al. 2015 (arXiv:1505.00387)"

    def __init__(self, channels: int, init_logit: float = 0.0) -> None:
        super().__init__()
        self.logit = nn.Parameter(torch.full((1, channels, 1, 1), float(init_logit)))

    def gate(self) -> torch.Tensor:
        return torch.sigmoid(self.logit)  # (1, C, 1, 1), in (0, 1)

    def forward(self, x: torch.Tensor, R: torch.Tensor) -> torch.Tensor:
        g = self.gate()
        return g * x + (1 - g) * R


class ProgressiveResidual(nn.Module):
    reference = "ReZero, Bachlechner et al. UAI 2021 (arXiv:2003.04887)"

    def __init__(self, channels: int, init: float = 0.0) -> None:
        super().__init__()
        self.alpha = nn.Parameter(torch.tensor(float(init)))

    def forward(self, x: torch.Tensor, R: torch.Tensor) -> torch.Tensor:
        return x * (1 - self.alpha) + R * self.alpha


class DropPathResidual(nn.Module):
    reference = "Stochastic Depth, Huang et al. ECCV 2016 (arXiv:1603.09382)"

    def __init__(self, channels: int, p: float = 0.1) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"residual.p (drop probability) must be in [0, 1), got {p}")
        self.drop = StochasticDepth(p, mode="row")

    def forward(self, x: torch.Tensor, R: torch.Tensor) -> torch.Tensor:
        return x + self.drop(R)
