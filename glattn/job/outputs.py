"""The files a job leaves in its run folder (and uploads as MLflow artifacts): per-split
probabilities (ISIC 2018 Task 3 submission format), per-class reports, confusion matrices,
training curves, the resolved config (secrets masked), and the model's size and speed."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from omegaconf import DictConfig, OmegaConf

from glattn import latency
from glattn.config import resolved_config
from glattn.logging_utils import DETAIL
from glattn.metrics import SCALAR_METRICS, confusion_figure, per_class_report

log = logging.getLogger(__name__)


def save_probabilities(path: Path, image_ids, probs: np.ndarray, class_names) -> Path:
    """ISIC 2018 Task 3 submission format: image,MEL,NV,BCC,AKIEC,BKL,DF,VASC."""
    frame = pd.DataFrame(probs, columns=[c.upper() for c in class_names])
    frame.insert(0, "image", list(image_ids))
    frame.to_csv(path, index=False, float_format="%.6f")
    return path


def plot_confusion(path: Path, confusion: np.ndarray, class_names, title: str) -> Path:
    """The counts (`glattn.metrics.confusion_figure`, the report's percentages' twin) as PNG."""
    import matplotlib.pyplot as plt

    fig = confusion_figure(confusion, class_names, title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_curves(path: Path, history: list[dict]) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    frame = pd.DataFrame(history)
    accuracy = ["train/acc", "val/acc", "val/balanced_acc", "val/macro_f1"]
    frame[accuracy] = frame[accuracy] * 100.0  # percent, as the report's figures
    marker = "o" if len(frame) < 3 else "."  # one epoch is a point, not a line: show it
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    frame.plot(x="epoch", y=["train/loss", "val/loss"], ax=axes[0], marker=marker, title="loss")
    frame.plot(x="epoch", y=accuracy, ax=axes[1], marker=marker, title="accuracy and macro F1 (%)")
    frame.plot(
        x="epoch",
        y="lr",
        ax=axes[2],
        marker=marker,
        logy=True,
        legend=False,
        title="learning rate",
    )
    for ax in axes[:2]:
        ax.legend(fontsize="medium")
    for ax in axes:  # whole epochs, also for one epoch (its view would span 0.945-1.055)
        if frame["epoch"].nunique() < 2:
            ax.set_xlim(frame["epoch"].min() - 0.5, frame["epoch"].max() + 0.5)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def official_rules(cfg: DictConfig, result: dict, image_ids, class_names) -> dict:
    """On an ISIC 2018 official set: every metric with the official scorer's weights and,
    as ``official_frame``, the probability table with one row per ground-truth row
    (glattn.data.isic2018.official_result); any other split comes back unchanged."""
    from glattn.data.isic2018 import official_result

    result, frame = official_result(cfg.dataset, result, image_ids, class_names)
    return result if frame is None else {**result, "official_frame": frame}


def split_report(run_dir: Path, prefix: str, result: dict, image_ids, class_names) -> list:
    """Probabilities CSV, per-class report CSV and confusion PNG for one evaluated split."""
    name = prefix.replace("/", "_")
    report = per_class_report(result, class_names)
    report.to_csv(run_dir / f"{name}_per_class_report.csv", index=False)
    probabilities = run_dir / f"{name}_probabilities.csv"
    if result.get("official_frame") is not None:  # see official_rules
        result["official_frame"].to_csv(probabilities, index=False, float_format="%.6f")
    return [
        probabilities
        if result.get("official_frame") is not None
        else save_probabilities(probabilities, image_ids, result["probs"], class_names),
        run_dir / f"{name}_per_class_report.csv",
        plot_confusion(
            run_dir / f"{name}_confusion_matrix.png",
            result["confusion"],
            class_names,
            f"{prefix} confusion matrix",
        ),
    ]


def split_metrics(prefix: str, result: dict, class_names) -> dict:
    out = {f"{prefix}/{m}": result[m] for m in SCALAR_METRICS}
    out[f"{prefix}/loss"] = result["loss"]
    out.update({f"{prefix}/recall_{c}": result[f"recall_{c}"] for c in class_names})
    return out


def write_resolved_config(run_dir: Path, cfg: DictConfig) -> Path:
    """config_resolved.yaml: the whole resolved config, secret values masked."""
    path = Path(run_dir) / "config_resolved.yaml"
    path.write_text(OmegaConf.to_yaml(OmegaConf.create(resolved_config(cfg, masked=True))))
    return path


def model_info(model, cfg: DictConfig, device: torch.device) -> dict:
    from glattn.models import count_flops

    info = {f"model/params_{k}": v for k, v in model.count_parameters().items()}
    size = int(cfg.dataset.image_size)
    info["model/gflops"] = count_flops(model, size) / 1e9
    info[latency.PEAK_MEM_KEY] = latency.peak_memory_mb(device)[0]
    return info


def log_class_balance(data) -> None:
    for split in ("train", "val", "test"):
        ds = getattr(data, split, None)
        if ds is None:
            continue
        counts = np.bincount(np.asarray(ds.labels), minlength=len(data.class_names))
        text = ", ".join(f"{c} {n}" for c, n in zip(data.class_names, counts))
        log.info("class balance %s (%d images): %s", split, int(counts.sum()), text, extra=DETAIL)
