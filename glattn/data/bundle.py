"""`build_data(cfg, run_dir)`: config -> validated images -> lesion-grouped splits ->
datasets and loaders (the data half of the pipeline in docs/design.md).

Order of work, so that bad input fails before training: check options -> read metadata
(root, files, columns, labels, duplicates, missing images) -> decode every image once
(cache build, or a fast 1/8-scale check without cache; corrupt files fail or are skipped
with dataset.skip_bad_images=true) -> split -> check every class is in every split (and
warn about byte-identical copies of one image in two splits, glattn.data.identity) ->
write split.csv (and skipped_images.csv) into run_dir.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, WeightedRandomSampler

from glattn.data.cache import DiskImages, build_cache
from glattn.data.datasets import LesionDataset, collate_batch
from glattn.data.errors import DataError
from glattn.data.identity import identical_across_splits
from glattn.data.options import AUGMENTS, SAMPLERS, DataOptions, check_options
from glattn.data.readers import read, reader_of
from glattn.data.splits import assign_splits, check_splits
from glattn.data.transforms import eval_transform, resize_side, train_transform
from glattn.logging_utils import DETAIL

log = logging.getLogger(__name__)


__all__ = ["DataBundle", "build_data"]


@dataclass
class DataBundle:
    train: LesionDataset | None
    val: LesionDataset | None
    test: LesionDataset | None
    class_names: tuple[str, ...]
    train_counts: np.ndarray  # (C,) images per class in the training split
    split_frame: pd.DataFrame  # image_id, lesion_id, label (class name), split
    skipped: pd.DataFrame  # image_id, reason: rows dropped before splitting
    options: DataOptions
    # set by augmenter(): the train loader hands on raw slices only to a caller that has
    # the device augmentation (a forgotten augmenter must not train on unaugmented images)
    augmenter_taken: bool = field(default=False, init=False, repr=False)

    def datasets(self) -> dict[str, LesionDataset]:
        return {
            k: v
            for k, v in (("train", self.train), ("val", self.val), ("test", self.test))
            if v is not None
        }

    def loaders(
        self,
        batch_size: int,
        num_workers: int | None = None,
        sampler: str | None = None,
        seed: int | None = None,
        augment: str | None = None,
    ) -> dict[str, DataLoader]:
        """train: shuffled, or WeightedRandomSampler (sampler="weighted": every class drawn
        equally often in expectation; one epoch = len(train) draws with replacement);
        val/test: in order. Defaults come from cfg.dataset; `seed` seeds the draw order.
        augment="device": the train loader yields raw uint8 (B, 3, R, R) cache slices, one
        slice per batch, for `augmenter()` to transform on the training device;
        "cpu": per-image train_transform in the workers (uint8 (B, 3, S, S)); "none": the
        eval transform for training images too (dataset.augment=none). Default:
        dataset.augment once `augmenter()` has been called (the training job does it
        first), else "cpu"."""
        workers = self.options.num_workers if num_workers is None else num_workers
        sampler = self.options.sampler if sampler is None else sampler
        if augment is None:
            augment = self.options.augment if self.augmenter_taken else "cpu"
        if sampler not in SAMPLERS:
            raise DataError(f"sampler={sampler!r}: expected one of {', '.join(SAMPLERS)}")
        if augment not in AUGMENTS:
            raise DataError(f"augment={augment!r}: expected one of {', '.join(AUGMENTS)}")
        gen = torch.Generator().manual_seed(self.options.seed if seed is None else seed)
        common = dict(
            batch_size=batch_size,
            num_workers=workers,
            pin_memory=torch.cuda.is_available(),
            persistent_workers=workers > 0,
        )
        out = {}
        for split, ds in self.datasets().items():
            if split != "train":
                out[split] = DataLoader(ds, shuffle=False, **common)
                continue
            train = dict(common, drop_last=len(ds) > batch_size)
            if augment == "device":  # workers only slice the cache and collate uint8
                ds, train["collate_fn"] = ds.slices(), collate_batch
            if sampler == "weighted":
                weights = 1.0 / self.train_counts[ds.labels]
                draw = WeightedRandomSampler(
                    torch.as_tensor(weights, dtype=torch.double),
                    len(ds),
                    replacement=True,
                    generator=gen,
                )
                out[split] = DataLoader(ds, sampler=draw, **train)
            else:
                out[split] = DataLoader(ds, shuffle=True, generator=gen, **train)
        return out

    def augmenter(self, augment: str | None = None, seed: int | None = None):
        """The training augmentation for batches of `loaders(augment="device")`
        (glattn.data.augment.DeviceAugment, seeded from cfg.seed), or None for "cpu"."""
        if (self.options.augment if augment is None else augment) != "device":
            return None
        from glattn.data.augment import DeviceAugment

        self.augmenter_taken = True
        return DeviceAugment(self.options.image_size, self.options.seed if seed is None else seed)

    def save_preview(self, path: str | Path, augment: str | None = None) -> Path:
        """A PNG grid of augmented training images as this run draws them (an artifact)."""
        from glattn.data.augment import save_preview

        mode = self.options.augment if augment is None else augment
        return save_preview(self.train, self.options.image_size, mode, path)


def _drop_bad(frame: pd.DataFrame, source, o: DataOptions) -> tuple[pd.DataFrame, list]:
    bad = source.find_bad()
    if not bad:
        return frame, []
    rows = sorted(bad)
    listed = "; ".join(f"{frame['path'].iloc[i]} ({bad[i]})" for i in rows[:5])
    if not o.skip_bad_images:
        raise DataError(
            f"{len(rows)} image(s) cannot be decoded: {listed}"
            f"{' ...' if len(rows) > 5 else ''}; expected readable JPEG/PNG files "
            "(re-download them, or set dataset.skip_bad_images=true to skip and report them)"
        )
    log.warning(
        "skipping %d unreadable image(s) (dataset.skip_bad_images=true): %s", len(rows), listed
    )
    records = [
        (frame["image_id"].iloc[i], f"cannot decode {frame['path'].iloc[i]}: {bad[i]}")
        for i in rows
    ]
    return frame.drop(index=frame.index[rows]), records


def _split(frame: pd.DataFrame, o: DataOptions) -> np.ndarray:
    pool = (frame["origin"] == "train").to_numpy()
    split = np.full(len(frame), "test", dtype=object)  # official rows are the test split
    test_fraction = o.test_fraction if o.eval_split == "holdout" else 0.0
    split[pool] = assign_splits(
        frame["label"].to_numpy()[pool],
        frame["lesion_id"].to_numpy()[pool],
        o.val_fraction,
        test_fraction,
        o.folds,
        o.fold,
        o.split_seed,
    )
    return split


def build_data(cfg: Mapping, run_dir: str | Path | None = None) -> DataBundle:
    """Validated data for `cfg` (reads cfg.dataset, cfg.paths.output_dir, cfg.seed)."""
    o = check_options(cfg)
    frame, class_names = read(o, reader_of(cfg["dataset"]))
    skipped = list(frame.attrs.get("skipped", []))
    frame = frame.reset_index(drop=True)
    side = resize_side(o.image_size)
    paths = frame["path"].tolist()
    source = build_cache(paths, side, o.cache_dir) if o.cache else DiskImages(paths, side)
    frame["row"] = np.arange(len(frame))
    frame, bad = _drop_bad(frame, source, o)
    skipped += bad
    frame["split"] = _split(frame, o)
    how = f"{o.name}, eval_split={o.eval_split}, split_seed={o.split_seed}" + (
        f", fold {o.fold} of {o.folds}" if o.folds > 1 else ""
    )
    split_frame = pd.DataFrame(
        {
            "image_id": frame["image_id"].to_numpy(),
            "lesion_id": frame["lesion_id"].to_numpy(),
            "label": [class_names[i] for i in frame["label"]],
            "split": frame["split"].to_numpy(),
        }
    )
    check_splits(split_frame, how, class_names=class_names)
    identical_across_splits(
        frame["path"].tolist(), frame["split"].tolist(), split_frame["image_id"].tolist()
    )
    skipped_frame = pd.DataFrame(skipped, columns=["image_id", "reason"])
    if run_dir is not None:
        run_dir = Path(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        split_frame.to_csv(run_dir / "split.csv", index=False)
        if len(skipped_frame):
            skipped_frame.to_csv(run_dir / "skipped_images.csv", index=False)
    sets = {}
    for name in ("train", "val", "test"):
        part = frame[frame["split"] == name]
        if len(part):
            augmented = name == "train" and o.augment != "none"
            tf = train_transform(o.image_size) if augmented else eval_transform(o.image_size)
            sets[name] = LesionDataset(
                source, part["row"], part["image_id"], part["label"], tf, name
            )
    if "train" not in sets:
        raise DataError(f"no training images left ({how})")
    counts = np.bincount(sets["train"].labels, minlength=len(class_names))
    log.info("training class counts: %s", dict(zip(class_names, counts.tolist())), extra=DETAIL)
    return DataBundle(
        sets.get("train"),
        sets.get("val"),
        sets.get("test"),
        class_names,
        counts,
        split_frame,
        skipped_frame,
        o,
    )
