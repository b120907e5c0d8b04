"""Shared test helpers: compose the real config from conf/, shrunk for the CPU."""

import importlib.util
import os
import sys
from pathlib import Path

import hydra
import pytest
import torch
from hydra import initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig

from glattn.resolvers import register as register_resolvers

ROOT = Path(__file__).resolve().parents[1]
CONF_DIR = ROOT / "conf"
register_resolvers()  # as every entry point does (glattn.resolvers)

# Honour OMP_NUM_THREADS (CI: unset, both cores); tiny test tensors gain little from more.
torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))


def options(group: str) -> list[str]:
    """The options of config group `group`: its ``conf/<group>/*.yaml`` stems, sorted."""
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml") if p.stem != "README")


def compose_cfg(*overrides: str, return_hydra_config: bool = False):
    """Compose conf/config.yaml with `overrides`, exactly as run.py would."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR)):
        return hydra.compose(
            "config", overrides=list(overrides), return_hydra_config=return_hydra_config
        )


def smoke_cfg(out: Path, *overrides: str, hydra: bool = False):
    """`debug=smoke` writing under `out` (as `python run.py debug=smoke ...` would)."""
    return compose_cfg(
        "debug=smoke", f"paths.output_dir={out}", *overrides, return_hydra_config=hydra
    )


def store_client(out: Path):
    """An MlflowClient on `out`'s embedded store (outputs/mlflow.db)."""
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=f"sqlite:///{out}/mlflow.db")


@pytest.fixture(name="compose")
def compose_fixture():
    """The compose_cfg function as a fixture."""
    return compose_cfg


@pytest.fixture(autouse=True)
def _no_leaked_hydra_config():
    """Tests that install a HydraConfig (as a Hydra job would) must not leak it to others."""
    yield
    HydraConfig.instance().cfg = None


@pytest.fixture(scope="module")
def one_thread():
    """Tiny inputs gain nothing from intra-op threads; on a shared 2-core machine two OpenMP
    threads per process spin against each other (measured ~10x slower). Use it with
    `pytestmark = pytest.mark.usefixtures("one_thread")`."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def load_script(name: str):
    """Import scripts/<name>.py (the cluster and tracking-server helpers) as a module."""
    if str(ROOT / "scripts") not in sys.path:  # as `python scripts/<name>.py` would have it
        sys.path.insert(0, str(ROOT / "scripts"))
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
