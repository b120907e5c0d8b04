"""Run artifacts the report reads (confusion matrices, checkpoints) and writes (itself)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import confusion_matrix

from glattn.tracking.client import make_client

CONFUSION = re.compile(r"confusion.*\.(csv|json|npy)$", re.IGNORECASE)
CONFUSION_PNG = re.compile(r"confusion.*\.png$", re.IGNORECASE)
CHECKPOINT = re.compile(r"(^|/)best\.pt$")


def list_files(client, run_id: str, path: str | None = None) -> list[str]:
    """Every artifact file path of a run (recursive)."""
    infos = client.list_artifacts(run_id, path)
    return [
        p for i in infos for p in (list_files(client, run_id, i.path) if i.is_dir else [i.path])
    ]


def find(client, run_id: str, pattern: re.Pattern, prefer: str = "test") -> str | None:
    """The first artifact path matching `pattern`, preferring paths containing `prefer`."""
    hits = [p for p in list_files(client, run_id) if pattern.search(p)]
    return min(hits, key=lambda p: (prefer not in p.lower(), p), default=None)


def download(client, run_id: str, path: str, dst: Path) -> Path:
    dst.mkdir(parents=True, exist_ok=True)
    return Path(client.download_artifacts(run_id, path, str(dst)))


def read_matrix(path: Path) -> tuple[np.ndarray, list[str] | None]:
    """A square confusion matrix (rows true, columns predicted) from CSV/JSON/NPY."""
    names = None
    if path.suffix.lower() == ".npy":
        m = np.load(path, allow_pickle=False)
    elif path.suffix.lower() == ".json":
        m = json.loads(path.read_text())
        if isinstance(m, dict):
            m, names = m.get("matrix") or m.get("confusion"), m.get("classes")
    else:
        frame = pd.read_csv(path)
        if not pd.api.types.is_numeric_dtype(frame.iloc[:, 0]):
            frame = frame.set_index(frame.columns[0])
        names, m = [str(c) for c in frame.columns], frame.to_numpy()
    m = np.asarray(m, float)
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise ValueError(f"{path}: expected a square confusion matrix, got shape {m.shape}")
    return m, names


def rebuild_confusion(client, run_id: str, tmp: Path, split: str = "test"):
    """(matrix, classes) from the run's predictions and `split.csv`, else (None, None)."""
    files = {Path(p).name: p for p in reversed(list_files(client, run_id))}
    probs_path, split_path = files.get(f"{split}_probabilities.csv"), files.get("split.csv")
    if probs_path is None or split_path is None:
        return None, None
    probs = pd.read_csv(download(client, run_id, probs_path, tmp / run_id / "p"))
    splits = pd.read_csv(download(client, run_id, split_path, tmp / run_id / "s"))
    classes = [str(c).lower() for c in probs.columns[1:]]
    truth = splits[splits["split"] == split].drop_duplicates("image_id").set_index("image_id")
    probs = probs[probs.iloc[:, 0].isin(truth.index)]
    if probs.empty:
        return None, None
    labels = truth.loc[probs.iloc[:, 0], "label"].astype(str).str.lower().to_numpy()
    pred = np.asarray(classes)[probs.iloc[:, 1:].to_numpy().argmax(axis=1)]
    return confusion_matrix(labels, pred, labels=classes).astype(float), classes


def confusion_sum(uri: str, run_ids: list[str], tmp: Path):
    """(matrix, classes, n_runs, png): the sum of the runs' test confusion matrices, and a
    confusion image for when none has numbers."""
    client = make_client(uri)
    total, names, n, png = None, None, 0, None
    for run_id in run_ids:
        path = find(client, run_id, CONFUSION)
        if path is not None:
            m, cls = read_matrix(download(client, run_id, path, tmp / run_id))
        else:
            m, cls = rebuild_confusion(client, run_id, tmp)
        if m is None:
            png_path = find(client, run_id, CONFUSION_PNG)
            if png_path and png is None:
                png = download(client, run_id, png_path, tmp / run_id)
        elif total is None or m.shape == total.shape:
            total = m if total is None else total + m
            names = names or cls
            n += 1
    return total, names, n, png


def checkpoint(uri: str, run: pd.Series, tmp: Path) -> Path | None:
    """The run's ``best.pt`` artifact, else its local checkpoint, else None."""
    from glattn.checkpoint import CheckpointError, resolve_checkpoint

    client, run_id = make_client(uri), run["run_id"]
    path = find(client, run_id, CHECKPOINT)
    if path is not None:
        try:
            return resolve_checkpoint(f"runs:/{run_id}/{path}", uri)
        except CheckpointError:
            return download(client, run_id, path, tmp / run_id)
    out_dir, fp = run.get("params.paths.output_dir"), run.get("fingerprint")
    local = Path(str(out_dir)) / "checkpoints" / str(fp) / "best.pt"
    return local if isinstance(out_dir, str) and isinstance(fp, str) and local.is_file() else None
