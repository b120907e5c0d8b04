"""What the report reads of a run's artifacts (`RunFiles`): per-image outcomes for the claims
and the confusion figure (a tied maximum is wrong, as in the ISIC scorer), metric histories
and checkpoints."""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import confusion_matrix

from glattn.metrics import predict
from glattn.report import runs, stats
from glattn.tracking import queries

WEIGHT_COLUMNS = ("weight", "score_weight")


@dataclass(frozen=True)
class Predictions:
    """One run's per-image outcome on one split, read from its CSV artifacts."""

    images: np.ndarray  # (n,) str, sorted
    labels: np.ndarray  # (n,) int index into `classes`
    predicted: np.ndarray  # (n,) int: the row argmax, -1 (always wrong) on a tie
    weights: np.ndarray  # (n,) float
    classes: tuple

    @property
    def correct(self) -> np.ndarray:
        return self.predicted == self.labels

    def outcomes(self, keep: np.ndarray | None = None) -> stats.Outcomes:
        """stats.Outcomes on the images `keep` (sorted ids; default all)."""
        mask = np.ones(self.images.size, bool) if keep is None else np.isin(self.images, keep)
        imgs = self.images[mask]
        key = f"{zlib.crc32(chr(0).join(imgs).encode()):08x}-{imgs.size}"
        return stats.Outcomes(
            self.labels[mask], self.correct[mask], self.weights[mask], key, len(self.classes)
        )


def read_predictions(
    probs_csv: Path, split_csv: Path, split: str = "test", skipped_csv: Path | None = None
) -> Predictions:
    """The reader of the runs' per-image CSVs: probabilities (+ weight), split and skipped."""
    probs = pd.read_csv(probs_csv)
    if probs.shape[1] < 3:
        raise runs.ReportError(f"{probs_csv}: expected image + one column per class")
    weight_col = next((c for c in probs.columns if str(c).lower() in WEIGHT_COLUMNS), None)
    class_cols = [c for c in probs.columns[1:] if c != weight_col]
    classes = tuple(str(c).lower() for c in class_cols)
    splits = pd.read_csv(split_csv)
    missing = {"image_id", "label", "split"} - set(splits.columns)
    if missing:
        raise runs.ReportError(f"{split_csv}: missing column(s) {sorted(missing)}")
    # the requested split first, so that an image listed twice takes that split's label
    splits = splits.assign(_other=splits["split"] != split).sort_values("_other", kind="stable")
    truth = splits.drop_duplicates("image_id").set_index("image_id")["label"]
    images = probs.iloc[:, 0].astype(str)
    unknown = images[~images.isin(truth.index)]
    if len(unknown):
        raise runs.ReportError(
            f"{probs_csv}: {len(unknown)} image(s) have no label in {split_csv} "
            f"(first: {unknown.iloc[0]!r})"
        )
    names = truth.loc[images].astype(str).str.lower()
    bad = sorted(set(names) - set(classes))
    if bad:
        raise runs.ReportError(f"{split_csv}: label(s) {bad} are not columns of {probs_csv}")
    labels = names.map({c: i for i, c in enumerate(classes)}).to_numpy(np.int64)
    predicted = predict(probs[class_cols].to_numpy(dtype=float))
    weights = np.ones(len(probs))
    if weight_col:  # a missing or unreadable weight counts nowhere
        weights = np.array(pd.to_numeric(probs[weight_col], errors="coerce").fillna(0), float)
    if skipped_csv is not None and Path(skipped_csv).is_file():
        skipped = pd.read_csv(skipped_csv)
        if "image_id" in skipped.columns:
            weights[images.isin(skipped["image_id"].astype(str)).to_numpy()] = 0.0
    order = np.argsort(images.to_numpy())
    return Predictions(
        images.to_numpy()[order], labels[order], predicted[order], weights[order], classes
    )


class RunFiles:
    """Downloads (once) and reads the per-image predictions and training logs of runs."""

    def __init__(self, uri: str, tmp: Path):
        self.tmp = Path(tmp)
        self.client = runs.client_for(uri)
        self._files: dict[str, list[str]] = {}
        self._preds: dict[tuple, Predictions | None] = {}

    def _list(self, run_id: str, path: str | None = None) -> list[str]:
        """Every artifact file path of a run (recursive)."""
        infos = self.client.list_artifacts(run_id, path)
        return [p for i in infos for p in (self._list(run_id, i.path) if i.is_dir else [i.path])]

    def get(self, run_id: str, name: str) -> Path | None:
        """The run's artifact file called `name` (any folder), downloaded; None if none."""
        if run_id not in self._files:
            self._files[run_id] = self._list(run_id)
        path = next((p for p in self._files[run_id] if Path(p).name == name), None)
        if path is None:
            return None
        dst = self.tmp / run_id / name
        dst.mkdir(parents=True, exist_ok=True)
        return Path(self.client.download_artifacts(run_id, path, str(dst)))

    def checkpoint(self, run: pd.Series) -> Path | None:
        """The run's ``best.pt`` artifact, else its local checkpoint, else None."""
        if (path := self.get(run["run_id"], "best.pt")) is not None:
            return path
        out_dir, fp = run.get("params.paths.output_dir"), run.get("fingerprint")
        if not (isinstance(out_dir, str) and isinstance(fp, str)):
            return None
        local = Path(out_dir) / "checkpoints" / fp / "best.pt"
        return local if local.is_file() else None

    def predictions(self, run_id: str, split: str) -> Predictions | None:
        """A run's predictions on `split` (test, val or eval); None when it logged none."""
        if (run_id, split) not in self._preds:
            probs = self.get(run_id, f"{split}_probabilities.csv")
            splits = self.get(run_id, "split.csv")
            self._preds[run_id, split] = None
            if probs is not None and splits is not None:
                truth_split = "test" if split == "eval" else split
                skipped = self.get(run_id, "skipped_images.csv")
                self._preds[run_id, split] = read_predictions(probs, splits, truth_split, skipped)
        return self._preds[run_id, split]

    def history(self, run_ids, key: str) -> dict[str, dict[int, float]]:
        """{run_id: {epoch: value}}: the metric history, else the run's training_log.csv."""
        out = queries.metric_history(self.client, list(run_ids), key)
        for run_id in [r for r in run_ids if not out.get(r)]:
            path = self.get(run_id, "training_log.csv")
            frame = pd.read_csv(path) if path is not None else pd.DataFrame()
            if {key, "epoch"} <= set(frame.columns):
                frame = frame[["epoch", key]].dropna()
                out[run_id] = {int(e): float(v) for e, v in frame.itertuples(index=False)}
        return out


def confusion_sum(files: RunFiles, run_ids) -> tuple[np.ndarray | None, list[str], int]:
    """The sum of the runs' test confusion matrices (rows true, columns predicted, weighted as
    the runs' own), their classes, and how many runs it sums (runs of other classes left out)."""
    preds = [p for r in run_ids if (p := files.predictions(r, "test")) is not None]
    same = [p for p in preds if p.classes == preds[0].classes]
    if not same:
        return None, [], 0
    classes = range(len(same[0].classes))
    total = sum(
        confusion_matrix(p.labels, p.predicted, labels=classes, sample_weight=p.weights)
        for p in same
    )
    return total, list(same[0].classes), len(same)
