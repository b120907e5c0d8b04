"""The Global-Local Self-Attention (GLSA) block.

Global branch: multi-head self-attention over all H*W positions (Vaswani et al. 2017,
arXiv:1706.03762) computed by `torch.nn.functional.scaled_dot_product_attention`, as in
non-local / bottleneck-transformer blocks (Wang et al. 2018, arXiv:1711.07971; Srinivas et
al. 2021, arXiv:2101.11605). Local branch: CBAM or identity (glattn.models.cbam).

    qkv = Conv1x1(x); q, k, v = chunk(qkv, 3)     # each (B, C/r, H, W), r = qkv_reduction
    A   = Proj(MHA(q, k, v))                        # (B, C, H, W); Proj = Identity when r = 1
    f1  = x + A
    L   = local_attention(f1)
    R   = fusion(A, L, x)
    out = residual(x, R)
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def _to_heads(t: torch.Tensor, num_heads: int) -> torch.Tensor:
    b, c, h, w = t.shape
    return t.reshape(b, num_heads, c // num_heads, h * w).transpose(-1, -2)  # (B, h, N, d)


def multi_head_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, num_heads: int
) -> torch.Tensor:
    """softmax(q k^T / sqrt(d)) v per head over all positions; (B, C, H, W) in and out."""
    b, c, h, w = q.shape
    out = F.scaled_dot_product_attention(
        _to_heads(q, num_heads), _to_heads(k, num_heads), _to_heads(v, num_heads)
    )  # (B, heads, N, d)
    return out.transpose(-1, -2).reshape(b, c, h, w)


def explicit_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Materialised softmax(q k^T / sqrt(d)) v on (..., N, d) tensors (benchmark reference)."""
    scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])  # (..., N, N)
    return scores.softmax(dim=-1) @ v


class GLSABlock(nn.Module):
    """Global attention, local attention, fusion and residual around one feature map."""

    def __init__(
        self,
        channels: int,
        local_attention: nn.Module,
        fusion: nn.Module,
        residual: nn.Module,
        num_heads: int = 8,
        qkv_reduction: int = 4,
        qkv_bias: bool = True,
    ) -> None:
        super().__init__()
        width = channels // qkv_reduction if qkv_reduction >= 1 else 0
        if width < 1 or channels % qkv_reduction or width % num_heads:
            raise ValueError(
                f"glsa: channels={channels} / glsa.qkv_reduction={qkv_reduction} = {width} "
                f"must be a positive integer divisible by glsa.num_heads={num_heads}"
            )
        self.num_heads = num_heads
        self.qkv = nn.Conv2d(channels, 3 * width, 1, bias=qkv_bias)
        # The seed's block (qkv_reduction=1) has no projection: attention is already C wide.
        self.proj = nn.Identity() if width == channels else nn.Conv2d(width, channels, 1)
        self.local_attention = local_attention
        self.fusion = fusion
        self.residual = residual

    def global_attention(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.qkv(x).chunk(3, dim=1)  # each (B, C/r, H, W)
        return self.proj(multi_head_attention(q, k, v, self.num_heads))  # (B, C, H, W)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        A = self.global_attention(x)
        L = self.local_attention(x + A)
        return self.residual(x, self.fusion(A, L, x))
