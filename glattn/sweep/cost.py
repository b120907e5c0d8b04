"""The one cost model of a job, for plan mode (glattn.sweep.plan) and the GPU-hours estimate
(glattn.sweep.estimate): how many images an epoch reads and what a job computes.

    training images = images of the data set x (1 - val_fraction - test_fraction)
    training PFLOP  = 3 x forward FLOPs x training images x max_epochs / 1e15
    training hours  = max_epochs x training images / measured img/s / 3600

The data sets' sizes are those distributed (docs/datasets.md); `dataset=synthetic` and a
data set of one's own give theirs as ``dataset.num_images`` (unknown otherwise).
"""

from __future__ import annotations

from collections.abc import Mapping

from glattn.schema import DatasetSchema, defaults_of

#: Images a data set has as distributed (HAM10000 = ISIC 2018 Task 3's training set).
DATASET_IMAGES = {"ham10000": 10015, "isic2018": 10015}
#: ISIC 2018's official evaluation sets (task=eval with dataset.eval_split=official_*).
OFFICIAL_EVAL_IMAGES = {"official_val": 193, "official_test": 1512}
#: A training step's FLOPs per forward FLOP (forward + backward).
TRAIN_STEP_FACTOR = 3.0


def dataset_images(d: Mapping) -> float | None:
    """Images of data-set config `d` (cfg.dataset) before its split; None when unknown."""
    total = DATASET_IMAGES.get(str(d.get("name")), d.get("num_images"))
    return None if total is None else float(total)


def _fraction(d: Mapping, key: str) -> float:
    """``dataset.<key>`` (val_fraction, test_fraction); its declared default when an option
    file does not state it."""
    value = d.get(key)
    return float(defaults_of(DatasetSchema)[key] if value is None else value)


def train_images(d: Mapping) -> float | None:
    """Images of one training epoch: the data set minus its val and test fractions."""
    total = dataset_images(d)
    if total is None:
        return None
    return total * (1.0 - _fraction(d, "val_fraction") - _fraction(d, "test_fraction"))


def eval_images(d: Mapping) -> float | None:
    """Images an eval job reads: an official set, else the holdout test split."""
    total = dataset_images(d)
    official = OFFICIAL_EVAL_IMAGES.get(str(d.get("eval_split")))
    if official is not None or total is None:
        return official
    return total * _fraction(d, "test_fraction")


def job_pflop(forward_flops: float, d: Mapping, task: str, max_epochs: int) -> float | None:
    """A job's compute in PFLOP (see the module docstring); None when its images are unknown."""
    if task == "eval":
        images = eval_images(d)
        return None if images is None else forward_flops * images / 1e15
    images = train_images(d)
    if images is None:
        return None
    return TRAIN_STEP_FACTOR * forward_flops * images * int(max_epochs) / 1e15


def train_seconds(d: Mapping, max_epochs: int, img_s: float) -> float | None:
    """A training job's seconds at a measured throughput (an upper bound: every epoch runs)."""
    images = train_images(d)
    return None if images is None or not img_s else int(max_epochs) * images / float(img_s)
