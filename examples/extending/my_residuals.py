"""A residual of one's own: out = x + gamma * R, gamma a learnable per-channel scale that
starts small (LayerScale, Touvron et al. 2021, arXiv:2103.17239)."""

import torch
from torch import nn


class LayerScaleResidual(nn.Module):
    # the residual contract: __init__(self, channels, **settings); forward(x, R) -> x's shape
    reference = "LayerScale, Touvron et al. ICCV 2021 (arXiv:2103.17239)"

    def __init__(self, channels: int, init: float = 1e-4) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.full((1, channels, 1, 1), float(init)))

    def forward(self, x: torch.Tensor, R: torch.Tensor) -> torch.Tensor:
        return x + self.gamma * R
