"""The torch Dataset over one split: rows of an image source (cached or decoded on the fly)
-> (uint8 image (3, S, S) from `transform`, label int).

`slices()` is the same split without a transform, for augmentation on the device
(glattn.data.augment): a batch of indices is one slice of the source into one uint8 array
(B, R, R, 3), handed on as a (B, 3, R, R) view (channels-last strides, the layout
``trainer.channels_last`` wants) with the labels, already collated (`collate_batch`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset


class LesionDataset(Dataset):
    """`source.get(row)` gives a (R, R, 3) uint8 image; `transform` maps (3, R, R) uint8 to
    the model input. `image_ids` and `labels` (np.int64) are in item order."""

    def __init__(
        self,
        source,
        rows: Sequence[int],
        image_ids: Sequence[str],
        labels: Sequence[int],
        transform: Callable[[torch.Tensor], torch.Tensor] | None,
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
        image = image.permute(2, 0, 1)
        return image if self.transform is None else self.transform(image), int(self.labels[k])

    def __getitems__(self, indices: Sequence[int]):
        """DataLoader's batched fetch (torch.utils.data._utils.fetch): one batch in one go
        when there is no per-image transform, else the images one by one."""
        if self.transform is not None:
            return [self[k] for k in indices]
        idx = np.asarray(indices, dtype=np.int64)
        images = np.stack([self.source.get(int(r)) for r in self.rows[idx]])  # (B, R, R, 3)
        return torch.from_numpy(images).permute(0, 3, 1, 2), torch.from_numpy(self.labels[idx])

    def slices(self) -> LesionDataset:
        """This split without a transform: batches of raw (3, R, R) uint8 cache rows."""
        return LesionDataset(self.source, self.rows, self.image_ids, self.labels, None, self.split)

    def __repr__(self) -> str:
        return f"LesionDataset(split={self.split!r}, n={len(self)})"


def collate_batch(batch):
    """collate_fn for `LesionDataset.slices()`: __getitems__ already returns the batch."""
    return batch
