"""Classification losses for imbalanced skin-lesion data.

- Focal loss: Lin et al., "Focal Loss for Dense Object Detection", ICCV 2017,
  https://arxiv.org/abs/1708.02002 -- FL(p_t) = -alpha_t (1 - p_t)^gamma log p_t.
- Class-balanced weights: Cui et al., "Class-Balanced Loss Based on Effective Number of
  Samples", CVPR 2019, https://arxiv.org/abs/1901.05555 -- w_c ~ (1 - beta) / (1 - beta^n_c),
  normalised to sum to the number of classes.

Constructor contract (``CONTRACT``, checked for every loss, whoever wrote it, as it is built):
``__init__(self, class_counts, **settings)``
(``class_counts``: the training split's per-class counts, supplied at build time through
``_partial_: true`` in ``conf/loss/*.yaml``) and ``forward(logits (B, C), target (B,))``
returns a scalar.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from glattn.contract import Contract


def _probe(loss: nn.Module, num_classes: int) -> str | None:
    """forward(logits (B, C), target (B,)) must give a scalar tensor (its value is the
    training loop's business: a non-finite loss fails there, with its own message)."""
    logits = torch.linspace(-2.0, 2.0, 4 * num_classes).reshape(4, num_classes)
    target = torch.arange(4) % num_classes
    with torch.no_grad():
        value = loss(logits, target)
    if not isinstance(value, torch.Tensor) or value.ndim != 0:
        shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
        return (
            f"forward(logits (4, {num_classes}), target (4,)) returned {shape}, expected a scalar"
        )
    return None


CONTRACT = Contract(
    "loss",
    "`__init__(self, class_counts, **settings)` (the training split's per-class counts); "
    "`forward(logits (B, C), target (B,))` returns a scalar",
    _probe,
)


def class_balanced_weights(class_counts: Sequence[int], beta: float) -> torch.Tensor:
    """Cui et al. 2019 weights (1 - beta) / (1 - beta^n_c), normalised to sum to C.

    A class with no training sample is given the weight of a class with one sample (the
    effective number of an empty class is 0, which would divide by zero); such a class
    never occurs as a training target, so its weight only matters for evaluation losses.
    """
    if not 0.0 <= beta < 1.0:
        raise ValueError(f"loss.beta={beta!r}: expected 0 <= beta < 1 (Cui et al. 2019)")
    counts = np.asarray(class_counts, dtype=np.float64)
    if counts.ndim != 1 or (counts < 0).any():
        raise ValueError(f"class_counts={counts.tolist()}: expected non-negative counts")
    effective = (1.0 - np.power(beta, np.maximum(counts, 1.0))) / (1.0 - beta)
    weights = 1.0 / effective
    weights = weights / weights.sum() * len(counts)
    return torch.as_tensor(weights, dtype=torch.float32)


def _alpha_tensor(alpha, num_classes: int) -> torch.Tensor | None:
    """Scalar alpha scales every class alike; a list gives one alpha per class."""
    if alpha is None:
        return None
    if isinstance(alpha, (int, float)):
        return torch.full((num_classes,), float(alpha))
    values = [float(a) for a in alpha]
    if len(values) != num_classes:
        raise ValueError(
            f"loss.alpha has {len(values)} values, expected one per class ({num_classes})"
        )
    return torch.tensor(values)


class FocalLoss(nn.Module):
    """Multi-class focal loss, mean over the batch; gamma=0 and alpha=None is cross-entropy.

    ``alpha``: None, a scalar (the seed's 0.25, a constant factor for every class) or one
    value per class. ``class_balanced_beta``: if set, the per-class alpha is multiplied by
    the Cui et al. weights of ``class_counts``.
    """

    reference = "Focal loss, Lin et al. ICCV 2017 (arXiv:1708.02002)"

    def __init__(
        self,
        class_counts: Sequence[int],
        gamma: float = 2.0,
        alpha: float | Sequence[float] | None = None,
        class_balanced_beta: float | None = None,
    ):
        super().__init__()
        if gamma < 0:
            raise ValueError(f"loss.gamma={gamma!r}: expected gamma >= 0")
        num_classes = len(class_counts)
        weight = _alpha_tensor(alpha, num_classes)
        if class_balanced_beta is not None:
            cb = class_balanced_weights(class_counts, class_balanced_beta)
            weight = cb if weight is None else weight * cb
        self.gamma = float(gamma)
        self.register_buffer("weight", weight if weight is not None else torch.empty(0))

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        log_p = F.log_softmax(logits.float(), dim=1)  # (B, C)
        log_pt = log_p.gather(1, target[:, None]).squeeze(1)  # (B,)
        loss = -((1.0 - log_pt.exp()).clamp(min=0.0) ** self.gamma) * log_pt
        if self.weight.numel():
            loss = loss * self.weight[target]
        return loss.mean()


class CrossEntropyLoss(nn.Module):
    """``F.cross_entropy`` with label smoothing and optional class-balanced weights."""

    def __init__(
        self,
        class_counts: Sequence[int],
        label_smoothing: float = 0.0,
        class_balanced_beta: float | None = None,
    ):
        super().__init__()
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"loss.label_smoothing={label_smoothing!r}: expected [0, 1)")
        self.label_smoothing = float(label_smoothing)
        weight = None
        if class_balanced_beta is not None:
            weight = class_balanced_weights(class_counts, class_balanced_beta)
        self.register_buffer("weight", weight if weight is not None else torch.empty(0))

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        weight = self.weight if self.weight.numel() else None
        return F.cross_entropy(
            logits.float(), target, weight=weight, label_smoothing=self.label_smoothing
        )


def ClassBalancedLoss(
    class_counts: Sequence[int],
    beta: float = 0.9999,
    base: str = "focal",
    gamma: float = 2.0,
    label_smoothing: float = 0.0,
) -> nn.Module:
    """Cui et al. 2019: the class-balanced weights on top of focal (their best) or CE."""
    if base == "focal":
        if label_smoothing:
            raise ValueError("loss.label_smoothing applies to base=ce only, got base=focal")
        return FocalLoss(class_counts, gamma=gamma, alpha=None, class_balanced_beta=beta)
    if base == "ce":
        return CrossEntropyLoss(class_counts, label_smoothing, class_balanced_beta=beta)
    raise ValueError(f"loss.base={base!r}: expected one of ['ce', 'focal']")


ClassBalancedLoss.reference = "Class-balanced loss, Cui et al. CVPR 2019 (arXiv:1901.05555)"


def build_loss(loss_cfg, class_counts: Sequence[int]) -> nn.Module:
    """Instantiate ``cfg.loss`` (``_target_`` + settings, ``_partial_: true``) with the
    training split's counts, checked against the loss contract."""
    from hydra.utils import instantiate

    factory = instantiate(loss_cfg)
    func = getattr(factory, "func", None)
    if func is None:
        raise ValueError("cfg.loss must set `_partial_: true` (class counts arrive at build time)")
    counts = [int(c) for c in class_counts]
    return CONTRACT.build(factory, class_counts=counts, probe_args=(len(counts),))
