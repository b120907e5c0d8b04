"""Model cost and summary: FLOPs with `torch.utils.flop_counter`, a parameter table.

FlopCounterMode counts 2 FLOPs per multiply-add. It has no formula for the CPU kernel of
`scaled_dot_product_attention` (aten._scaled_dot_product_flash_attention_for_cpu), so we
add one (the same formula torch uses for its GPU attention kernels); otherwise attention
would count as 0 FLOPs on the CPU.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

_CPU_SDPA = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)


def _cpu_sdpa_flop(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs):
    return sdpa_flop_count(query_shape, key_shape, value_shape)


def count_flops(model: nn.Module, image_size: int, batch_size: int = 1) -> int:
    """Forward FLOPs of `model` on a (batch_size, 3, image_size, image_size) input (eval)."""
    device = next(model.parameters()).device
    x = torch.zeros(batch_size, 3, image_size, image_size, device=device)
    mapping = {_CPU_SDPA: _cpu_sdpa_flop} if _CPU_SDPA is not None else {}
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False, custom_mapping=mapping) as mode:
            model(x)
    finally:
        model.train(was_training)
    return mode.get_total_flops()


def describe_model(model: nn.Module, image_size: int | None = None) -> str:
    """A plain-text parameter summary of a GLSANet (and its GFLOPs at `image_size`)."""
    counts = model.count_parameters()
    total = max(counts["total"], 1)
    places = ", ".join(
        f"{name} ({type(b.local_attention).__name__}, {type(b.fusion).__name__}, "
        f"{type(b.residual).__name__})"
        for name, b in model.glsa.items()
    )
    lines = [
        f"backbone {model.backbone_name}; GLSA blocks: {places or 'none (plain backbone)'}",
        f"{'part':<12}{'parameters':>14}{'share':>9}",
    ]
    for part, value in counts.items():
        indent = "  " if part in ("attention", "fusion", "residual") else ""
        lines.append(f"{indent + part:<12}{value:>14,}{100 * value / total:>8.2f}%")
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    lines.append(f"{'trainable':<12}{trainable:>14,}")
    if image_size:
        gflops = count_flops(model, image_size) / 1e9
        lines.append(f"forward GFLOPs at {image_size}x{image_size}, batch 1: {gflops:.3f}")
    return "\n".join(lines)
