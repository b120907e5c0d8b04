"""`_target_` is the one extension point: every option file of a `_target_` group names a class
or function, nothing is registered, and every component, whoever wrote it, is checked
against its family's contract (glattn.contract) inside the one model build. Plus what a
component knows beyond its settings (`reference`) reaching the job's run tags."""

import pytest
import torch
from conftest import CONF_DIR, compose_cfg, options
from hydra.utils import get_object
from omegaconf import OmegaConf

from glattn.contract import Contract, ContractError, reference_of, references, target_error
from glattn.groups import TARGET_GROUPS
from glattn.models import build_model


@pytest.mark.parametrize("group", TARGET_GROUPS)
def test_each_option_file_names_a_target_that_imports(group):
    for option in options(group):
        node = OmegaConf.load(CONF_DIR / group / f"{option}.yaml")
        assert callable(get_object(node._target_)), (group, option)


def test_the_paper_components_carry_their_references():
    refs = {
        group: reference_of(get_object(OmegaConf.load(CONF_DIR / group / f"{o}.yaml")._target_))
        for group, o in (("fusion", "channel_attn"), ("residual", "progressive"))
    }
    assert refs == {
        "fusion": "Squeeze-and-Excitation, Hu et al. CVPR 2018 (arXiv:1709.01507)",
        "residual": "ReZero, Bachlechner et al. UAI 2021 (arXiv:2003.04887)",
    }


def test_references_of_a_config_are_per_group_and_skip_components_without_one():
    refs = references(compose_cfg("fusion=cross_attn", "attention=global_only"))
    assert refs["fusion"].startswith("Cross attention (Transformer)")
    assert refs["loss"].startswith("Focal loss, Lin et al.")
    assert "attention" not in refs  # global_only gives no reference
    assert "backbone" not in refs  # torchvision's builder: no reference


def test_job_tags_carry_the_references():
    from glattn.job.spec import make_spec

    cfg = compose_cfg("fusion=learnable_gate", "residual=drop_path", return_hydra_config=True)
    spec = make_spec(cfg, "train")
    assert spec.tags["reference.fusion"].startswith("Highway Networks")
    assert spec.tags["reference.residual"].startswith("Stochastic Depth")
    assert spec.params["choice.fusion"] == "learnable_gate"


def test_any_class_is_a_component_when_it_keeps_the_contract():
    """No registration: torch's own Identity keeps the local-attention contract."""
    cfg = compose_cfg("attention=global_only", "attention._target_=torch.nn.Identity")
    model = build_model(cfg)
    assert type(model.glsa["layer3"].local_attention) is torch.nn.Identity


def test_target_that_cannot_be_imported_names_the_key():
    cfg = compose_cfg("fusion._target_=no_such_module.Fusion")
    with pytest.raises(ValueError, match="cfg.fusion._target_=no_such_module.Fusion: cannot imp"):
        build_model(cfg)


def test_target_error_names_the_key():
    assert target_error("glattn.losses.FocalLoss", "loss") is None
    assert "cannot import it" in target_error("nowhere.Loss", "loss")
    assert "not a class or function" in target_error("glattn.losses.CONTRACT", "loss")
    assert "cfg.loss._target_ is not set" in target_error(None, "loss")


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


class _Detached(torch.nn.Module):
    """Breaks the residual contract: no gradient reaches its inputs."""

    def __init__(self, channels: int) -> None:
        super().__init__()

    def forward(self, x, R):
        return (x + R).detach()


def _with(group: str, cls, **settings):
    cfg = compose_cfg()
    node = {"_target_": f"{cls.__module__}.{cls.__qualname__}", "_partial_": True, **settings}
    cfg[group] = OmegaConf.create(node)
    return cfg


def test_wrong_output_shape_is_a_contract_error_at_build_time():
    with pytest.raises(ContractError) as err:
        build_model(_with("fusion", _HalfWidth))
    text = str(err.value)
    assert "fusion test_registries._HalfWidth breaks the fusion contract" in text
    assert "returned shape (2, 128, 7, 7), expected (2, 256, 7, 7)" in text
    assert "`forward(A, L, x)`" in text and "`__init__(self, channels, **settings)`" in text


def test_wrong_constructor_signature_is_a_contract_error():
    with pytest.raises(ContractError, match="residual test_registries._NoChannels.*constructor"):
        build_model(_with("residual", _NoChannels))


def test_no_gradient_path_is_a_contract_error():
    with pytest.raises(ContractError, match="_Detached.*without a gradient path"):
        build_model(_with("residual", _Detached))


class _Settings(torch.nn.Module):
    def __init__(self, channels: int, gain: float = 1.0) -> None:
        super().__init__()

    def forward(self, x, R):
        return x + R


def test_unknown_setting_is_a_contract_error_naming_the_call():
    with pytest.raises(ContractError, match=r"cannot be called as \(256, gian=2.0\).*gian"):
        build_model(_with("residual", _Settings, gian=2.0))


def test_contract_check_runs_on_the_meta_device():
    cfg = compose_cfg("fusion=cross_attn", "residual=drop_path")
    with torch.device("meta"):
        model = build_model(cfg)
    assert next(model.parameters()).is_meta


def test_contract_probe_draws_no_random_numbers_and_leaves_no_gradient():
    torch.manual_seed(0)
    model = build_model(compose_cfg("fusion=channel_attn"))
    after_build = torch.rand(1)
    torch.manual_seed(0)
    build_model(compose_cfg("fusion=channel_attn"))
    assert torch.equal(after_build, torch.rand(1))
    assert all(p.grad is None for p in model.parameters())


def test_a_probe_that_raises_names_the_component():
    def probe(component, n):
        raise RuntimeError("boom")

    contract = Contract("widget", "`Widget(n)`", probe)
    with pytest.raises(ContractError, match=r"widget builtins.dict breaks .*RuntimeError: boom"):
        contract.build(dict, probe_args=(1,))


class _PerSampleLoss(torch.nn.Module):
    """Breaks the loss contract: one value per sample instead of a scalar."""

    def __init__(self, class_counts) -> None:
        super().__init__()

    def forward(self, logits, target):
        return torch.nn.functional.cross_entropy(logits, target, reduction="none")


def test_loss_that_is_not_a_scalar_is_a_contract_error():
    from glattn.losses import build_loss

    node = OmegaConf.create({"_target_": "test_registries._PerSampleLoss", "_partial_": True})
    with pytest.raises(ContractError, match=r"loss test_registries._PerSampleLoss.*\(4,\), exp"):
        build_loss(node, [3, 4, 5])


def test_dataset_reader_is_its_target():
    from glattn.data import DataError, reader_of
    from glattn.data.readers import read_ham

    cfg = compose_cfg("dataset=ham10000")
    assert reader_of(cfg.dataset) is read_ham
    assert reader_of({"name": "ham10000"}) is read_ham  # a saved config without `_target_`
    with pytest.raises(DataError, match="dataset 'mine' has no `_target_`"):
        reader_of({"name": "mine"})
    with pytest.raises(DataError, match="cfg.dataset._target_=nowhere.read: cannot import"):
        reader_of({"name": "mine", "_target_": "nowhere.read"})


def test_the_preflight_build_is_the_jobs_one_build(tmp_path, monkeypatch):
    """A training job builds its model once, in its pre-flight; build_components takes that
    model (no second build) with the weights and generator state a build after the data
    would have given."""
    import glattn.job.build as build

    cfg = compose_cfg("debug=smoke", f"paths.output_dir={tmp_path}", "trainer.device=cpu")
    context = build.preflight_model(cfg)
    built = []
    real = build.build_model
    monkeypatch.setattr(build, "build_model", lambda c: built.append(c) or real(c))
    parts = build.build_components(cfg, tmp_path / "run", prebuilt=context)
    assert parts.model is context["model"] and built == []
    weights = {k: v.clone() for k, v in parts.model.state_dict().items()}
    after = torch.rand(4)
    again = build.build_components(cfg, tmp_path / "run")  # the model built after the data
    assert len(built) == 1 and torch.equal(after, torch.rand(4))
    assert all(torch.equal(v, again.model.state_dict()[k]) for k, v in weights.items())


def test_a_bad_model_fails_in_the_preflight():
    from glattn.config import ConfigError
    from glattn.job.build import preflight_model

    with pytest.raises(ConfigError, match="glsa.num_heads=7"):
        preflight_model(compose_cfg("glsa.num_heads=7"))
