"""Backbones, block placement, parameter accounting, FLOPs, summary and weight loading."""

import urllib.error

import pytest
import torch
import torchvision
from conftest import compose_cfg, options

from glattn.models import build_model, count_flops, describe_model
from glattn.models.backbones import weights_file


@pytest.mark.parametrize("name", options("backbone"))
def test_every_backbone_builds_with_seven_classes(name):
    model = build_model(compose_cfg(f"backbone={name}")).eval()
    with torch.no_grad():
        logits = model(torch.randn(2, 3, 32, 32))
    assert logits.shape == (2, 7) and torch.isfinite(logits).all()
    counts = model.count_parameters()
    assert counts["glsa"] > 0 and counts["attention"] > 0
    assert counts["total"] == counts["backbone"] + counts["glsa"] + counts["head"]


@pytest.mark.parametrize("name", ["resnet18", "vgg11"])
def test_attention_none_is_the_plain_backbone(name):
    device = "cpu" if name == "resnet18" else "meta"  # vgg11: counts only, skip its init
    with torch.device(device):
        model = build_model(compose_cfg(f"backbone={name}", "attention=none"))
        plain = getattr(torchvision.models, name)(num_classes=7)
    assert len(model.glsa) == 0
    counts = model.count_parameters()
    assert counts["glsa"] == counts["attention"] == counts["fusion"] == counts["residual"] == 0
    assert counts["total"] == sum(p.numel() for p in plain.parameters())
    assert set(model.state_dict()) == {f"backbone.{k}" for k in plain.state_dict()}
    if device == "meta":
        return
    x = torch.randn(2, 3, 32, 32)
    plain.load_state_dict({k[len("backbone.") :]: v for k, v in model.state_dict().items()})
    model.eval(), plain.eval()
    with torch.no_grad():
        assert torch.allclose(model(x), plain(x), atol=1e-6)  # same forward as torchvision


@pytest.mark.parametrize(
    "name,stage,channels", [("resnet18", "layer3", 256), ("vgg11", "block4", 512)]
)
def test_default_block_sits_on_the_14x14_map(name, stage, channels):
    with torch.device("meta"):  # shapes only: no weights, no arithmetic
        model = build_model(compose_cfg(f"backbone={name}")).eval()
        assert list(model.glsa) == [stage]
        seen = []
        model.glsa[stage].register_forward_hook(lambda m, i, o: seen.append(tuple(i[0].shape)))
        model(torch.randn(1, 3, 224, 224))
    assert seen == [(1, channels, 14, 14)]


def test_positions_after_layer3_and_layer4():
    model = build_model(compose_cfg("glsa.position=[layer3,stride32]"))
    assert list(model.glsa) == ["layer3", "layer4"]
    assert model.glsa["layer4"].qkv.in_channels == 512
    assert model(torch.randn(2, 3, 64, 64)).shape == (2, 7)
    with torch.device("meta"):
        vgg = build_model(compose_cfg("backbone=vgg11", "glsa.position=stride32"))
    assert list(vgg.glsa) == ["block5"]


def test_count_parameters_parts():
    model = build_model(
        compose_cfg("fusion=channel_attn", "residual=learnable_gate", "glsa.qkv_reduction=2")
    )
    counts = model.count_parameters()
    assert set(counts) == {"total", "backbone", "glsa", "attention", "fusion", "residual", "head"}
    block = model.glsa["layer3"]
    c, w = 256, 128
    qkv = c * 3 * w + 3 * w
    proj = w * c + c
    cbam = c * (c // 16) * 2 + 2 * 49 + 2  # shared MLP, 7x7 conv on 2 maps, BN(1)
    fusion = c * (c // 16) + c // 16 + (c // 16) * c + c
    assert counts["attention"] == cbam
    assert counts["fusion"] == fusion
    assert counts["residual"] == c
    assert counts["glsa"] == qkv + proj + cbam + fusion + c
    assert counts["head"] == 512 * 7 + 7
    assert counts["total"] == sum(p.numel() for p in model.parameters())
    assert block.proj.in_channels == w


def test_gradcam_layer():
    resnet = build_model(compose_cfg("backbone=resnet18"))
    assert resnet.gradcam_layer is resnet.backbone.layer4[-1]
    with torch.device("meta"):
        vgg = build_model(compose_cfg("backbone=vgg11"))
    assert vgg.gradcam_layer is vgg.backbone.features[18]  # vgg11's last Conv2d
    assert isinstance(vgg.gradcam_layer, torch.nn.Conv2d)
    assert not any(k.startswith("gradcam_layer") for k in vgg.state_dict())


def test_count_flops_counts_attention():
    plain = build_model(compose_cfg("attention=none")).eval()
    block = build_model(compose_cfg("attention=global_only")).eval()
    n, c, w = 14 * 14, 256, 64  # the 14x14 map of resnet18 at 224, qkv_reduction 4
    expected = 2 * n * c * 3 * w + 4 * n * n * w + 2 * n * w * c  # qkv, softmax(QK)V, proj
    assert count_flops(block, 224) - count_flops(plain, 224) == expected


def test_default_block_adds_at_most_ten_percent_flops_to_resnet50():
    with torch.device("meta"):  # FLOPs depend on shapes only; meta SDPA runs as math ops
        glsa = build_model(compose_cfg("backbone=resnet50")).eval()
        plain = build_model(compose_cfg("backbone=resnet50", "attention=none")).eval()
    ratio = count_flops(glsa, 224) / count_flops(plain, 224)
    assert 1.0 < ratio <= 1.10


def test_describe_model():
    model = build_model(compose_cfg("fusion=weighted_add"))
    text = describe_model(model, image_size=32)
    counts = model.count_parameters()
    for part, value in counts.items():
        assert part in text and f"{value:,}" in text
    assert "resnet18" in text and "WeightedAddFusion" in text and "GFLOPs" in text
    plain = describe_model(build_model(compose_cfg("attention=none")))
    assert "none (plain backbone)" in plain


def test_missing_weights_without_download_fail_fast(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "download_url_to_file", pytest.fail)  # never tried
    cfg = compose_cfg("backbone.weights=IMAGENET1K_V1", "backbone.download=false")
    with pytest.raises(FileNotFoundError) as err:
        build_model(cfg)
    message = str(err.value)
    path = tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    assert str(path) in message and "TORCH_HOME" in message
    assert "https://download.pytorch.org/models/resnet18-f37072fd.pth" in message
    assert "backbone.weights=null" in message


def test_undownloadable_weights_name_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    tried = []

    def offline(url, dst, *args, **kwargs):
        tried.append(url)
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(FileNotFoundError, match=r"vgg11-8a719046\.pth.*no network.*TORCH_HOME"):
        build_model(compose_cfg("backbone=vgg11", "backbone.weights=IMAGENET1K_V1"))
    assert tried == ["https://download.pytorch.org/models/vgg11-8a719046.pth"]


def test_cached_weights_are_loaded(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "download_url_to_file", pytest.fail)
    weights = torchvision.models.ResNet18_Weights.IMAGENET1K_V1
    source = torchvision.models.resnet18()  # stands in for the ImageNet file
    path = weights_file(weights)
    assert path == tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    path.parent.mkdir(parents=True)
    torch.save(source.state_dict(), path)
    model = build_model(compose_cfg("backbone.weights=IMAGENET1K_V1"))
    assert torch.equal(model.backbone.conv1.weight, source.conv1.weight)
    assert torch.equal(model.backbone.layer4[1].bn2.running_var, source.layer4[1].bn2.running_var)
    assert model.backbone.fc.out_features == 7  # head replaced after loading


def test_unknown_weights_name_lists_allowed():
    with pytest.raises(ValueError, match="IMAGENET1K_V1.*or null"):
        build_model(compose_cfg("backbone.weights=IMAGENET9K"))


@pytest.mark.parametrize("name", ["resnet18", "vgg11"])
def test_forward_without_blocks_equals_torchvision(name):
    from glattn.models import GLSANet

    torch.manual_seed(0)
    plain = getattr(torchvision.models, name)(num_classes=7).eval()
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(GLSANet(plain)(x), plain(x), atol=1e-6)


def test_deepcopy_runs_its_own_modules():
    import copy

    model = build_model(compose_cfg()).eval()
    twin = copy.deepcopy(model)
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(x), twin(x))
        twin.backbone.layer4[1].conv2.weight.mul_(-1)
        twin.glsa["layer3"].qkv.weight.mul_(0.5)
        assert not torch.allclose(model(x), twin(x))
        twin.load_state_dict(model.state_dict())
        assert torch.equal(model(x), twin(x))
