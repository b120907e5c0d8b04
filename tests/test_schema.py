"""Structured-config schemas (glattn/schema/nodes.py): every trainer, dataset, glsa, tracking and
sweep node composes onto its schema, an unknown key fails naming the closest valid one
(`+key=...` included, which Hydra lets through struct mode), and registration needs no
import of glattn before composing."""

import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest
from conftest import compose_cfg
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

from glattn import schema

ROOT = Path(__file__).resolve().parents[1]
OPTIONS = [
    (group, path.stem)
    for group in ("trainer", "glsa", "tracking", "dataset")
    for path in sorted((ROOT / "conf" / group).glob("*.yaml"))
]
SCHEMA_OF_DATASET = {"synthetic": "dataset/synthetic", "csv": "dataset/csv"}


def _expected_schema(group, option):
    if group == "dataset":
        return schema.SCHEMAS[SCHEMA_OF_DATASET.get(option, "dataset/base")]
    return schema.SCHEMAS[group]


@pytest.mark.parametrize("group, option", OPTIONS, ids=[f"{g}={o}" for g, o in OPTIONS])
def test_every_option_file_composes_onto_its_schema(group, option):
    cfg = compose_cfg(f"{group}={option}", "paths.output_dir=/tmp/x")
    node = cfg[group]
    want = _expected_schema(group, option)
    assert OmegaConf.get_type(node) is want
    # the YAML sets every field of its schema, and has no key the schema lacks
    assert [k for k in node if OmegaConf.is_missing(node, k)] == []
    assert set(node.keys()) == {f.name for f in fields(want)}
    assert OmegaConf.get_type(cfg.sweep) is schema.SweepSchema
    assert schema.unknown_keys(cfg) == []


@pytest.mark.parametrize(
    "overrides, key, closest",
    [
        (["+trainer.epochs=3"], "trainer.epochs", "trainer.max_epochs"),
        (["+glsa.heads=4"], "glsa.heads", "glsa.num_heads"),
        (["+tracking.expriment=x"], "tracking.expriment", "tracking.experiment"),
        (["+sweep.plna=true"], "sweep.plna", "sweep.plan"),
        (["dataset=ham10000", "+dataset.num_images=500"], "dataset.num_images", "num_workers"),
        (["+dataset.image_sise=96"], "dataset.image_sise", "dataset.image_size"),
        (["++trainer.batchsize=8"], "trainer.batchsize", "trainer.batch_size"),
    ],
)
def test_an_added_unknown_key_is_an_error_naming_the_closest_valid_key(overrides, key, closest):
    cfg = compose_cfg(*overrides)  # '+' adds the key even to a structured node
    (error,) = schema.unknown_keys(cfg)
    assert error.startswith(f"{key}: unknown key (did you mean ")
    assert closest in error
    with pytest.raises(schema.UnknownKeyError, match=key.replace(".", r"\.")):
        schema.check_keys(cfg)


def test_an_added_credential_key_is_not_a_typo_but_a_warning(caplog):
    """`+tracking.api_key=...` : masked wherever glattn writes it, and the warning
    says where credentials belong; a non-credential key stays an error."""
    cfg = compose_cfg("+tracking.api_key=abc123", "+dataset.access_token=xyz789")
    with caplog.at_level("WARNING", logger="glattn.schema"):
        assert schema.unknown_keys(cfg) == []
    assert "MLFLOW_TRACKING_TOKEN" in caplog.text and "abc123" not in caplog.text
    assert schema.unknown_keys(compose_cfg("+tracking.server=x"))


def test_synthetic_keys_exist_only_for_the_synthetic_set():
    assert schema.unknown_keys(compose_cfg("dataset.num_images=300")) == []
    with pytest.raises(ConfigCompositionException, match="dataset.num_images"):
        compose_cfg("dataset=ham10000", "dataset.num_images=300")


def test_an_unknown_key_without_plus_fails_while_composing():
    with pytest.raises(ConfigCompositionException, match="trainer.epochs") as err:
        compose_cfg("trainer.epochs=3")
    assert "not in 'TrainerSchema'" in str(err.value.__cause__)


def test_wrong_types_fail_while_composing():
    with pytest.raises(ConfigCompositionException, match="trainer.max_epochs"):
        compose_cfg("trainer.max_epochs=many")


def test_schemas_are_registered_before_any_compose_without_importing_glattn(tmp_path):
    code = (
        "import sys\n"
        "from hydra import compose, initialize_config_dir\n"
        f"with initialize_config_dir(version_base='1.3', config_dir={str(ROOT / 'conf')!r}):\n"
        "    cfg = compose('config')\n"
        "print(type(cfg.trainer._metadata.object_type).__name__,\n"
        "      cfg.trainer._metadata.object_type.__name__)\n"
    )
    res = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.split() == ["type", "TrainerSchema"]


def test_debug_presets_compose_with_every_data_set():
    for dataset in ("synthetic", "ham10000", "isic2018", "csv"):
        cfg = compose_cfg("debug=smoke", f"dataset={dataset}")
        assert cfg.dataset.image_size == 32 and schema.unknown_keys(cfg) == []
        # the synthetic set's own keys come from conf/debug_dataset/smoke_synthetic.yaml
        assert ("num_images" in cfg.dataset) == (dataset == "synthetic")
    assert compose_cfg("debug=smoke").dataset.num_images == 210
    assert compose_cfg("debug=smoke", "dataset.num_images=300").dataset.num_images == 300


def test_an_added_unknown_key_fails_the_config_check_before_any_work(tmp_path):
    from glattn.config import ConfigError, config_errors, validate_config

    cfg = compose_cfg("debug=smoke", "+trainer.epochs=3", f"paths.output_dir={tmp_path}")
    assert any(
        e.startswith("trainer.epochs: unknown key (did you mean trainer.max_epochs?")
        for e in config_errors(cfg)
    )
    with pytest.raises(ConfigError, match="trainer.epochs"):
        validate_config(cfg)
    assert not any(tmp_path.iterdir())
