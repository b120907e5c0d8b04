"""Grad-CAM overlays (Selvaraju et al., "Grad-CAM: Visual Explanations from Deep Networks
via Gradient-based Localization", ICCV 2017, https://arxiv.org/abs/1610.02391):
cam = ReLU(sum_k alpha_k A^k), alpha_k = mean over positions of d y_c / d A^k, on the
layer `cam_layer` picks: the last trunk stage whose map is at least 7x7 at the input size
(at 224 px that is the last stage, ResNet ``layer4``, VGG's last conv; at 64 px ResNet's
``layer2``, 8x8, rather than a blocky 2x2 ``layer4``), or its GLSA block when it has one. The
figure title names the layer and its map size.

CLI: ``glattn gradcam CKPT IMAGE [IMAGE ...] [--out gradcam.png] [--device cpu]
[--tracking-uri sqlite:///outputs/mlflow.db]``; CKPT: a run id, ``runs:/<id>`` or a best.pt
file (``python -m glattn.gradcam`` takes the same arguments).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as nnF
from torch import nn

from glattn.data.transforms import normalize
from glattn.models.compiled import eager

log = logging.getLogger(__name__)


def grad_cam(
    model: nn.Module,
    images: torch.Tensor,
    targets: Sequence[int] | None = None,
    layer: nn.Module | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Heat maps (B, H, W) in [0, 1] at the input resolution, and the predicted classes.

    ``targets``: the class to explain per image (default: the predicted class).
    """
    layer = layer if layer is not None else model.gradcam_layer
    images = normalize(images)  # uint8 dataset images -> the model's normalised input
    store = {}

    def keep(_module, _inputs, output):
        store["act"] = output
        output.register_hook(lambda grad: store.__setitem__("grad", grad))

    handle = layer.register_forward_hook(keep)
    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad():
            x = images.clone().requires_grad_(True)  # grads flow even with frozen weights
            logits = model(x)  # (B, C)
            pred = logits.argmax(1)
            target = pred if targets is None else torch.as_tensor(targets, device=pred.device)
            model.zero_grad(set_to_none=True)
            logits.gather(1, target[:, None]).sum().backward()
    finally:
        handle.remove()
        model.train(was_training)
    act, grad = store["act"].detach(), store["grad"].detach()  # (B, K, h, w)
    weights = grad.mean(dim=(2, 3), keepdim=True)  # (B, K, 1, 1)
    cam = nnF.relu((weights * act).sum(1, keepdim=True)).float()  # (B, 1, h, w)
    # normalise at the layer's resolution (a flat map stays flat, not amplified noise)
    flat = cam.flatten(1)
    lo, hi = flat.min(1).values[:, None, None, None], flat.max(1).values[:, None, None, None]
    cam = torch.where(hi - lo > 1e-6 * hi.abs().clamp(min=1e-12), (cam - lo) / (hi - lo), 0)
    cam = nnF.interpolate(cam, size=images.shape[-2:], mode="bilinear", align_corners=False)
    return cam[:, 0].clamp(0, 1).cpu(), pred.cpu()


#: The smallest map side worth explaining (Grad-CAM on a 2x2 map is four blocks).
MIN_SIDE = 7


def cam_layer(model: nn.Module, image_size: int, min_side: int = MIN_SIDE):
    """``(name, module, (h, w))``: the last trunk stage whose output map is at least
    ``min_side`` on a side for ``image_size`` inputs (its GLSA block's output when the stage
    has one; for a VGG block its last conv, before the pool), else the stage with the largest
    map. Models without trunk stages: their ``gradcam_layer``."""
    from glattn.models import backbones as bb

    backbone, blocks = getattr(model, "backbone", None), getattr(model, "glsa", {})
    if backbone is None:
        return "gradcam_layer", model.gradcam_layer, None
    candidates = []
    for stage in bb.stages(backbone):
        if stage.name in blocks:
            module = blocks[stage.name]
        else:
            convs = [m for mod in stage.modules for m in mod.modules() if isinstance(m, nn.Conv2d)]
            module = stage.modules[-1] if bb.family(backbone) == "resnet" else convs[-1]
        candidates.append((stage.name, module))
    shapes, hooks = {}, []
    for name, module in candidates:
        hooks.append(
            module.register_forward_hook(
                lambda _m, _i, out, name=name: shapes.__setitem__(name, tuple(out.shape[-2:]))
            )
        )
    device = next(model.parameters()).device
    was_training = model.training
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, 3, image_size, image_size, device=device))
    finally:
        for hook in hooks:
            hook.remove()
        model.train(was_training)
    large = [(n, m) for n, m in candidates if min(shapes.get(n, (0, 0))) >= min_side]
    name, module = large[-1] if large else max(candidates, key=lambda c: min(shapes[c[0]]))
    return name, module, shapes[name]


def pick_per_class(labels: Sequence[int], per_class: int) -> list[int]:
    """The first ``per_class`` indices of each class, class by class."""
    labels = np.asarray(labels)
    index = []
    for c in np.unique(labels):
        index.extend(np.flatnonzero(labels == c)[:per_class].tolist())
    return index


def _display(image: torch.Tensor) -> np.ndarray:
    """A (3, H, W) image as an (H, W, 3) array in [0, 1]: uint8 as it is, a normalised
    float tensor by per-image min-max."""
    if image.dtype == torch.uint8:
        return image.detach().cpu().permute(1, 2, 0).numpy() / 255.0
    img = image.detach().float().cpu().permute(1, 2, 0).numpy()
    return (img - img.min()) / max(float(img.max() - img.min()), 1e-8)


def model_cams(
    models: Iterable[tuple[str, nn.Module]], images: torch.Tensor, device="cpu"
) -> tuple[list[tuple[str, torch.Tensor, torch.Tensor]], str]:
    """Grad-CAM of several models on the same images, each on its own `cam_layer`: rows of
    ``(name, cams, predicted classes)``, and the layer the maps come from ("layer4, 7x7
    map"; the distinct ones joined by " / " when the models differ)."""
    rows, wheres = [], []
    # cudnn.benchmark (on for CUDA training) would autotune every conv for these one-off
    # shapes, seconds on a GPU; a GLSA block compiled in place (trainer.compile=auto on CUDA)
    # runs eagerly here: new shapes and hooks would recompile it
    benchmark, torch.backends.cudnn.benchmark = torch.backends.cudnn.benchmark, False
    try:
        for name, model in models:
            with eager(model):
                layer_name, layer, shape = cam_layer(model, int(images.shape[-1]))
                cams, preds = grad_cam(model, images.to(device), layer=layer)
            rows.append((name, cams, preds))
            where = f"{layer_name}, {shape[0]}x{shape[1]} map" if shape else layer_name
            wheres += [where] if where not in wheres else []
    finally:
        torch.backends.cudnn.benchmark = benchmark
    return rows, " / ".join(wheres)


def overlay_grid(
    images, heads: Sequence[str], rows, class_names, paths: Sequence[Path], title: str, cols=7
) -> list[Path]:
    """Save one figure to each of ``paths`` (PNG, PDF): a header row of the plain images
    (titled by ``heads``: "true mel", a file name), then a row of Grad-CAM overlays per
    ``model_cams`` row, titled by the predicted class and labelled by the model's name. Past
    ``cols`` images the whole block wraps below: each overlay stays under its image."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n, m, lines = len(images), len(rows) + 1, [("image", None, None), *rows]
    cols = max(min(n, cols), 1)
    blocks = (n + cols - 1) // cols
    size, ticks = (1.7 * cols + 0.6, 1.8 * blocks * m), {"xticks": [], "yticks": []}
    fig, axes = plt.subplots(blocks * m, cols, figsize=size, squeeze=False, subplot_kw=ticks)
    for ax in axes[-m:, n - (blocks - 1) * cols :].flat:  # the last block's empty cells
        ax.axis("off")
    for i in range(n):
        block, c = divmod(i, cols)
        shown = _display(images[i])  # once per image, under every row's overlay
        for k, (name, cams, preds) in enumerate(lines):
            ax = axes[block * m + k, c]
            ax.imshow(shown)
            if cams is not None:
                ax.imshow(cams[i].numpy(), cmap="jet", alpha=0.45, vmin=0, vmax=1)
            head = heads[i] if cams is None else f"pred {class_names[int(preds[i])]}"
            ax.set_title(head, fontsize=8)
            ax.set_ylabel(name if c == 0 else "", fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    for p in paths:
        p.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(p, dpi=120, bbox_inches="tight", pad_inches=0.1)
    plt.close(fig)
    return list(paths)


def gradcam_grid(
    model: nn.Module,
    images: torch.Tensor,
    labels: Sequence[int | None],
    class_names: Sequence[str],
    path: Path,
    device: torch.device | str = "cpu",
    titles: Sequence[str] | None = None,
) -> Path:
    """Save a grid: the images (titled by ``titles``, else their true class) above their
    Grad-CAM overlays for the predicted class; returns ``path``."""
    rows, where = model_cams([("Grad-CAM", model)], images, device)
    heads = titles or [f"true {class_names[t]}" if t is not None else "" for t in labels]
    title = f"Grad-CAM on {where} (predicted class)"
    (path,) = overlay_grid(images, heads, rows, class_names, [Path(path)], title)
    log.info("Grad-CAM grid on %s: %s", where, path)
    return path


def load_images(paths: Sequence[str], image_size: int) -> torch.Tensor:
    """Images as the evaluation transform gives them: uint8 (N, 3, S, S), resized (square)
    and centre-cropped; grad_cam normalises them."""
    from PIL import Image
    from torchvision.transforms import v2

    from glattn.data.transforms import eval_transform, resize_side

    side = resize_side(image_size)
    transform = v2.Compose(
        [v2.ToImage(), v2.Resize((side, side), antialias=True), eval_transform(image_size)]
    )
    out = []
    for p in paths:
        if not Path(p).is_file():
            raise FileNotFoundError(f"images: {p} does not exist")
        with Image.open(p) as img:
            out.append(transform(img.convert("RGB")))
    return torch.stack(out)


def configure(p: argparse.ArgumentParser) -> None:
    """`glattn gradcam`'s arguments."""
    p.description = "Grad-CAM overlays of a trained model on image files, as one figure."
    p.add_argument("ckpt", help="the trained model: an MLflow run id, runs:/<id> or a best.pt")
    p.add_argument("images", nargs="+", help="image files")
    p.add_argument("--out", type=Path, default=Path("gradcam.png"), help="the figure (PNG)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:<N>, auto (default cpu)")
    p.add_argument("--tracking-uri", default=None, help="the store of a run id / runs:/ CKPT")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Write the figure; prints its path."""
    from glattn.checkpoint import load_model
    from glattn.data.readers import class_names_of
    from glattn.runtime import resolve_device

    model = load_model(str(args.ckpt), args.tracking_uri)
    train_cfg = model.config
    device = resolve_device(str(args.device))
    model.to(device)
    images = load_images(args.images, int(train_cfg.dataset.image_size))
    names = list(class_names_of(train_cfg.dataset))  # the training data set's own classes
    titles = [Path(p).name for p in args.images]
    print(gradcam_grid(model, images, [None] * len(args.images), names, args.out, device, titles))
    return 0


#: the dotlist keys of the older command form, for the message that gives the new one
_DOTLIST = ("ckpt_path=", "images=", "out=", "device=", "tracking_uri=")


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m glattn.gradcam ...`` = ``glattn gradcam ...``."""
    args = list(sys.argv[1:] if argv is None else argv)
    if any(a.startswith(_DOTLIST) for a in args):
        raise SystemExit(
            "glattn gradcam takes options now: glattn gradcam CKPT IMAGE [IMAGE ...] "
            "[--out gradcam.png] [--device cpu] [--tracking-uri URI] (was: ckpt_path=... "
            "images=[...] out=... device=... tracking_uri=...)"
        )
    p = argparse.ArgumentParser(prog="glattn gradcam")
    configure(p)
    parsed = p.parse_args(args)
    return parsed.run(parsed)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    sys.exit(main())
