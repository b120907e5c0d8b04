"""Extending glattn from one's own files (docs/extending.md,
examples/extending/): classes in modules outside the package named by `_target_` (no
registration), option files in a folder on `hydra.searchpath`, contract errors at build time,
and the page's commands run as written (slow tier: a smoke sweep with a built-in and the
new fusion, and the report shows both, from a process that cannot import the new fusion)."""

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

from glattn.contract import ContractError, reference_of
from glattn.models import build_model

EXAMPLES = ROOT / "examples" / "extending"
EXAMPLE_NAMES = ("gated_conv", "layer_scale", "GatedConvFusion", "LayerScaleResidual")
EXAMPLE_NAMES += ("my_fusions", "my_residuals", "make_toy_csv")

pytestmark = pytest.mark.usefixtures("one_thread")


def readme_section() -> str:
    text = (ROOT / "docs" / "extending.md").read_text()
    start, end = text.index("<!-- BEGIN extending -->"), text.index("<!-- END extending -->")
    return text[start:end]


def readme_commands() -> list[str]:
    blocks = re.findall(r"```bash\n(.*?)```", readme_section(), flags=re.S)
    return [line for block in blocks for line in block.splitlines() if line.strip()]


@pytest.fixture
def own_files(tmp_path, monkeypatch):
    """The example folder copied outside the package, importable; its modules forgotten after."""
    folder = tmp_path / "mine"
    shutil.copytree(EXAMPLES, folder)
    monkeypatch.syspath_prepend(str(folder))
    modules = set(sys.modules)
    yield folder
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
        assert f"\n{path.read_text()}```" in section, (
            f"{rel} differs from its copy in docs/extending.md"
        )


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
    assert reference_of(block.fusion) == "Gated convolutional fusion (my paper, 2026)"
    assert reference_of(block.residual).startswith("LayerScale, Touvron et al.")
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
        "from torch import nn\n\n\n"
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
    assert "fusion broken_fusions.Squeeze breaks the fusion contract" in text
    assert "forward(A, L, x) on (2, 256, 7, 7) inputs returned shape (2, 1, 7, 7)" in text
    assert "The fusion contract: `__init__(self, channels, **settings)`" in text


def test_any_file_name_and_a_plain_class_need_no_registration(own_files):
    """The option's file name is the user's choice; the class is only named by `_target_`."""
    write(
        own_files,
        "plain_fusions.py",
        "from torch import nn\n\n\nclass Plain(nn.Module):\n"
        "    def __init__(self, channels):\n        super().__init__()\n\n"
        "    def forward(self, A, L, x):\n        return A + L\n",
    )
    write(
        own_files,
        "my_conf/fusion/sum_of_branches.yaml",
        "_target_: plain_fusions.Plain\n_partial_: true\n",
    )
    model = build_model(compose_with(own_files, "fusion=sum_of_branches"))
    assert type(model.glsa["layer3"].fusion).__qualname__ == "Plain"


LOCAL = """from torch import nn


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


# ------------------------------------------------------------- docs/extending.md, as written
def run_readme(commands: list[str], cwd: Path) -> None:
    """Each command of docs/extending.md in a copy of the example folder: `python run.py`
    and `glattn` are the clone's."""
    shutil.copytree(EXAMPLES, cwd / "examples" / "extending")
    for line in commands:
        words = shlex.split(line)
        env = dict(os.environ, OMP_NUM_THREADS="1", HYDRA_FULL_ERROR="1")
        env.pop("MLFLOW_TRACKING_URI", None)
        while "=" in words[0]:
            key, value = words.pop(0).split("=", 1)
            if key == "PYTHONPATH":  # before the test process's own (the checkout under test)
                value = os.pathsep.join(filter(None, [value, env.get(key)]))
            env[key] = value
        assert words[0] in ("python", "glattn"), line
        if words[0] == "glattn":  # the console script, from the checkout under test
            words[:1] = ["python", "-m", "glattn.cli"]
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


class PlainCE(torch.nn.CrossEntropyLoss):
    def __init__(self, class_counts):
        super().__init__()


class PlainSGD(torch.optim.SGD):
    pass
"""


def test_own_loss_and_optimizer_pass_the_config_checks(own_files):
    """The checks before any work import each `_target_` (as Hydra would): one's own classes
    are accepted as they are, a target that does not import is refused with its key."""
    from glattn.job.lifecycle import check_config

    write(own_files, "my_training.py", OWN_LOSS_AND_OPTIMIZER)
    write(own_files, "my_conf/loss/plain_ce.yaml", "_target_: my_training.PlainCE\n")
    write(
        own_files, "my_conf/optimizer/plain_sgd.yaml", "_target_: my_training.PlainSGD\nlr: 0.01\n"
    )
    check_config(compose_with(own_files, "loss=plain_ce", "optimizer=plain_sgd"))
    check_config(compose_with(own_files, "optimizer._target_=torch.optim.RMSprop"))
    with pytest.raises(ValueError, match=r"cfg.optimizer._target_=my_training.Nope: cannot imp"):
        check_config(compose_with(own_files, "optimizer._target_=my_training.Nope"))


# ------------------------------------------------- one file, no registration, read as logged
ONE_FILE = """import torch
from torch import nn


class SumFusion(nn.Module):
    reference = "Sum of branches (one-file example, 2026)"

    def __init__(self, channels: int, scale: float = 0.5) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(float(scale)))

    def forward(self, A, L, x):
        return self.scale * (A + L)
"""


def _python(args, cwd, pythonpath, timeout=900):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join(map(str, pythonpath)))
    env.pop("MLFLOW_TRACKING_URI", None)
    done = subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    return done


def _report(store: Path, out: Path, cwd: Path, pythonpath) -> dict[str, str]:
    """The report of experiment `onefile` from a process whose path is `pythonpath` only:
    its tables as written, and the path glattn was imported from."""
    cwd.mkdir(parents=True, exist_ok=True)
    probe = _python(
        [
            "-c",
            "import glattn, importlib.util as u; print(glattn.__file__, "
            "u.find_spec('one_file_fusion'))",
        ],
        cwd,
        pythonpath,
    )
    assert probe.returncode == 0, probe.stderr
    where, spec = probe.stdout.split()
    assert spec == "None"  # the user's module is not importable by the report process
    args = ["-m", "glattn.cli", "report", "onefile", "--include-debug", "--tables", "3"]
    args += ["--tracking-uri", f"sqlite:///{store}", "--out", str(out)]
    done = _python([*args, "--no-figures", "--no-log"], cwd, pythonpath)
    assert done.returncode == 0, f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    tables = {p.name: p.read_text() for p in sorted(out.glob("table*"))}
    return {"glattn": where, **tables}


@pytest.mark.slow
def test_one_file_fusion_trains_sweeps_and_is_reported_without_its_module(tmp_path):
    """A user's fusion is one module plus one YAML (any file name, a folder on the search
    path), no registration: it sweeps beside a built-in, and the report, which cannot import
    it, shows its row and reference from what the jobs logged, the same from a wheel
    installed elsewhere as from the clone."""
    mine = tmp_path / "mine"
    write(mine, "one_file_fusion.py", ONE_FILE)
    write(
        mine,
        "conf/fusion/plain_sum.yaml",
        "_target_: one_file_fusion.SumFusion\n_partial_: true\nscale: 0.5\n",
    )
    sweep = [str(ROOT / "run.py"), "-m", f"hydra.searchpath=[file://{mine / 'conf'}]"]
    sweep += ["fusion=original,plain_sum", "debug=smoke", "tracking.experiment=onefile"]
    sweep += [f"paths.output_dir={tmp_path / 'out'}"]
    done = _python(sweep, tmp_path, [ROOT, mine])
    assert done.returncode == 0, f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    store = tmp_path / "out" / "mlflow.db"
    # the data set's tables and the model table: on the console once, in each job's log
    console = done.stdout + done.stderr
    for detail in ("class balance train", "images per class and split", "GLSA blocks"):
        assert console.count(detail) == 1, (detail, console[-3000:])
    logs = sorted((tmp_path / "out" / "sweeps").glob("onefile/*/*/glattn.log"))
    assert len(logs) == 2 and all("class balance train" in p.read_text() for p in logs)

    clone = _report(store, tmp_path / "rep_clone", tmp_path / "elsewhere1", [ROOT])
    assert clone["glattn"].startswith(str(ROOT))
    table3 = clone["table3_fusion.md"]
    assert "| plain_sum |" in table3 and "| original |" in table3
    assert "Sum of branches (one-file example, 2026)" in table3
    assert "GLSA baseline" in table3

    # a wheel of this tree installed into a folder of its own, run from another folder
    src = tmp_path / "src"
    shutil.copytree(
        ROOT,
        src,
        ignore=shutil.ignore_patterns(
            ".git", ".venv", "outputs", "build", "dist", "*.egg-info", "__pycache__"
        ),
    )
    wheels, site = tmp_path / "wheels", tmp_path / "site"
    pip = ["-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(wheels), str(src)]
    built = _python(pip, tmp_path, [])
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = wheels.glob("glattn-*.whl")
    installed = _python(
        ["-m", "pip", "install", "--no-deps", "--target", str(site), str(wheel)], tmp_path, []
    )
    assert installed.returncode == 0, installed.stderr[-3000:]
    from_wheel = _report(store, tmp_path / "rep_wheel", tmp_path / "elsewhere2", [site])
    assert from_wheel["glattn"].startswith(str(site))
    assert {k: v for k, v in from_wheel.items() if k != "glattn"} == {
        k: v for k, v in clone.items() if k != "glattn"
    }
