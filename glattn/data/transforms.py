"""Image transforms (torchvision.transforms.v2) on uint8 (3, R, R) tensors, R =
resize_side(image_size) (the stored/decoded size, as "resize 256, crop 224" in the
ImageNet recipe of He et al. 2016). Training augmentation suits dermoscopy, which has no
canonical orientation: any rotation, both flips, random resized crops and mild colour
jitter (lighting and skin tone vary between dermoscopes; cf. Perez et al. 2018, "Data
augmentation for skin lesion analysis", arXiv:1809.01442). Evaluation: resize + centre
crop. Both return uint8 (3, S, S) tensors: the loaders yield uint8 batches (4x less to
collate and copy to the GPU than float32) and `normalize` turns a batch into ImageNet-
normalised float32 on its device (glattn.engine does this for every batch), as in
FFCV / DALI style pipelines.
"""

from __future__ import annotations

import torch
from torchvision.transforms import v2

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def resize_side(image_size: int) -> int:
    """Side of the decoded/cached square image for a crop of `image_size` (256 for 224)."""
    return int(round(image_size * 256 / 224))


_MEAN_STD: dict = {}


def normalize_(x: torch.Tensor) -> torch.Tensor:
    """In place: float images (..., 3, H, W) in [0, 1] -> ImageNet-normalised, as
    v2.functional.normalize computes it, with mean and std made once per device (v2 makes
    them on every call: on CUDA a pageable copy that synchronises with the host)."""
    key = (str(x.device), x.dtype)
    if key not in _MEAN_STD:
        shape = (3, 1, 1)
        _MEAN_STD[key] = tuple(
            torch.tensor(v, dtype=x.dtype, device=x.device).view(shape)
            for v in (IMAGENET_MEAN, IMAGENET_STD)
        )
    mean, std = _MEAN_STD[key]
    return x.sub_(mean).div_(std)


def normalize(images: torch.Tensor) -> torch.Tensor:
    """uint8 images (..., 3, H, W) from the transforms -> ImageNet-normalised float32 on the
    same device. Float input is taken as already normalised and returned unchanged."""
    if images.dtype != torch.uint8:
        return images
    return normalize_(v2.functional.to_dtype(images, torch.float32, scale=True))


def train_transform(image_size: int) -> v2.Compose:
    return v2.Compose(
        [
            v2.RandomRotation(180, interpolation=v2.InterpolationMode.BILINEAR),
            v2.RandomResizedCrop(image_size, scale=(0.35, 1.0), antialias=True),
            v2.RandomHorizontalFlip(),
            v2.RandomVerticalFlip(),
            v2.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2, hue=0.02),
        ]
    )


def eval_transform(image_size: int) -> v2.Compose:
    return v2.Compose(
        [
            v2.Resize(resize_side(image_size), antialias=True),  # no-op on cached images
            v2.CenterCrop(image_size),
        ]
    )
