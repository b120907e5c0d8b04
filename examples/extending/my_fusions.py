"""A fusion of one's own: R = g * A + (1 - g) * L with g = sigmoid(conv3x3([A; L])), a
per-position, per-channel gate computed from both branches."""

import torch
from torch import nn


class GatedConvFusion(nn.Module):
    # the fusion contract: __init__(self, channels, **settings); forward(A, L, x) -> x's shape
    reference = "Gated convolutional fusion (my paper, 2026)"  # the report's reference column

    def __init__(self, channels: int, kernel_size: int = 3) -> None:
        super().__init__()
        self.gate = nn.Conv2d(2 * channels, channels, kernel_size, padding=kernel_size // 2)

    def forward(self, A: torch.Tensor, L: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        g = torch.sigmoid(self.gate(torch.cat([A, L], dim=1)))  # (B, C, H, W)
        return g * A + (1 - g) * L
