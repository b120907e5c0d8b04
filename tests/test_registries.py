"""One registry idiom for every config group: conf/<group>/*.yaml and the group's registry hold
the same names, and each option file points at its own registry entry. Plus the Registry
itself: references, the how-to-register error, contract checks and `glattn.plugins`."""

import importlib
import sys

import pytest
import torch
from conftest import CONF_DIR, compose_cfg
from omegaconf import OmegaConf

import glattn.registry as registry_module
from glattn.groups import REGISTRY_GROUPS
from glattn.models import FUSIONS, RESIDUALS, build_model
from glattn.registry import ContractError, Registry, registries

GROUPS = REGISTRY_GROUPS  # the table's groups with a registry (glattn.groups)


def group_registry(group: str) -> Registry:
    return registries()[group]


def option_files(group: str) -> set[str]:
    return {p.stem for p in (CONF_DIR / group).glob("*.yaml")}


def test_every_group_has_a_registry():
    assert set(registries()) == set(GROUPS)


@pytest.mark.parametrize("group", GROUPS)
def test_option_files_and_registry_hold_the_same_names(group):
    assert option_files(group) == set(group_registry(group).keys())


@pytest.mark.parametrize("group", GROUPS)
def test_each_option_file_names_its_own_entry(group):
    """`name` (dataset) or `_target_` (everything else) leads to the entry of the file's name."""
    reg = group_registry(group)
    for option in sorted(option_files(group)):
        node = OmegaConf.load(CONF_DIR / group / f"{option}.yaml")
        if group == "dataset":
            assert node.name == option
            continue
        if group == "backbone":  # built-ins: one builder over torchvision's, by name
            assert node.name == option and option in reg
            continue
        from hydra.utils import get_object

        entry = get_object(node._target_)
        if isinstance(reg, Registry):
            assert reg.name_of(entry) == option, (group, option, node._target_)
        else:
            assert reg[option] == node._target_


def test_registry_keeps_references_and_refuses_a_second_entry():
    reg = Registry("widget", contract="`Widget()`")
    reg.register("a", reference="Someone et al. 2024")(dict)
    reg.register("b")(list)
    assert reg.names() == ["a", "b"] and reg.reference("a") == "Someone et al. 2024"
    assert reg.references() == {"a": "Someone et al. 2024", "b": None}
    assert reg["a"] is dict and "a" in reg and len(reg) == 2 and reg.items()[1] == ("b", list)
    with pytest.raises(ValueError, match="widget option 'a' is registered twice"):
        reg.register("a")(set)
    with pytest.raises(KeyError, match="unknown widget option 'c'; allowed: a, b"):
        reg.get("c")


def test_unregistered_target_says_how_to_register():
    cfg = compose_cfg("fusion._target_=torch.nn.Identity")
    with pytest.raises(ValueError) as err:
        build_model(cfg)
    text = str(err.value)
    assert "cfg.fusion._target_=torch.nn.Identity is not a registered fusion" in text
    assert "original, learnable_gate" in text
    assert "from glattn.models.fusion import FUSIONS" in text
    assert '@FUSIONS.register("<name>")' in text and "PYTHONPATH" in text
    assert "glattn.plugins" in text


def test_target_that_cannot_be_imported_names_the_key():
    cfg = compose_cfg("fusion._target_=no_such_module.Fusion")
    with pytest.raises(ValueError, match="cfg.fusion._target_=no_such_module.Fusion: cannot imp"):
        build_model(cfg)


class _HalfWidth(torch.nn.Module):
    """Breaks the fusion contract: R has half the channels of x."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(channels, channels // 2, 1)

    def forward(self, A, L, x):
        return self.conv(A * L)


class _NoChannels(torch.nn.Module):
    """Breaks the residual contract: no `channels` argument (nn.Module's catch-all __init__)."""

    def forward(self, x, R):
        return x + R


@pytest.fixture
def throwaway():
    """Register components for one test; the registries are as before afterwards."""
    added = []

    def add(reg, name, obj):
        reg.register(name)(obj)
        added.append((reg, name))
        return f"{obj.__module__}.{obj.__qualname__}"

    yield add
    for reg, name in added:
        reg.unregister(name)


def test_wrong_output_shape_is_a_contract_error_at_build_time(throwaway):
    target = throwaway(FUSIONS, "half_width", _HalfWidth)
    cfg = compose_cfg()
    cfg.fusion = OmegaConf.create({"_target_": target, "_partial_": True})
    with pytest.raises(ContractError) as err:
        build_model(cfg)
    text = str(err.value)
    assert "fusion 'half_width'" in text and "breaks the fusion contract" in text
    assert "returned shape (2, 128, 7, 7), expected (2, 256, 7, 7)" in text
    assert "`forward(A, L, x)`" in text and "`__init__(self, channels, **settings)`" in text


def test_wrong_constructor_signature_is_a_contract_error(throwaway):
    target = throwaway(RESIDUALS, "no_channels", _NoChannels)
    cfg = compose_cfg()
    cfg.residual = OmegaConf.create({"_target_": target, "_partial_": True})
    with pytest.raises(ContractError, match="residual 'no_channels'.*constructor"):
        build_model(cfg)


class _Settings(torch.nn.Module):
    def __init__(self, channels: int, gain: float = 1.0) -> None:
        super().__init__()

    def forward(self, x, R):
        return x + R


def test_unknown_setting_is_a_contract_error_naming_the_call(throwaway):
    target = throwaway(RESIDUALS, "settings", _Settings)
    cfg = compose_cfg()
    cfg.residual = OmegaConf.create({"_target_": target, "_partial_": True, "gian": 2.0})
    with pytest.raises(ContractError, match=r"cannot be called as \(256, gian=2.0\).*gian"):
        build_model(cfg)


def test_contract_check_runs_on_the_meta_device():
    cfg = compose_cfg("fusion=cross_attn", "residual=drop_path")
    with torch.device("meta"):
        model = build_model(cfg)
    assert next(model.parameters()).is_meta


def test_contract_probe_draws_no_random_numbers():
    torch.manual_seed(0)
    build_model(compose_cfg("fusion=channel_attn"))
    after_build = torch.rand(1)
    torch.manual_seed(0)
    build_model(compose_cfg("fusion=channel_attn"))
    assert torch.equal(after_build, torch.rand(1))


def test_plugins_entry_points_are_imported_once(tmp_path, monkeypatch):
    """An installed package names its module in the `glattn.plugins` entry-point group."""
    (tmp_path / "glattn_test_plugin.py").write_text(
        "from glattn.models.fusion import FUSIONS\n"
        "from torch import nn\n"
        "@FUSIONS.register('plugin_sum', reference='A plugin, 2026')\n"
        "class PluginSum(nn.Module):\n"
        "    def __init__(self, channels):\n"
        "        super().__init__()\n"
        "    def forward(self, A, L, x):\n"
        "        return A + L\n"
    )
    dist = tmp_path / "glattn_test_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: glattn-test-plugin\n")
    (dist / "entry_points.txt").write_text("[glattn.plugins]\nsum = glattn_test_plugin\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    monkeypatch.setattr(registry_module, "_plugins_loaded", False)
    try:
        assert "plugin_sum" in FUSIONS.names()
        assert FUSIONS.reference("plugin_sum") == "A plugin, 2026"
        assert registry_module.load_plugins() == []  # once per process
    finally:
        FUSIONS.unregister("plugin_sum")
        sys.modules.pop("glattn_test_plugin", None)


def test_a_broken_plugin_names_its_entry_point(tmp_path, monkeypatch):
    dist = tmp_path / "broken_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugin\n")
    (dist / "entry_points.txt").write_text("[glattn.plugins]\nbad = no_such_plugin_module\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    monkeypatch.setattr(registry_module, "_plugins_loaded", False)
    with pytest.raises(ImportError, match="glattn plugin 'bad' = 'no_such_plugin_module'.*broken"):
        registry_module.load_plugins()


def test_target_error_imports_registers_and_names_the_key(tmp_path, monkeypatch):
    from glattn.losses import LOSSES

    assert LOSSES.target_error("glattn.losses.FocalLoss", "loss") is None
    (tmp_path / "own_losses.py").write_text(
        "from torch import nn\n"
        "from glattn.losses import LOSSES\n"
        "@LOSSES.register('own')\n"
        "class Own(nn.Module):\n"
        "    def __init__(self, class_counts):\n"
        "        super().__init__()\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        assert LOSSES.target_error("own_losses.Own", "loss") is None  # imported: registered
    finally:
        LOSSES.unregister("own")
        sys.modules.pop("own_losses", None)
    assert "is not a registered loss" in LOSSES.target_error("torch.nn.Identity", "loss")
    assert "cannot import it" in LOSSES.target_error("nowhere.Loss", "loss")


class _PerSampleLoss(torch.nn.Module):
    """Breaks the loss contract: one value per sample instead of a scalar."""

    def __init__(self, class_counts) -> None:
        super().__init__()

    def forward(self, logits, target):
        return torch.nn.functional.cross_entropy(logits, target, reduction="none")


def test_loss_that_is_not_a_scalar_is_a_contract_error(throwaway):
    from glattn.losses import LOSSES, build_loss

    target = throwaway(LOSSES, "per_sample", _PerSampleLoss)
    node = OmegaConf.create({"_target_": target, "_partial_": True})
    with pytest.raises(ContractError, match=r"loss 'per_sample'.*returned \(4,\), expected a sc"):
        build_loss(node, [3, 4, 5])
