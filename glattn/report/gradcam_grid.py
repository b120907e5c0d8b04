"""Grad-CAM (Selvaraju et al. ICCV 2017, arXiv:1610.02391) grid: one row per fusion
strategy, the same images in every row, each from that strategy's best checkpoint."""

from __future__ import annotations

from pathlib import Path


def fusion_grid(uri, frame, metric, fig_dir: Path, notes: list) -> list[Path]:
    try:
        import glattn.gradcam  # noqa: F401
    except ImportError:
        notes.append("Grad-CAM grid skipped: glattn.gradcam is not available")
        return []
    notes.append("Grad-CAM grid skipped: not implemented yet")
    return []
