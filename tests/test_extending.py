"""Extending glattn from one's own files (README "Extending glattn", examples/extending/):
components registered in modules outside the package, option files in a folder on
`hydra.searchpath`, contract errors at build time, and the README's commands run as written
(slow tier: a smoke sweep with a built-in and the new fusion, and the report shows both)."""

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
from conftest import ROOT, compose_cfg

from glattn.models import BACKBONES, FUSIONS, LOCAL_ATTENTION, RESIDUALS, build_model
from glattn.registry import ContractError

EXAMPLES = ROOT / "examples" / "extending"
EXAMPLE_NAMES = ("gated_conv", "layer_scale", "GatedConvFusion", "LayerScaleResidual")
EXAMPLE_NAMES += ("my_fusions", "my_residuals", "make_toy_csv")

pytestmark = pytest.mark.usefixtures("one_thread")


def readme_section() -> str:
    text = (ROOT / "README.md").read_text()
    start, end = text.index("<!-- BEGIN extending -->"), text.index("<!-- END extending -->")
    return text[start:end]


def readme_commands() -> list[str]:
    blocks = re.findall(r"```bash\n(.*?)```", readme_section(), flags=re.S)
    return [line for block in blocks for line in block.splitlines() if line.strip()]


@pytest.fixture
def own_files(tmp_path, monkeypatch):
    """The example folder copied outside the package, importable, registries restored after."""
    folder = tmp_path / "mine"
    shutil.copytree(EXAMPLES, folder)
    monkeypatch.syspath_prepend(str(folder))
    before = {reg: set(reg.names()) for reg in (FUSIONS, RESIDUALS, LOCAL_ATTENTION, BACKBONES)}
    modules = set(sys.modules)
    yield folder
    for reg, names in before.items():
        for name in set(reg.names()) - names:
            reg.unregister(name)
    for name in set(sys.modules) - modules:
        if not name.startswith(("glattn", "torch", "hydra", "omegaconf")):
            sys.modules.pop(name, None)


def compose_with(folder: Path, *overrides: str):
    return compose_cfg(f"hydra.searchpath=[file://{folder / 'my_conf'}]", *overrides)


def test_readme_shows_every_example_file_verbatim():
    section = readme_section()
    files = sorted(p for p in EXAMPLES.rglob("*") if p.is_file() and p.suffix in (".py", ".yaml"))
    assert len(files) >= 5
    for path in files:
        rel = path.relative_to(ROOT).as_posix()
        assert f"`{rel}`:\n\n```" in section, rel
        assert f"\n{path.read_text()}```" in section, f"{rel} differs from its README copy"


def test_no_file_under_glattn_names_the_example_components():
    for path in (ROOT / "glattn").rglob("*.py"):
        text = path.read_text()
        named = [n for n in EXAMPLE_NAMES if n in text]
        assert not named, f"{path.relative_to(ROOT)} names {named}"


def test_own_fusion_and_residual_compose_from_the_search_path_and_train(own_files):
    cfg = compose_with(own_files, "fusion=gated_conv", "residual=layer_scale")
    model = build_model(cfg).train()
    block = model.glsa["layer3"]
    assert type(block.fusion).__name__ == "GatedConvFusion"
    assert type(block.residual).__name__ == "LayerScaleResidual"
    assert FUSIONS.reference("gated_conv") == "Gated convolutional fusion (my paper, 2026)"
    assert RESIDUALS.reference("layer_scale").startswith("LayerScale, Touvron et al.")
    assert model.count_parameters()["fusion"] == 2 * 256 * 256 * 9 + 256
    logits = model(torch.randn(2, 3, 64, 64))
    assert logits.shape == (2, 7)
    torch.nn.functional.cross_entropy(logits, torch.tensor([0, 3])).backward()
    assert block.fusion.gate.weight.grad is not None and block.residual.gamma.grad is not None


def write(folder: Path, rel: str, text: str) -> None:
    path = folder / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_broken_fusion_from_own_files_names_the_contract(own_files):
    write(
        own_files,
        "broken_fusions.py",
        "from torch import nn\n"
        "from glattn.models.fusion import FUSIONS\n\n\n"
        "@FUSIONS.register('squeeze')\n"
        "class Squeeze(nn.Module):\n"
        "    def __init__(self, channels):\n"
        "        super().__init__()\n"
        "        self.conv = nn.Conv2d(channels, 1, 1)\n\n"
        "    def forward(self, A, L, x):\n"
        "        return self.conv(A + L)  # (B, 1, H, W): breaks the contract\n",
    )
    write(
        own_files,
        "my_conf/fusion/squeeze.yaml",
        "_target_: broken_fusions.Squeeze\n_partial_: true\n",
    )
    cfg = compose_with(own_files, "fusion=squeeze")
    with pytest.raises(ContractError) as err:
        build_model(cfg)
    text = str(err.value)
    assert "fusion 'squeeze' (broken_fusions.Squeeze) breaks the fusion contract" in text
    assert "forward(A, L, x) on (2, 256, 7, 7) inputs returned shape (2, 1, 7, 7)" in text
    assert "The fusion contract: `__init__(self, channels, **settings)`" in text


def test_registered_but_unregistered_target_says_how_to_register(own_files):
    write(
        own_files,
        "plain_fusions.py",
        "from torch import nn\n\n\nclass Plain(nn.Identity):\n    pass\n",
    )
    write(
        own_files, "my_conf/fusion/plain.yaml", "_target_: plain_fusions.Plain\n_partial_: true\n"
    )
    with pytest.raises(
        ValueError, match=r"plain_fusions.Plain is not a registered fusion.*FUSIONS"
    ):
        build_model(compose_with(own_files, "fusion=plain"))


LOCAL = """from torch import nn
from glattn.models.cbam import LOCAL_ATTENTION


@LOCAL_ATTENTION.register("channel_gate")
class ChannelGate(nn.Module):
    def __init__(self, channels, reduction=4):
        super().__init__()
        self.fc = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Conv2d(channels, channels // reduction, 1), nn.ReLU(),
            nn.Conv2d(channels // reduction, channels, 1), nn.Sigmoid(),
        )

    def forward(self, x):
        return x * self.fc(x)
"""

BACKBONE = """import torchvision
from torchvision.models.resnet import BasicBlock
from glattn.models.backbones import BACKBONES


@BACKBONES.register("tiny_resnet", reference="a one-block-per-stage ResNet")
def tiny_resnet(num_classes, width_out=None):
    out = width_out or num_classes
    model = torchvision.models.ResNet(BasicBlock, [1, 1, 1, 1], num_classes=out)
    return model, "layer2"
"""


def test_own_local_attention_and_backbone(own_files):
    write(own_files, "my_local.py", LOCAL)
    write(
        own_files,
        "my_conf/attention/channel_gate.yaml",
        "_target_: my_local.ChannelGate\n_partial_: true\n",
    )
    write(own_files, "my_backbones.py", BACKBONE)
    write(
        own_files,
        "my_conf/backbone/tiny_resnet.yaml",
        "_target_: my_backbones.tiny_resnet\n_partial_: true\n",
    )
    cfg = compose_with(
        own_files, "attention=channel_gate", "backbone=tiny_resnet", "fusion=gated_conv"
    )
    model = build_model(cfg)
    assert list(model.glsa) == ["layer2"]  # the builder's stage is the default position
    assert model.backbone_name == "tiny_resnet"
    assert type(model.glsa["layer2"].local_attention).__name__ == "ChannelGate"
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 7)
    cfg = compose_with(own_files, "backbone=tiny_resnet", "glsa.position=[layer3,layer4]")
    assert list(build_model(cfg).glsa) == ["layer3", "layer4"]
    cfg = compose_with(own_files, "backbone=tiny_resnet", "+backbone.width_out=5")
    with pytest.raises(ContractError, match=r"head gives 5 outputs, expected num_classes=7"):
        build_model(cfg)


# ------------------------------------------------------------------------ README, as written
def run_readme(commands: list[str], cwd: Path) -> None:
    """Each README command in a copy of the example folder: `python run.py` is the clone's."""
    shutil.copytree(EXAMPLES, cwd / "examples" / "extending")
    for line in commands:
        words = shlex.split(line)
        env = dict(os.environ, OMP_NUM_THREADS="1", HYDRA_FULL_ERROR="1")
        env.pop("MLFLOW_TRACKING_URI", None)
        while "=" in words[0]:
            key, value = words.pop(0).split("=", 1)
            env[key] = value
        assert words[0] == "python", line
        words[0] = sys.executable
        if words[1] == "run.py":
            words[1] = str(ROOT / "run.py")
        done = subprocess.run(words, cwd=cwd, env=env, capture_output=True, text=True)
        assert done.returncode == 0, f"{line}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"


@pytest.mark.slow
def test_readme_examples_run_as_written_and_the_report_shows_them(tmp_path):
    commands = readme_commands()
    assert len(commands) == 7
    run_readme(commands, tmp_path)
    table3 = (tmp_path / "outputs/reports/my_fusion/table3_fusion.md").read_text()
    for text in ("| original |", "| gated_conv |", "Gated convolutional fusion (my paper, 2026)"):
        assert text in table3
    assert (tmp_path / "outputs/reports/my_fusion/figures/gradcam_fusion.png").stat().st_size
    table4 = (tmp_path / "outputs/reports/my_residual/table4_residual.md").read_text()
    assert "| layer_scale |" in table4 and "LayerScale, Touvron et al." in table4
    classes = ["benign", "dysplastic", "malignant", "vascular"]
    reports = sorted((tmp_path / "outputs/runs").glob("*/*/test_per_class_report.csv"))
    (report,) = [r for r in reports if "benign" in set(pd.read_csv(r)["class"])]
    assert pd.read_csv(report)["class"].tolist() == classes
    split = pd.read_csv(report.parent / "split.csv")
    assert split.groupby("lesion_id")["split"].nunique().max() == 1


OWN_LOSS_AND_OPTIMIZER = """import torch
from glattn.losses import LOSSES
from glattn.optim import OPTIMIZERS


@LOSSES.register("plain_ce")
class PlainCE(torch.nn.CrossEntropyLoss):
    def __init__(self, class_counts):
        super().__init__()


@OPTIMIZERS.register("plain_sgd")
class PlainSGD(torch.optim.SGD):
    pass
"""


def test_own_loss_and_optimizer_pass_the_config_checks(own_files):
    """The checks before any work import a `_target_`'s module first (as Hydra would), so a
    registered extension is accepted and an unregistered class is refused with its name."""
    from glattn.job.lifecycle import check_config

    write(own_files, "my_training.py", OWN_LOSS_AND_OPTIMIZER)
    write(own_files, "my_conf/loss/plain_ce.yaml", "_target_: my_training.PlainCE\n")
    write(
        own_files, "my_conf/optimizer/plain_sgd.yaml", "_target_: my_training.PlainSGD\nlr: 0.01\n"
    )
    try:
        check_config(compose_with(own_files, "loss=plain_ce", "optimizer=plain_sgd"))
        with pytest.raises(ValueError, match=r"torch.optim.RMSprop is not a registered optimizer"):
            check_config(compose_with(own_files, "optimizer._target_=torch.optim.RMSprop"))
    finally:
        from glattn.losses import LOSSES
        from glattn.optim import OPTIMIZERS

        for registry, name in ((LOSSES, "plain_ce"), (OPTIMIZERS, "plain_sgd")):
            if name in registry:
                registry.unregister(name)
