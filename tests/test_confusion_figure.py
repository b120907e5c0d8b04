"""The job's confusion matrix (counts) and the report's (% of each true class) are drawn by
one function, glattn.metrics.confusion_figure, on scikit-learn's ConfusionMatrixDisplay."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import ConfusionMatrixDisplay

CM = np.array([[8, 2, 0], [1, 3, 0], [0, 0, 0]])  # the last class has no image
NAMES = ["mel", "nv", "bcc"]


@pytest.fixture
def drawn(monkeypatch):
    """Every ConfusionMatrixDisplay drawn: (its values, the texts shown in its cells)."""
    seen = []
    plot = ConfusionMatrixDisplay.plot

    def spy(self, *args, **kwargs):
        out = plot(self, *args, **kwargs)
        seen.append(out)
        return out

    monkeypatch.setattr(ConfusionMatrixDisplay, "plot", spy)
    return seen


def test_the_job_draws_counts(tmp_path, drawn):
    from glattn.job.outputs import plot_confusion

    path = plot_confusion(tmp_path / "cm.png", CM, NAMES, "val confusion matrix")
    assert path.stat().st_size > 1000 and len(drawn) == 1
    (display,) = drawn
    assert [[t.get_text() for t in row] for row in display.text_] == CM.astype(str).tolist()
    assert display.ax_.get_title() == "val confusion matrix"


def test_the_report_draws_percentages_of_each_true_class_with_the_same_function(
    tmp_path, drawn, monkeypatch
):
    from glattn.report import figures, predictions, report

    runs = pd.DataFrame({"task": ["train"], "dataset": ["ham10000"], "run_id": ["r1"]})
    monkeypatch.setattr(figures, "best_strategy", lambda frame, metric: ("original", runs))
    monkeypatch.setattr(predictions, "confusion_sum", lambda files, ids: (CM, NAMES, 2))
    notes: list = []
    paths = report.confusion_figures(None, runs, "balanced_acc", tmp_path, notes)
    assert [p.name for p in paths] == ["confusion_ham10000.png", "confusion_ham10000.pdf"]
    assert notes == [] and len(drawn) == 1
    (display,) = drawn
    texts = [[t.get_text() for t in row] for row in display.text_]
    assert texts[0] == ["80.0%\n(8)", "20.0%\n(2)", "0.0%\n(0)"]
    assert texts[1] == ["25.0%\n(1)", "75.0%\n(3)", "0.0%\n(0)"]
    assert texts[2] == ["0.0%\n(0)"] * 3  # a class without images: zeros, not NaN
    assert display.im_.get_clim() == (0, 100)
    assert "original" in display.ax_.get_title() and "2 seeds" in display.ax_.get_title()
    assert [t.get_text() for t in display.ax_.get_xticklabels()] == NAMES
