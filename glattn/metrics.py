"""Classification metrics for imbalanced multi-class data, computed with scikit-learn.

Balanced accuracy is the ISIC 2018 Task 3 official metric (Codella et al. 2019,
https://arxiv.org/abs/1902.03368): the mean per-class recall of the row argmax, where a
row with tied maxima counts as wrong. Plain accuracy is 67% on HAM10000 for a model that
always answers ``nv``, hence ``val/balanced_acc`` is the monitored metric.

Every metric takes optional per-row ``sample_weight``, as the official scorer
(``isic-challenge-scoring``) does: on the ISIC 2018 official sets the scorer gives
ISIC_0035068 weight 0 (glattn.data.isic2018.score_weights), and
glattn.data.isic2018.official_result applies that rule plus the scorer's
one-row-per-ground-truth-image file format to an evaluated split. This module knows no
data set: it imports nothing from glattn.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.metrics import (
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
    roc_auc_score,
)

SCALAR_METRICS = ("balanced_acc", "acc", "macro_f1", "auc")


def predict(probs: np.ndarray) -> np.ndarray:
    """Row argmax; -1 (always wrong) where the maximum is tied, as the ISIC scorer does."""
    probs = np.asarray(probs)
    pred = probs.argmax(axis=1)
    tied = (probs == probs.max(axis=1, keepdims=True)).sum(axis=1) > 1
    pred[tied] = -1
    return pred


def macro_ovr_auc(labels: np.ndarray, probs: np.ndarray, sample_weight=None) -> float:
    """Macro one-vs-rest ROC AUC over the classes that have positives and negatives.

    ``roc_auc_score(multi_class='ovr')`` raises when a class is absent from ``labels``
    (small validation splits of rare classes such as ``df``); those classes are skipped.
    Rows of weight 0 are left out first (as the ISIC scorer does). NaN when no class
    qualifies.
    """
    labels, probs = np.asarray(labels), np.asarray(probs)
    weight = None
    if sample_weight is not None:
        weight = np.asarray(sample_weight, dtype=np.float64)
        keep = weight != 0
        labels, probs, weight = labels[keep], probs[keep], weight[keep]
        weight = None if (weight == 1).all() else weight
    aucs = []
    for c in range(probs.shape[1]):
        positive = labels == c
        if positive.any() and (~positive).any():
            aucs.append(roc_auc_score(positive, probs[:, c], sample_weight=weight))
    return float(np.mean(aucs)) if aucs else float("nan")


def compute_metrics(
    labels: Sequence[int],
    probs: np.ndarray,
    class_names: Sequence[str],
    sample_weight: Sequence[float] | None = None,
) -> dict:
    """Scalar metrics plus per-class precision/recall and the confusion matrix.

    Returns ``{"acc", "balanced_acc", "macro_f1", "auc", "precision_<c>", "recall_<c>",
    "confusion": (C, C) ndarray (rows true, columns predicted)}``. Balanced accuracy
    averages the recall of the classes present in ``labels``; per-class recall of an absent
    class is NaN. ``sample_weight`` weighs every row in every metric (the ISIC scorer's
    ``score_weight``; a row of weight 0 counts nowhere); the confusion matrix stays integer
    when the weights are.
    """
    labels = np.asarray(labels, dtype=np.int64)
    probs = np.asarray(probs, dtype=np.float64)
    num_classes = len(class_names)
    if probs.ndim != 2 or probs.shape != (len(labels), num_classes):
        raise ValueError(f"probs shape {probs.shape}, expected ({len(labels)}, {num_classes})")
    if len(labels) == 0:
        raise ValueError("compute_metrics: no samples")
    weight = np.ones(len(labels)) if sample_weight is None else np.asarray(sample_weight, float)
    if weight.shape != labels.shape or (weight < 0).any() or weight.sum() <= 0:
        raise ValueError(
            f"sample_weight: expected {len(labels)} non-negative weights with a positive sum"
        )
    pred = predict(probs)
    all_classes = list(range(num_classes))
    precision, recall, _, support = precision_recall_fscore_support(
        labels, pred, labels=all_classes, zero_division=0, sample_weight=weight
    )
    present = support > 0
    recall = np.where(present, recall, np.nan)
    # macro-F1 over the classes seen in labels or predictions (sklearn's default label set)
    counted = weight > 0
    seen = sorted(set(labels[counted].tolist()) | set(pred[counted & (pred >= 0)].tolist()))
    f1 = f1_score(
        labels, pred, labels=seen, average="macro", zero_division=0, sample_weight=weight
    )
    out = {
        "acc": float(np.average(pred == labels, weights=weight)),
        "balanced_acc": float(np.nanmean(recall)),
        "macro_f1": float(f1),
        "auc": macro_ovr_auc(labels, probs, None if sample_weight is None else weight),
    }
    for c, name in enumerate(class_names):
        out[f"precision_{name}"] = float(precision[c])
        out[f"recall_{name}"] = float(recall[c])
    confusion = confusion_matrix(labels, pred, labels=all_classes, sample_weight=weight)
    if np.array_equal(weight, np.round(weight)):
        confusion = np.rint(confusion).astype(np.int64)
    out["confusion"] = confusion
    return out


def per_class_report(metrics: dict, class_names: Sequence[str]) -> pd.DataFrame:
    """One row per class: precision, recall, support (from the confusion matrix)."""
    support = metrics["confusion"].sum(axis=1)
    return pd.DataFrame(
        {
            "class": list(class_names),
            "precision": [metrics[f"precision_{c}"] for c in class_names],
            "recall": [metrics[f"recall_{c}"] for c in class_names],
            "support": support.astype(int),
        }
    )


def confusion_figure(
    confusion: np.ndarray, class_names: Sequence[str], title: str, *, percent: bool = False
):
    """The confusion matrix (rows true, columns predicted) as a matplotlib figure, drawn by
    scikit-learn's ``ConfusionMatrixDisplay``: the counts, or with ``percent`` each true
    class's row in % of its images (the count under it; colour scale 0-100%). The job's
    run folder and the report draw it here; the caller saves and closes the figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import ConfusionMatrixDisplay

    counts = np.asarray(confusion)
    shown = counts
    if percent:
        shown = 100 * counts / np.clip(counts.sum(axis=1, keepdims=True), 1e-12, None)
    fig, ax = plt.subplots(figsize=(6, 5.5))
    display = ConfusionMatrixDisplay(shown, display_labels=list(class_names)).plot(
        ax=ax,
        colorbar=percent,
        cmap="Blues",
        xticks_rotation=45,
        values_format=".1f" if percent else "d",
        text_kw={"fontsize": 7} if percent else None,
    )
    if percent:
        display.im_.set_clim(0, 100)
        display.im_.colorbar.set_label("% of the true class (count in brackets)")
        for (i, j), text in np.ndenumerate(display.text_):
            text.set_text(f"{shown[i, j]:.1f}%\n({counts[i, j]:.0f})")
    ax.set_title(title)
    return fig
