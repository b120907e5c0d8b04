"""Training augmentation on the training device, batched, with per-sample random parameters
(``dataset.augment=device``, the default).

The same distribution as the per-image pipeline of glattn.data.transforms.train_transform
(torchvision v2: RandomRotation(180), RandomResizedCrop(S, scale 0.35-1, ratio 3/4-4/3),
horizontal and vertical flips, ColorJitter(0.2, 0.2, 0.2, 0.02)), computed for a whole
uint8 batch (B, 3, R, R) at once:

- geometry: rotation, crop and flips of each sample compose into ONE affine matrix
  (output -> input coordinates), applied by ``F.affine_grid``'s grid (computed here by
  broadcasting) + ``F.grid_sample`` (bilinear, zeros outside the image as RandomRotation's
  fill=0): one interpolation instead of two, and only the S x S output pixels are computed;
- colour: brightness, contrast, saturation and hue as torchvision.transforms.v2.functional
  computes them (same formulas, factors per sample). torchvision draws one random order of
  the four per image; here one order per batch (as kornia.augmentation.ColorJitter does):
  every sample's order is still a uniform random permutation, so each sample's
  distribution is unchanged.

Every random number comes from this object's own ``torch.Generator`` (CPU; the few numbers
per sample travel to the device in one pinned, non-blocking copy, so there is no host
synchronisation), seeded from ``seed``; ``state_dict()``/``load_state_dict()`` carry it
through a checkpoint, so a resumed run draws exactly what the uninterrupted run would.
The parameters do not depend on the device: a CPU and a GPU run see the same crops.
Why not kornia.augmentation (benchmarked side by side in benchmarks/data_throughput.py):
it draws from the global torch RNG, with no generator to save, and warps twice (rotation,
then crop) where one warp suffices.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from glattn.data.transforms import normalize_, resize_side

#: ITU-R 601-2 luma, as torchvision's rgb_to_grayscale
_LUMA = (0.2989, 0.587, 0.114)
_ATTEMPTS = 10  # RandomResizedCrop's rejection sampling
_CPU_CHUNK = 8  # samples augmented at once on a CPU


_CONSTANTS: dict = {}


def _const(values, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """A small constant tensor on `device`, made once: torch.tensor(..., device="cuda")
    copies from pageable memory and so synchronises with the host on every call."""
    key = (values, str(device), dtype)
    if key not in _CONSTANTS:
        _CONSTANTS[key] = torch.tensor(values, dtype=dtype, device=device)
    return _CONSTANTS[key]


def _float64(t) -> np.ndarray:
    """A CPU float64 NumPy view (or copy) of a parameter tensor."""
    return torch.as_tensor(t, dtype=torch.float64).detach().cpu().numpy()


def _gray(x: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) -> (B, 1, H, W) luma (ITU-R 601-2, torchvision's rgb_to_grayscale)."""
    r, g, b = x.unbind(-3)
    return (_LUMA[0] * r).add_(g, alpha=_LUMA[1]).add_(b, alpha=_LUMA[2]).unsqueeze(-3)


def _blend_(x: torch.Tensor, other: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """In place: factor * x + (1 - factor) * other, clamped to [0, 1] (torchvision's _blend);
    factor (B,)."""
    f = factor.view(-1, 1, 1, 1)
    return x.mul_(f).add_(other.mul_(1.0 - f)).clamp_(0.0, 1.0)


# The four ColorJitter operations on float (B, 3, H, W) in [0, 1] with one factor per sample
# (B,), in place. Formulas as torchvision.transforms.v2.functional.adjust_* (tests compare).
def adjust_brightness(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    return x.mul_(factor.view(-1, 1, 1, 1)).clamp_(0.0, 1.0)


def adjust_contrast(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    luma = _const(_LUMA, x.device, x.dtype)
    mean = (x.mean(dim=(-2, -1)) @ luma).view(-1, 1, 1, 1)  # mean luma of each image
    return _blend_(x, mean, factor)


def adjust_saturation(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    return _blend_(x, _gray(x), factor)


def adjust_hue(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """HSV hue rotation by factor in [-0.5, 0.5] turns. The hexcone's hue from max M, min m
    and chroma C = M - m (as torchvision's _rgb_to_hsv), and back with the closed form
    channel = M - C * clamp(min(k, 4 - k), 0, 1), k = (n + 6 h) mod 6, n = 5, 3, 1 (R, G, B),
    which equals torchvision's _hsv_to_rgb (V = M, S = C / M) with fewer passes."""
    r, g, b = x.unbind(-3)
    low, high = torch.aminmax(x, dim=-3)  # (B, H, W)
    chroma = high - low
    inv = torch.where(chroma == 0, 1.0, chroma).reciprocal_()
    hue6 = torch.where(  # hue in sextants, in [-1, 5)
        high == r,
        g - b,
        torch.where(high == g, (b - r).add_(chroma, alpha=2.0), (r - g).add_(chroma, alpha=4.0)),
    ).mul_(inv)
    hue6.add_(6.0 * factor.view(-1, 1, 1))
    out = torch.empty_like(x)
    for c, n in enumerate((5.0, 3.0, 1.0)):
        k = torch.remainder(hue6 + n, 6.0)
        k = torch.minimum(k, 4.0 - k).clamp_(0.0, 1.0)
        torch.sub(high, k.mul_(chroma), out=out[:, c])
    return out


def affine_grid(theta: torch.Tensor, size: int) -> torch.Tensor:
    """F.affine_grid(theta, (B, C, size, size), align_corners=False) for a square output by
    broadcasting, 3x cheaper on a CPU than the batched matmul: (B, size, size, 2)."""
    base = (torch.arange(size, dtype=theta.dtype, device=theta.device) * 2 + 1) / size - 1
    xs, ys = base.view(1, 1, -1), base.view(1, -1, 1)
    t = theta.view(-1, 6, 1, 1)
    gx = t[:, 0] * xs + t[:, 1] * ys + t[:, 2]
    gy = t[:, 3] * xs + t[:, 4] * ys + t[:, 5]
    return torch.stack([gx, gy], dim=-1)


COLOUR_OPS = (adjust_brightness, adjust_contrast, adjust_saturation, adjust_hue)


def stream_seed(seed: int) -> int:
    """The augmentation's own stream for a run seed: the loaders' shuffling and the global
    RNG are seeded with `seed` itself, and the same seed would give the same random bits."""
    return int.from_bytes(hashlib.sha256(f"glattn.augment:{seed}".encode()).digest()[:8], "big")


class DeviceAugment:
    """uint8 (B, 3, R, R) on any device -> ImageNet-normalised float32 (B, 3, S, S) there,
    R = resize_side(S). The settings default to train_transform's."""

    def __init__(
        self,
        image_size: int,
        seed: int = 0,
        degrees: float = 180.0,
        scale: Sequence[float] = (0.35, 1.0),
        ratio: Sequence[float] = (3 / 4, 4 / 3),
        flip_p: float = 0.5,
        brightness: float = 0.2,
        contrast: float = 0.2,
        saturation: float = 0.2,
        hue: float = 0.02,
    ):
        self.image_size = int(image_size)
        self.degrees, self.flip_p = float(degrees), float(flip_p)
        self.scale, self.ratio = tuple(scale), tuple(ratio)
        self.jitter = (brightness, contrast, saturation, hue)
        self.generator = torch.Generator().manual_seed(stream_seed(int(seed)))
        self._range_cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    # ------------------------------------------------------------------ random parameters
    def _ranges(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """(high - low, low) of every uniform number one batch of n draws, in draw order:
        angle (n), crop area (n, 10) and log-ratio (n, 10) attempts, crop top and left (n
        each), flips (n, 2), brightness, contrast, saturation, hue (n each). Made once per n."""
        if n not in self._range_cache:
            b, c, s, hu = self.jitter
            ranges = [(n, -self.degrees, self.degrees), (n * _ATTEMPTS, *self.scale)]
            log_ratio = (math.log(self.ratio[0]), math.log(self.ratio[1]))
            ranges += [(n * _ATTEMPTS, *log_ratio), (n, 0.0, 1.0), (n, 0.0, 1.0)]
            ranges += [(2 * n, 0.0, 1.0), (n, max(0.0, 1 - b), 1 + b)]
            ranges += [(n, max(0.0, 1 - c), 1 + c), (n, max(0.0, 1 - s), 1 + s), (n, -hu, hu)]
            width = np.concatenate([np.full(k, hi - lo) for k, lo, hi in ranges])
            low = np.concatenate([np.full(k, lo) for k, lo, _ in ranges])
            self._range_cache[n] = (width, low)
        return self._range_cache[n]

    def sample(self, n: int, side: int) -> dict[str, torch.Tensor]:
        """Parameters for n samples of side x side inputs (CPU tensors), as torchvision draws
        them: angle (deg), crop box (top i, left j, height h, width w, in pixels), flips
        (+1 keep, -1 flip), colour factors (n, 4) and the order of the colour operations.
        Every uniform number of the batch comes from ONE draw of the generator (the same
        numbers, in the same order, as one draw per parameter: the CPU generator fills a
        tensor element by element) and the arithmetic runs in NumPy (float64, the same
        operations): tens of microseconds a batch instead of ~40 small tensor ops of
        several microseconds each (host-side work per step; benchmarks/host_step.py)."""
        width, low = self._ranges(n)
        u = torch.rand(len(width), generator=self.generator, dtype=torch.float64).numpy()
        u = u * width + low
        k = n * _ATTEMPTS
        angle, target = u[:n], float(side * side) * u[n : n + k].reshape(n, _ATTEMPTS)
        # exp by torch, as before: NumPy's exp may differ in the last bit, and a crop side is
        # a rounded value
        aspect = torch.from_numpy(u[n + k : n + 2 * k]).exp().numpy().reshape(n, _ATTEMPTS)
        rest = u[n + 2 * k :]
        w = np.round(np.sqrt(target * aspect))
        h = np.round(np.sqrt(target / aspect))
        ok = (w > 0) & (w <= side) & (h > 0) & (h <= side)
        first = ok.argmax(1)  # the first attempt that fits
        found, rows = ok.any(1), np.arange(n)
        # fallback (no attempt fits): the whole image, since a square's ratio 1 is allowed
        w = np.where(found, w[rows, first], float(side))
        h = np.where(found, h[rows, first], float(side))
        i = np.floor(rest[:n] * (side - h + 1))
        j = np.floor(rest[n : 2 * n] * (side - w + 1))
        flips = np.where(rest[2 * n : 4 * n].reshape(n, 2) < self.flip_p, -1.0, 1.0)
        flips = flips.astype(np.float32)  # the dtype torch.where(..., -1.0, 1.0) gave
        colour = np.ascontiguousarray(rest[4 * n :].reshape(4, n).T)  # b, c, s, hue factors
        order = torch.randperm(4, generator=self.generator)
        return dict(
            angle=torch.from_numpy(angle.copy()),
            crop=torch.from_numpy(np.stack([i, j, h, w], 1)),
            flips=torch.from_numpy(flips),
            colour=torch.from_numpy(colour),
            order=order,
        )

    @staticmethod
    def matrices(params: dict[str, torch.Tensor], side: int) -> torch.Tensor:
        """(n, 2, 3) affine_grid matrices, output -> input in normalised coordinates
        (align_corners=False: -1 and 1 are the image's outer edges): flip, then map into the
        crop box of the rotated image, then undo the rotation about the image centre."""
        i, j, h, w = _float64(params["crop"]).T
        flips = _float64(params["flips"])
        # the crop (flip, scale, shift): [[sx, 0, tx], [0, sy, ty]]
        sx, sy = flips[:, 0] * w / side, flips[:, 1] * h / side
        tx, ty = (2 * j + w) / side - 1, (2 * i + h) / side - 1
        # torchvision rotates counter-clockwise for positive angles (y points down), so an
        # output point p of the rotated image comes from [[cos, -sin], [sin, cos]] p; the
        # product [[cos, -sin], [sin, cos]] @ crop written out (NumPy: a few microseconds)
        a = np.deg2rad(_float64(params["angle"]))
        cos, sin = np.cos(a), np.sin(a)
        rows = [cos * sx, -sin * sy, cos * tx - sin * ty, sin * sx, cos * sy, sin * tx + cos * ty]
        return torch.from_numpy(np.stack(rows, 1).reshape(-1, 2, 3))

    # ------------------------------------------------------------------ applying them
    def apply(
        self, images: torch.Tensor, params: dict[str, torch.Tensor], normalise: bool = False
    ) -> torch.Tensor:
        """uint8 (B, 3, R, R) -> float32 (B, 3, S, S) in [0, 1], or ImageNet-normalised."""
        n, _, side, width = images.shape
        if side != width:
            raise ValueError(f"expected square images (B, 3, R, R), got {tuple(images.shape)}")
        dev = images.device
        packed = torch.cat([self.matrices(params, side).flatten(1), params["colour"]], 1).float()
        if dev.type == "cuda":  # pinned + non_blocking: no host synchronisation
            packed = packed.pin_memory()
        packed = packed.to(dev, non_blocking=True)
        theta, colour = packed[:, :6].view(n, 2, 3), packed[:, 6:]
        order = params["order"].tolist()  # a CPU tensor: no synchronisation
        out = torch.empty(n, 3, self.image_size, self.image_size, device=dev)
        # On a CPU the temporaries of a whole batch outgrow the caches: chunks of a few
        # samples are ~1.7x faster (measured at 224 px). A GPU takes the batch at once.
        step = n if dev.type != "cpu" else _CPU_CHUNK
        for a in range(0, n, step):
            b = min(a + step, n)
            x = images[a:b].float().div_(255.0)
            grid = affine_grid(theta[a:b], self.image_size)
            x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
            for k in order:
                x = COLOUR_OPS[k](x, colour[a:b, k])
            out[a:b] = normalize_(x) if normalise else x
        return out

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (B, 3, R, R) -> ImageNet-normalised float32 (B, 3, S, S), same device."""
        if images.dtype != torch.uint8 or images.ndim != 4:
            raise ValueError(
                f"expected a uint8 batch (B, 3, R, R), got {images.dtype} {tuple(images.shape)}"
            )
        return self.apply(images, self.sample(images.shape[0], images.shape[-1]), True)

    # ------------------------------------------------------------------ checkpointing
    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state(), "image_size": self.image_size}

    def load_state_dict(self, state: dict) -> None:
        if int(state["image_size"]) != self.image_size:
            raise ValueError(
                f"augmentation state for image_size={state['image_size']}, "
                f"this run has {self.image_size}"
            )
        self.generator.set_state(state["generator"])

    def __repr__(self) -> str:
        return (
            f"DeviceAugment(image_size={self.image_size}, input={resize_side(self.image_size)}, "
            f"degrees={self.degrees}, scale={self.scale}, jitter={self.jitter})"
        )


def preview_grid(
    dataset, image_size: int, augment: str, rows: int = 4, draws: int = 5, seed: int = 0
):
    """uint8 (H, W, 3) image: `rows` training images (spread over the split), each as the
    evaluation view (centre crop) and then `draws` augmented versions (tiles of 96-128 px:
    small inputs enlarged, nearest neighbour; large ones shrunk), as the run's
    `augment` mode ("device" | "cpu") draws them. Uses its own random numbers (a fresh
    generator, or a forked global RNG for "cpu"): the run's streams are not advanced."""
    from torchvision.transforms import v2
    from torchvision.utils import make_grid

    from glattn.data.transforms import eval_transform

    size = int(image_size)
    picks = torch.linspace(0, len(dataset) - 1, min(rows, len(dataset))).long().tolist()
    raw, _ = dataset.slices().__getitems__(picks)  # (rows, 3, R, R) uint8
    tiles = []
    if augment == "device":
        aug = DeviceAugment(size, seed)
        views = [aug.apply(raw, aug.sample(len(picks), raw.shape[-1])) for _ in range(draws)]
        views = [(v * 255).round_().to(torch.uint8) for v in views]
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            views = [torch.stack([dataset[k][0] for k in picks]) for _ in range(draws)]
    centre = eval_transform(size)
    for r in range(len(picks)):
        tiles.append(centre(raw[r]))
        tiles.extend(v[r] for v in views)
    tiles = torch.stack(tiles)
    zoom = -(-96 // size)  # small inputs (debug=smoke: 32 px) are enlarged to >= 96 px
    if zoom > 1:
        tiles = tiles.repeat_interleave(zoom, dim=-2).repeat_interleave(zoom, dim=-1)
    elif size > 128:  # large ones shrunk to 128 px: a few hundred KB, not megabytes a run
        tiles = v2.functional.resize(tiles, [128, 128], antialias=True)
    grid = make_grid(tiles, nrow=draws + 1, padding=2, pad_value=255)
    return grid.permute(1, 2, 0).contiguous().numpy()


def save_preview(dataset, image_size: int, augment: str, path, **kw):
    """Write `preview_grid` as a PNG (a run artifact: look at what the model is fed)."""
    from pathlib import Path

    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(preview_grid(dataset, image_size, augment, **kw)).save(path)
    return path
