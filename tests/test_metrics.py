"""Metrics: balanced accuracy (ISIC 2018), macro-F1, robust OvR AUC, confusion matrix."""

import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score, f1_score, roc_auc_score

from glattn.data import CLASS_NAMES
from glattn.metrics import compute_metrics, per_class_report, predict

CLASSES = CLASS_NAMES


def _random(n=200, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 7, n)
    logits = rng.normal(size=(n, 7))
    logits[np.arange(n), labels] += 1.0
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    return labels, probs


def test_scalars_agree_with_sklearn():
    labels, probs = _random()
    m = compute_metrics(labels, probs, CLASSES)
    pred = probs.argmax(1)
    assert m["acc"] == pytest.approx((pred == labels).mean())
    assert m["balanced_acc"] == pytest.approx(balanced_accuracy_score(labels, pred))
    assert m["macro_f1"] == pytest.approx(f1_score(labels, pred, average="macro"))
    assert m["auc"] == pytest.approx(roc_auc_score(labels, probs, multi_class="ovr"))
    assert m["confusion"].sum() == len(labels)
    np.testing.assert_array_equal(
        np.diag(m["confusion"]), [((pred == c) & (labels == c)).sum() for c in range(7)]
    )


def test_majority_class_model_is_chance_in_balanced_accuracy():
    labels = np.array([1] * 67 + [0] * 11 + [2] * 5 + [3] * 3 + [4] * 11 + [5] + [6] * 2)
    probs = np.full((len(labels), 7), 0.05)
    probs[:, 1] = 0.7  # always "nv"
    m = compute_metrics(labels, probs, CLASSES)
    assert m["acc"] == pytest.approx(0.67)
    assert m["balanced_acc"] == pytest.approx(1 / 7)
    assert m["recall_nv"] == 1.0 and m["recall_mel"] == 0.0


def test_absent_class_is_skipped_in_auc_and_balanced_accuracy():
    labels, probs = _random(seed=1)
    keep = labels != 5  # no "df" in this split
    m = compute_metrics(labels[keep], probs[keep], CLASSES)
    assert np.isfinite(m["auc"]) and np.isnan(m["recall_df"])
    pred = probs[keep].argmax(1)
    present = sorted(set(labels[keep]))
    kept = labels[keep]
    recalls = [((pred == c) & (kept == c)).sum() / (kept == c).sum() for c in present]
    assert m["balanced_acc"] == pytest.approx(np.mean(recalls))
    single = compute_metrics(np.zeros(4, int), probs[:4], CLASSES)
    assert np.isnan(single["auc"])  # one class only: AUC undefined, no exception


def test_tied_maxima_count_as_wrong():
    probs = np.array([[0.5, 0.5, 0, 0, 0, 0, 0], [0.9, 0.1, 0, 0, 0, 0, 0]])
    assert predict(probs).tolist() == [-1, 0]
    m = compute_metrics([0, 0], probs, CLASSES)
    assert m["acc"] == 0.5 and m["recall_mel"] == 0.5


def test_per_class_report_and_shape_check():
    labels, probs = _random(50, seed=2)
    m = compute_metrics(labels, probs, CLASSES)
    report = per_class_report(m, CLASSES)
    assert list(report["class"]) == list(CLASSES)
    assert report["support"].sum() == 50
    with pytest.raises(ValueError, match="shape"):
        compute_metrics(labels, probs[:, :6], CLASSES)
