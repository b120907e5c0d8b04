"""glattn.resolvers: resolvers are registered by an explicit, idempotent `register()` (no
module registers one on import), resolve through their lazily imported implementation,
and survive pickling (Hydra ships OmegaConf's resolvers to launcher worker processes)."""

import pickle
import subprocess
import sys

from conftest import compose_cfg
from omegaconf import OmegaConf

from glattn import resolvers


def test_importing_glattn_registers_nothing_and_register_is_idempotent():
    code = (
        "import glattn.contract, glattn.data, glattn.sweep, glattn.sweep.transfer, glattn.cli\n"
        "from omegaconf import OmegaConf\n"
        "from glattn import resolvers\n"
        "print([OmegaConf.has_resolver(n) for n in resolvers.RESOLVERS])\n"
        "print(resolvers.register()); print(resolvers.register())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert out == [str([False] * len(resolvers.RESOLVERS)), str(list(resolvers.RESOLVERS)), "[]"]


def test_every_resolver_names_an_importable_implementation():
    for name in resolvers.RESOLVERS:
        assert name.startswith("glattn.") and callable(resolvers.implementation(name))


def test_num_classes_follows_the_class_list_of_a_csv_data_set(tmp_path):
    cfg = compose_cfg(
        "dataset=csv",
        f"dataset.root={tmp_path}",
        "dataset.csv=labels.csv",
        "dataset.image_column=image",
        "dataset.label_column=label",
        "dataset.classes=[a,b,c]",
    )
    assert OmegaConf.select(cfg, "dataset.num_classes") == 3


def test_a_registered_resolver_pickles_by_name():
    lazy = resolvers._Lazy("glattn.num_classes")
    lazy._func = lambda: None  # a cached implementation is not shipped to the worker
    again = pickle.loads(pickle.dumps(lazy))
    assert again.name == "glattn.num_classes" and again._func is None
