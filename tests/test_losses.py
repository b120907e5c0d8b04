"""Losses: focal == CE at gamma 0, class-balanced weights follow Cui et al. 2019."""

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import options
from omegaconf import OmegaConf

from glattn.losses import (
    ClassBalancedLoss,
    CrossEntropyLoss,
    FocalLoss,
    build_loss,
    class_balanced_weights,
)

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"
COUNTS = [1113, 6705, 514, 327, 1099, 115, 142]  # HAM10000 dx counts in CLASS_NAMES order


def _batch(seed=0, n=16, c=7):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, c, generator=g) * 3, torch.randint(0, c, (n,), generator=g)


def test_focal_gamma0_no_alpha_equals_cross_entropy():
    logits, target = _batch()
    loss = FocalLoss(COUNTS, gamma=0.0, alpha=None)(logits, target)
    torch.testing.assert_close(loss, F.cross_entropy(logits, target))


def test_focal_matches_formula_with_per_class_alpha():
    logits, target = _batch(1)
    alpha = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7]
    loss = FocalLoss(COUNTS, gamma=2.0, alpha=alpha)(logits, target)
    p = logits.softmax(1)
    pt = p[torch.arange(len(target)), target]
    expected = (-torch.tensor(alpha)[target] * (1 - pt) ** 2 * pt.log()).mean()
    torch.testing.assert_close(loss, expected)


def test_focal_down_weights_easy_examples():
    logits = torch.tensor([[10.0, 0, 0, 0, 0, 0, 0], [0.5, 0, 0, 0, 0, 0, 0]])
    target = torch.tensor([0, 0])
    ce = F.cross_entropy(logits, target, reduction="none")
    loss = FocalLoss(COUNTS, 2.0)
    focal = torch.stack([loss(logits[i : i + 1], target[i : i + 1]) for i in (0, 1)])
    ratio = focal / ce
    assert ratio[0] < 1e-6 < ratio[1]  # the confident example is all but ignored


def test_class_balanced_weights_match_formula():
    beta = 0.999
    w = class_balanced_weights(COUNTS, beta).double().numpy()
    raw = np.array([(1 - beta) / (1 - beta**n) for n in COUNTS])
    np.testing.assert_allclose(w, raw / raw.sum() * len(COUNTS), rtol=1e-6)
    assert w.sum() == pytest.approx(7.0)
    assert w.argmax() == COUNTS.index(min(COUNTS))  # the rarest class weighs most


def test_class_balanced_beta0_is_uniform_and_empty_class_is_finite():
    np.testing.assert_allclose(class_balanced_weights(COUNTS, 0.0).numpy(), np.ones(7))
    w = class_balanced_weights([10, 0, 5], 0.99)
    assert torch.isfinite(w).all()


def test_class_balanced_ce_uses_weights_and_label_smoothing():
    logits, target = _batch(2)
    w = class_balanced_weights(COUNTS, 0.99)
    loss = ClassBalancedLoss(COUNTS, beta=0.99, base="ce", label_smoothing=0.1)(logits, target)
    expected = F.cross_entropy(logits, target, weight=w, label_smoothing=0.1)
    torch.testing.assert_close(loss, expected)
    smooth = CrossEntropyLoss(COUNTS, label_smoothing=0.2)(logits, target)
    torch.testing.assert_close(smooth, F.cross_entropy(logits, target, label_smoothing=0.2))


def test_class_balanced_focal_gamma0_is_weighted_mean_ce():
    logits, target = _batch(3)
    w = class_balanced_weights(COUNTS, 0.99)
    loss = ClassBalancedLoss(COUNTS, beta=0.99, base="focal", gamma=0.0)(logits, target)
    expected = (F.cross_entropy(logits, target, reduction="none") * w[target]).mean()
    torch.testing.assert_close(loss, expected)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: class_balanced_weights(COUNTS, 1.0), "beta"),
        (lambda: FocalLoss(COUNTS, gamma=-1), "gamma"),
        (lambda: FocalLoss(COUNTS, alpha=[0.1, 0.2]), "alpha"),
        (lambda: ClassBalancedLoss(COUNTS, base="dice"), "base"),
    ],
)
def test_bad_settings_raise_clear_errors(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_every_loss_option_builds():
    names = options("loss")
    logits, target = _batch(4)
    for name in sorted(names):
        loss = build_loss(OmegaConf.load(CONF_DIR / "loss" / f"{name}.yaml"), COUNTS)
        value = loss(logits.requires_grad_(), target)
        value.backward()
        assert torch.isfinite(value) and value > 0
