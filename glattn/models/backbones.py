"""Backbones: torchvision ResNet (He et al. 2016, arXiv:1512.03385) and VGG (Simonyan &
Zisserman 2015, arXiv:1409.1556) with their standard heads, the last layer replaced.

`build_backbone(name, num_classes, weights)` builds through torchvision's builders;
`weights` is a torchvision weights enum name (e.g. "IMAGENET1K_V1") or None (from scratch).
Weights come from torch.hub's cache ($TORCH_HOME/hub/checkpoints, default ~/.cache/torch);
when they are neither there nor downloadable, one error names the file and how to provide it.

`stages(model)` splits the trunk into named stages with their output strides, which is
where GLSA blocks can be inserted (see glattn.models.net).

Extension backbones (docs/extending.md): any builder named by a `_target_` (no registration),
`builder(num_classes, **settings) -> (model, stage)`, checked against `CONTRACT` as the
model is built, where `model` is a
torchvision-style classifier, ResNet-style (conv1, bn1, relu, maxpool, layer1..layer4,
avgpool, fc) or VGG-style (features, avgpool, classifier, features cut into blocks at its
max-pools), its head already giving `num_classes` outputs, and `stage` the stage after
which the GLSA block goes by default (what `glsa.position=stride16`, the reference code's place,
means for this backbone).
"""

from __future__ import annotations

import os
import re
import socket
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import torch
import torchvision
from torch import nn

from glattn.contract import Contract

RESNET_PARTS = ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4", "fc")
VGG_PARTS = ("features", "avgpool", "classifier")
CONTRACT = (
    "`builder(num_classes, **settings)` returns `(model, stage)`: a torchvision-style "
    f"classifier, ResNet-style ({', '.join(RESNET_PARTS)}, avgpool) or VGG-style "
    f"({', '.join(VGG_PARTS)}; features an nn.Sequential), whose head gives num_classes "
    "outputs, and the name of the stage after which the GLSA block goes by default"
)


def _probe(built, num_classes: int) -> str | None:
    """An extension builder's result against CONTRACT (no forward pass: no data cost)."""
    if not (isinstance(built, tuple) and len(built) == 2):
        return f"the builder returned {type(built).__name__}, expected a (model, stage) pair"
    model, stage = built
    if not isinstance(model, nn.Module):
        return f"the model is a {type(model).__name__}, expected a torch nn.Module"
    try:
        family(model)
    except TypeError as err:
        return str(err)
    names = {a for s in stages(model) for a in (s.name, *s.aliases)} - {"stem"}
    if stage not in names:
        return f"stage {stage!r} is not one of its stages ({', '.join(sorted(names))})"
    last = head(model)
    last = last[-1] if isinstance(last, nn.Sequential) else last
    out = getattr(last, "out_features", None)
    if out != num_classes:
        return f"its head gives {out} outputs, expected num_classes={num_classes}"
    return None


BACKBONE_CONTRACT = Contract("backbone", CONTRACT, _probe)

DOWNLOAD_TIMEOUT_S = 20.0


def family(model: nn.Module) -> str:
    """ "resnet" or "vgg": torchvision's classes, or any model with their parts."""
    if isinstance(model, torchvision.models.ResNet) or all(
        hasattr(model, a) for a in RESNET_PARTS
    ):
        return "resnet"
    if isinstance(model, torchvision.models.VGG) or (
        all(hasattr(model, a) for a in VGG_PARTS) and isinstance(model.features, nn.Sequential)
    ):
        return "vgg"
    raise TypeError(
        f"unsupported backbone type {type(model).__name__}: expected a torchvision-style "
        f"ResNet ({', '.join(RESNET_PARTS)}, avgpool) or VGG ({', '.join(VGG_PARTS)})"
    )


def weights_file(weights: torchvision.models.WeightsEnum) -> Path:
    """Where torch.hub caches (and torchvision looks for) the file of `weights`."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(weights.url).path)


def resolve_weights(name: str, weights: str | None, download: bool = True):
    """The torchvision weights enum for `weights`, its file made present in the hub cache."""
    if weights is None:
        return None
    enum = torchvision.models.get_model_weights(name)
    allowed = [w.name for w in enum]
    if weights not in allowed:
        raise ValueError(
            f"backbone.weights={weights!r} is not a torchvision weights name for {name}; "
            f"allowed: {', '.join(allowed)} or null (train from scratch)"
        )
    member = enum[weights]
    path = weights_file(member)
    if path.is_file():
        return member
    how = (
        f"Download {member.url} on a machine with network access and copy it to {path} "
        f"(or set TORCH_HOME to a directory holding hub/checkpoints/{path.name}), "
        f"or set backbone.weights=null to train from scratch."
    )
    if not download:
        raise FileNotFoundError(
            f"backbone.weights={weights} for {name}: {path} is not cached and "
            f"backbone.download=false. {how}"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    match = re.search(r"-([a-f0-9]+)\.", path.name)
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)  # no network must mean an error, not a hang
    try:
        torch.hub.download_url_to_file(
            member.url, str(path), match.group(1) if match else None, progress=False
        )
    except Exception as err:  # URLError, timeout, hash mismatch: all mean "not available"
        raise FileNotFoundError(
            f"backbone.weights={weights} for {name}: {path} is not cached and downloading "
            f"it failed ({type(err).__name__}: {err}). {how}"
        ) from err
    finally:
        socket.setdefaulttimeout(previous)
    return member


def build_backbone(
    name: str, num_classes: int, weights: str | None = None, download: bool = True
) -> nn.Module:
    """A torchvision classifier (`name`: one of torchvision's ResNet or VGG builders) with its
    last layer replaced for `num_classes`."""
    builder = torchvision_builder(name)
    if int(num_classes) < 1:
        raise ValueError(f"dataset.num_classes must be >= 1, got {num_classes}")
    model = builder(weights=resolve_weights(name, weights, download))
    if family(model) == "resnet":
        model.fc = nn.Linear(model.fc.in_features, num_classes)
    else:
        model.classifier[-1] = nn.Linear(model.classifier[-1].in_features, num_classes)
    return model


def torchvision_builder(name: str):
    """torchvision's builder of model `name`, from torchvision's own registry: the builders of
    its ResNet and VGG modules (the families `stages` knows)."""
    tv = torchvision.models
    families = {tv.resnet.__name__, tv.vgg.__name__}
    allowed = [m for m in tv.list_models(tv) if tv.get_model_builder(m).__module__ in families]
    if name not in allowed:
        raise ValueError(
            f"backbone.name={name!r} is not a torchvision ResNet or VGG builder; allowed: "
            f"{', '.join(allowed)}"
        )
    return tv.get_model_builder(name)


@dataclass
class Stage:
    """A run of trunk modules ending at output stride `stride` (names: see `aliases`)."""

    name: str
    stride: int
    modules: list[nn.Module]
    aliases: tuple[str, ...]

    @property
    def out_channels(self) -> int:
        convs = [m for mod in self.modules for m in mod.modules() if isinstance(m, nn.Conv2d)]
        return convs[-1].out_channels

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        for module in self.modules:
            x = module(x)
        return x


def stages(model: nn.Module) -> list[Stage]:
    """The trunk as stages. ResNet: stem, layer1..layer4 (strides 4, 4, 8, 16, 32); VGG:
    block1..block5, each ending with its max-pool (strides 2..32). A stage is also named by
    its output stride: `stride16` is the 14x14 map of a 224 input."""
    if family(model) == "resnet":
        stem = [model.conv1, model.bn1, model.relu, model.maxpool]
        out = [Stage("stem", 4, stem, ())]
        for i, stride in zip(range(1, 5), (4, 8, 16, 32)):  # stride4 names layer1, not stem
            layer = [getattr(model, f"layer{i}")]
            out.append(Stage(f"layer{i}", stride, layer, (f"stride{stride}",)))
        return out
    out, current = [], []
    for module in model.features:
        current.append(module)
        if isinstance(module, nn.MaxPool2d):
            i = len(out) + 1
            out.append(Stage(f"block{i}", 2**i, current, (f"stride{2**i}",)))
            current = []
    if current:  # an extension's trunk may end after its last max-pool (VGG's does not)
        out.append(Stage(f"block{len(out) + 1}", out[-1].stride if out else 1, current, ()))
    return out


def gradcam_layer(model: nn.Module) -> nn.Module:
    """Grad-CAM's target: ResNet layer4[-1], VGG's last convolution."""
    if family(model) == "resnet":
        return model.layer4[-1]
    return [m for m in model.features if isinstance(m, nn.Conv2d)][-1]


def head(model: nn.Module) -> nn.Module:
    """The classifier after global pooling: ResNet fc, VGG's three-layer classifier."""
    return model.fc if family(model) == "resnet" else model.classifier
