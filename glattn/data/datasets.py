"""The torch Dataset over one split: rows of an image source (cached or decoded on the fly)
-> (normalised float image (3, S, S), label int)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from glattn.data.classes import CLASS_NAMES


class LesionDataset(Dataset):
    """`source.get(row)` gives a (R, R, 3) uint8 image; `transform` maps (3, R, R) uint8 to
    the model input. `image_ids` and `labels` (np.int64) are in item order."""

    def __init__(
        self,
        source,
        rows: Sequence[int],
        image_ids: Sequence[str],
        labels: Sequence[int],
        transform: Callable[[torch.Tensor], torch.Tensor],
        split: str = "",
    ):
        self.source = source
        self.rows = np.asarray(rows, dtype=np.int64)
        self.image_ids: list[str] = list(image_ids)
        self.labels: np.ndarray = np.asarray(labels, dtype=np.int64)
        self.transform = transform
        self.split = split

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, k: int) -> tuple[torch.Tensor, int]:
        image = torch.from_numpy(np.array(self.source.get(int(self.rows[k]))))  # (R, R, 3)
        return self.transform(image.permute(2, 0, 1)), int(self.labels[k])

    def class_counts(self) -> np.ndarray:
        return np.bincount(self.labels, minlength=len(CLASS_NAMES))

    def __repr__(self) -> str:
        return f"LesionDataset(split={self.split!r}, n={len(self)})"
