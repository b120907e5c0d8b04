"""Shared test helpers: compose the real config from conf/, shrunk for the CPU."""

import os
from pathlib import Path

import pytest
import torch
import hydra
from hydra import initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig

ROOT = Path(__file__).resolve().parents[1]
CONF_DIR = ROOT / "conf"

# Honour OMP_NUM_THREADS (CI: unset, both cores); tiny test tensors gain little from more.
torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))


def compose_cfg(*overrides: str, return_hydra_config: bool = False):
    """Compose conf/config.yaml with `overrides`, exactly as run.py would."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR)):
        return hydra.compose(
            "config", overrides=list(overrides), return_hydra_config=return_hydra_config
        )


@pytest.fixture(name="compose")
def compose_fixture():
    """The compose_cfg function as a fixture."""
    return compose_cfg


@pytest.fixture(autouse=True)
def _no_leaked_hydra_config():
    """Tests that install a HydraConfig (as a Hydra job would) must not leak it to others."""
    yield
    HydraConfig.instance().cfg = None
