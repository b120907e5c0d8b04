"""Grad-CAM (arXiv:1610.02391) grid comparing fusion strategies: a row per fusion (its best
seed's best.pt), the same test images (one per class) in every column."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pandas as pd

from glattn.report import cells, frames
from glattn.report.predictions import RunFiles


def best_runs(frame: pd.DataFrame, metric: str) -> tuple[str, dict[str, pd.Series]]:
    """(data set, {fusion: best run}) of the first data set and variant with 2+ fusions."""
    train = frames.restrict(frames.trained(frame), {"attention": "cbam", "residual": "original"})
    keys = [k for k in ("dataset", "variant") if k in train]
    for levels in frames.combos(train, keys):
        sub = frames.select(train, keys, levels)
        out = {}
        for fusion in frames.ordered("fusion", sub["fusion"].dropna().unique()):
            runs = sub[sub["fusion"] == fusion]
            score = cells.score(runs, metric)
            out[fusion] = runs.loc[score.idxmax() if score.notna().any() else runs.index[-1]]
        if len(out) > 1:
            return levels[0], out
    return "", {}


def fusion_grid(uri, frame, metric, fig_dir: Path, notes: list, per_class: int = 1) -> list[Path]:
    """Write gradcam_fusion.{png,pdf}; a note says what was left out, or why there is none."""
    ds, best = best_runs(frame, metric)
    if not best:
        notes.append("Grad-CAM grid skipped: fewer than 2 fusion strategies with runs")
        return []
    import torch  # the report imports torch only when it draws this grid

    from glattn.checkpoint import load_checkpoint, load_trained_model
    from glattn.gradcam import model_cams, overlay_grid, pick_per_class

    models, missing = {}, []
    with tempfile.TemporaryDirectory() as tmp:
        files = RunFiles(uri, Path(tmp))
        for fusion, run in best.items():
            path = files.checkpoint(run)
            if path is None:
                missing.append(fusion)
                continue
            try:  # rebuilding a model imports its components: one's own may not import here
                models[fusion] = load_trained_model(load_checkpoint(path))
            except (ImportError, ValueError) as err:
                notes.append(
                    f"Grad-CAM grid: fusion {fusion}'s model cannot be rebuilt in this "
                    f"process ({err}); its row is left out"
                )
    if missing:
        notes.append(
            f"Grad-CAM grid: no best.pt checkpoint (artifact or local) for fusion "
            f"{missing}; those rows are left out"
        )
    if not models:
        notes.append("Grad-CAM grid skipped: no checkpoint of any fusion strategy")
        return []
    first_cfg = next(iter(models.values()))[1]
    try:
        from glattn.data import build_data

        data = build_data(first_cfg, None)
    except Exception as err:  # the data set is not on this machine
        notes.append(
            f"Grad-CAM grid skipped: cannot load the images of "
            f"dataset={first_cfg.dataset.name}: {err}"
        )
        return []
    split = data.test if data.test is not None else data.val
    index = pick_per_class(split.labels, per_class)
    images = torch.stack([split[i][0] for i in index])  # (N, 3, S, S)
    size = int(images.shape[-1])
    other = [f for f, (_, cfg) in models.items() if int(cfg.dataset.image_size) != size]
    if other:
        notes.append(
            f"Grad-CAM grid: fusion {other} trained at another image size than {size}; left out"
        )
    rows, where = model_cams([(f, m) for f, (m, _) in models.items() if f not in other], images)
    heads = [f"true {data.class_names[int(split.labels[i])]}" for i in index]
    on = f"; on {where}" if where else ""
    title = f"Grad-CAM by fusion strategy ({frames.dataset_label(ds)}, best seed each{on})"
    paths = [fig_dir / "gradcam_fusion.png", fig_dir / "gradcam_fusion.pdf"]
    return overlay_grid(images, heads, rows, list(data.class_names), paths, title)
