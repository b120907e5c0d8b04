"""A built-in, procedurally generated dermoscopy-like data set, so that glattn trains and
tests without downloads. Each class has its own look, loosely after dermoscopy textbooks
(e.g. Kittler et al., "Dermatoscopy", 2016): melanoma large, irregular and multi-coloured
(black blotches, blue-grey veil); naevus round, brown, reticular network; BCC pink with red
branching vessels; actinic keratosis red with white scale; benign keratosis tan with
cerebriform fissures; dermatofibroma small with a white centre; vascular red-purple
lacunae. Size, colour, border and texture ranges overlap, and skin tone, lighting, hair,
vignetting and noise vary, so the task is learnable but not trivial.

Class frequencies follow HAM10000 (a floor keeps every class splittable); each lesion gets
1-4 images with small rotations, scales and shifts. The set is deterministic for its
parameters and is written once, in the Kaggle HAM10000 layout, to
`<dataset.root>/synthetic-<hash of parameters>/`, then read by the real HAM10000 reader.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw
from scipy.ndimage import gaussian_filter

from glattn.data._atomic import build_once
from glattn.data.classes import CLASS_NAMES, HAM10000_DX_COUNTS
from glattn.data.errors import DataError
from glattn.logging_utils import Progress

log = logging.getLogger(__name__)

GENERATOR_VERSION = 1  # bump when the images change, so old copies are not reused
MIN_IMAGES = 28
IMAGES_PER_LESION = ([1, 2, 3, 4], [0.76, 0.17, 0.05, 0.02])  # HAM10000: 1.34 per lesion
LOCALIZATIONS = ["back", "lower extremity", "trunk", "upper extremity", "abdomen", "face"]


@dataclass(frozen=True)
class Style:
    radius: tuple[float, float]  # lesion radius / min(width, height)
    irregular: tuple[float, float]  # border harmonics amplitude
    edge: tuple[float, float]  # border softness (fraction of the radius)
    colour: tuple[int, int, int]  # base RGB
    texture: str


STYLES: dict[str, Style] = {
    "mel": Style((0.26, 0.40), (0.10, 0.22), (0.03, 0.10), (95, 60, 40), "blotchy"),
    "nv": Style((0.18, 0.30), (0.02, 0.07), (0.08, 0.25), (125, 80, 50), "network"),
    "bcc": Style((0.16, 0.28), (0.05, 0.12), (0.10, 0.25), (200, 135, 130), "vessels"),
    "akiec": Style((0.14, 0.26), (0.08, 0.16), (0.10, 0.30), (185, 100, 85), "scaly"),
    "bkl": Style((0.18, 0.30), (0.04, 0.10), (0.03, 0.08), (150, 110, 70), "cerebriform"),
    "df": Style((0.11, 0.19), (0.02, 0.06), (0.12, 0.30), (140, 95, 70), "central_white"),
    "vasc": Style((0.11, 0.21), (0.02, 0.07), (0.03, 0.08), (165, 45, 75), "lacunae"),
}


def params_hash(num_images: int, width: int, height: int, seed: int) -> str:
    blob = json.dumps([GENERATOR_VERSION, num_images, width, height, seed]).encode()
    return hashlib.sha256(blob).hexdigest()[:12]


def class_counts(num_images: int) -> dict[str, int]:
    """Images per class in HAM10000 proportions, at least min(10, N // 7) each."""
    if num_images < MIN_IMAGES:
        raise DataError(f"dataset.num_images={num_images}: expected at least {MIN_IMAGES}")
    total = sum(HAM10000_DX_COUNTS.values())
    counts = {c: round(num_images * HAM10000_DX_COUNTS[c] / total) for c in CLASS_NAMES}
    floor = min(10, num_images // 7)
    counts = {c: max(floor, n) for c, n in counts.items()}
    counts["nv"] += num_images - sum(counts.values())  # nv absorbs rounding and floors
    return counts


def _noise(rng: np.random.Generator, size: int, sigma: float) -> np.ndarray:
    field = gaussian_filter(rng.standard_normal((size, size)), sigma, mode="wrap")
    return field / (field.std() + 1e-8)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _blend(img: np.ndarray, colour, weight: np.ndarray) -> np.ndarray:
    w = np.clip(weight, 0, 1)[..., None]
    return img * (1 - w) + np.asarray(colour, dtype=np.float32) * w


def _jitter(rng: np.random.Generator, colour, amount: float = 22) -> np.ndarray:
    return np.clip(np.asarray(colour, np.float32) + rng.uniform(-amount, amount, 3), 0, 255)


def _texture(rng, name: str, img, u, v, rho, size: int) -> np.ndarray:
    if name == "blotchy":  # black blotches, blue-grey veil, dots (melanoma)
        black = _jitter(rng, (35, 22, 20))
        img = _blend(img, black, _sigmoid((_noise(rng, size, size / 10) - 0.2) * 4))
        veil = _jitter(rng, (105, 110, 135))
        img = _blend(img, veil, _sigmoid((_noise(rng, size, size / 8) - 0.9) * 4))
        img = _blend(img, (50, 30, 25), (_noise(rng, size, 1.0) > 2.2) * (rho > 0.6))
    elif name == "network":  # reticular pigment network (naevus)
        f, n = rng.uniform(14, 20), _noise(rng, size, size / 12) * 0.15
        lines = np.exp(-(np.sin(f * (u + n)) ** 2) / 0.06) + np.exp(
            -(np.sin(f * (v - n)) ** 2) / 0.06
        )
        img = img * (1 - 0.28 * np.clip(lines, 0, 1)[..., None]) * (0.85 + 0.15 * rho[..., None])
    elif name == "vessels":  # arborising red vessels, shiny white areas (BCC)
        img = _blend(img, (235, 220, 215), _sigmoid((_noise(rng, size, size / 10) - 1.2) * 4))
        mask = Image.new("L", (size, size), 0)
        draw = ImageDraw.Draw(mask)
        for _ in range(rng.integers(4, 9)):
            p = np.array([size / 2, size / 2]) + rng.uniform(-0.5, 0.5, 2) * size / 2.4
            pts = [tuple(p)]
            step, heading = size / 14, rng.uniform(0, 2 * np.pi)
            for _ in range(rng.integers(4, 9)):
                heading += rng.normal(0, 0.6)
                p = p + step * np.array([np.cos(heading), np.sin(heading)])
                pts.append(tuple(p))
            draw.line(pts, fill=255, width=int(rng.integers(1, 3)))
        img = _blend(img, _jitter(rng, (165, 25, 35), 10), np.asarray(mask, np.float32) / 255)
    elif name == "scaly":  # white-yellow scale on a red background (actinic keratosis)
        img = img * (1 + 0.12 * _noise(rng, size, 2.0)[..., None])
        img = _blend(img, _jitter(rng, (235, 228, 205), 10), (_noise(rng, size, 1.2) > 1.1) * 0.9)
    elif name == "cerebriform":  # fissures and ridges, comedo-like dots (benign keratosis)
        n = _noise(rng, size, size / 22)
        img = _blend(img, _jitter(rng, (85, 58, 35)), (np.abs(n) < 0.18) * 0.8)
        img = _blend(img, (230, 220, 190), (_noise(rng, size, 1.0) > 2.6) * 1.0)
    elif name == "central_white":  # white central patch, faint peripheral network (DF)
        img = _blend(img, _jitter(rng, (232, 212, 198), 8), _sigmoid((0.45 - rho) / 0.08))
        img = img * (1 - 0.12 * (np.sin(16 * u) ** 2 > 0.8)[..., None] * (rho > 0.5)[..., None])
    elif name == "lacunae":  # red-blue lacunae (vascular lesion)
        for _ in range(rng.integers(5, 12)):
            cx, cy = rng.uniform(-0.65, 0.65, 2)
            d = np.hypot(u - cx, v - cy) / rng.uniform(0.10, 0.22)
            img = _blend(img, _jitter(rng, (105, 15, 55), 10), _sigmoid((1 - d) * 6))
    return img


def render_lesion(rng: np.random.Generator, dx: str, min_side: int) -> Image.Image:
    """The canonical RGBA picture of one lesion (alpha = lesion mask)."""
    st = STYLES[dx]
    r_px = rng.uniform(*st.radius) * min_side
    irr = rng.uniform(*st.irregular)
    size = int(2 * r_px * (1 + 3 * irr) + 8)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    u, v = (xx - size / 2) / r_px, (yy - size / 2) / r_px
    rho, theta = np.hypot(u, v), np.arctan2(v, u)
    border = np.ones_like(rho)
    for k in range(2, 7):
        amplitude = irr * rng.uniform(0.2, 1.0) / np.sqrt(k - 1)
        border += amplitude * np.cos(k * theta + rng.uniform(0, 6.3))
    edge = rng.uniform(*st.edge)
    alpha = np.clip((border - rho) / edge + 0.5, 0, 1) * rng.uniform(0.85, 1.0)
    img = np.broadcast_to(_jitter(rng, st.colour), (size, size, 3)).astype(np.float32)
    img = img * (1 + 0.08 * _noise(rng, size, size / 6)[..., None])
    img = _texture(rng, st.texture, img, u, v, rho / border, size)
    rgba = np.dstack([np.clip(img, 0, 255), alpha * 255]).astype(np.uint8)
    return Image.fromarray(rgba, "RGBA")


def render_image(
    rng, lesion: Image.Image, skin: np.ndarray, width: int, height: int
) -> Image.Image:
    """One photograph of `lesion` on skin: small rotation/scale/shift, lighting, hair,
    optional dark vignette, sensor noise."""
    shade = 1 + 0.06 * gaussian_filter(rng.standard_normal((height, width)), 12)[..., None] * 8
    bg = np.clip(skin * shade * rng.uniform(0.92, 1.08), 0, 255).astype(np.uint8)
    canvas = Image.fromarray(bg, "RGB")
    scale = rng.uniform(0.88, 1.12)
    patch = lesion.rotate(rng.uniform(-20, 20), resample=Image.BILINEAR, expand=True)
    patch = patch.resize(
        (max(1, int(patch.width * scale)), max(1, int(patch.height * scale))), Image.BILINEAR
    )
    x = int(width / 2 - patch.width / 2 + rng.uniform(-0.08, 0.08) * width)
    y = int(height / 2 - patch.height / 2 + rng.uniform(-0.08, 0.08) * height)
    canvas.paste(patch, (x, y), patch)
    if rng.random() < 0.25:  # hair
        draw = ImageDraw.Draw(canvas)
        for _ in range(rng.integers(1, 5)):
            p = rng.uniform(0, 1, 2) * (width, height)
            pts, heading = [tuple(p)], rng.uniform(0, 2 * np.pi)
            for _ in range(8):
                heading += rng.normal(0, 0.15)
                p = p + width / 12 * np.array([np.cos(heading), np.sin(heading)])
                pts.append(tuple(p))
            draw.line(pts, fill=tuple(int(c) for c in rng.uniform(20, 60, 3)), width=1)
    out = np.asarray(canvas, np.float32)
    if rng.random() < 0.4:  # dermoscope's dark circular vignette
        yy, xx = np.mgrid[0:height, 0:width]
        d = np.hypot((xx - width / 2) / (width / 2), (yy - height / 2) / (height / 2))
        out *= 1 - np.clip((d - rng.uniform(1.0, 1.2)) / 0.1, 0, 1)[..., None]
    out += rng.normal(0, rng.uniform(2, 6), out.shape)
    return Image.fromarray(np.clip(out, 0, 255).astype(np.uint8), "RGB")


def write_synthetic(folder: Path, num_images: int, width: int, height: int, seed: int) -> None:
    """Write the set into `folder` in the Kaggle HAM10000 layout."""
    rng = np.random.default_rng(seed)
    counts = class_counts(num_images)
    plan = []  # (dx, lesion index, images of that lesion)
    for dx in CLASS_NAMES:
        left = counts[dx]
        while left > 0:
            n = min(left, int(rng.choice(IMAGES_PER_LESION[0], p=IMAGES_PER_LESION[1])))
            plan.append((dx, len(plan), n))
            left -= n
    rows = []
    bar = Progress(num_images, "synthetic set: rendering", logger=log)
    for dx, lesion_idx, n in plan:
        bar.update(n)
        lrng = np.random.default_rng([seed, lesion_idx])
        lesion = render_lesion(lrng, dx, min(width, height))
        skin = _jitter(lrng, (215, 165, 140), 8) * lrng.uniform(0.75, 1.1)
        age = "" if lrng.random() < 0.05 else str(int(lrng.integers(4, 18)) * 5)
        sex = lrng.choice(["male", "female", "unknown"], p=[0.53, 0.45, 0.02])
        site = lrng.choice(LOCALIZATIONS)
        for _ in range(n):
            rows.append(
                (
                    f"SYN_L{lesion_idx:07d}",
                    dx,
                    age,
                    sex,
                    site,
                    render_image(lrng, lesion, skin, width, height),
                )
            )
    order = rng.permutation(len(rows))
    records = []
    parts = [folder / "HAM10000_images_part_1", folder / "HAM10000_images_part_2"]
    for p in parts:
        p.mkdir()
    for k, i in enumerate(order):
        lesion_id, dx, age, sex, site, image = rows[i]
        image_id = f"SYN_{k:07d}"
        image.save(parts[int(k >= len(rows) // 2)] / f"{image_id}.jpg", quality=90)
        records.append((lesion_id, image_id, dx, "synthetic", age, sex, site))
    bar.close()
    meta = pd.DataFrame(
        records, columns=["lesion_id", "image_id", "dx", "dx_type", "age", "sex", "localization"]
    )
    meta.to_csv(folder / "HAM10000_metadata.csv", index=False)


def ensure_synthetic(
    base, num_images: int = 2000, width: int = 200, height: int = 150, seed: int = 0
) -> Path:
    """Folder of the synthetic set for these parameters under `base`, generated if absent
    (concurrent callers: one generates, the others wait and reuse it)."""
    final = Path(base) / f"synthetic-{params_hash(num_images, width, height, seed)}"

    def build(tmp: Path) -> None:
        start = time.perf_counter()
        write_synthetic(tmp, num_images, width, height, seed)
        log.info(
            "generated %d synthetic images (%dx%d) in %.1f s -> %s",
            num_images,
            width,
            height,
            time.perf_counter() - start,
            final,
        )

    return build_once(final, build)
