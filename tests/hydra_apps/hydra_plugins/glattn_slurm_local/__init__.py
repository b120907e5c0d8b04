"""``hydra/launcher=glattn_slurm_local``: glattn's SLURM launcher on submitit's local executor.

For tests only (tests/test_hydra_plugin_suites.py). ``GlattnSlurmLauncher.launch`` (its own
code: each job's outcome collected on its own) runs with submitit's ``local`` executor and
hydra-submitit-launcher's ``LocalQueueConf``, as upstream's ``submitit_local`` runs the code
its ``submitit_slurm`` shares; no SLURM needed. ``max_num_timeout`` is added because the
glattn launcher reads it (conf/hydra/launcher/slurm.yaml sets it); the local executor takes it.

Hydra imports this module when it scans ``hydra_plugins`` for plugins, so a process whose
``sys.path`` holds tests/hydra_apps finds the config; ``register()`` is idempotent.
"""

from dataclasses import dataclass

from hydra.core.config_store import ConfigStore
from hydra_plugins.hydra_submitit_launcher.config import LocalQueueConf

from hydra_plugins.glattn_slurm.slurm_launcher import GlattnSlurmLauncher

NAME = "glattn_slurm_local"


class GlattnSlurmLocalLauncher(GlattnSlurmLauncher):
    _EXECUTOR = "local"


@dataclass
class GlattnSlurmLocalConf(LocalQueueConf):
    _target_: str = f"hydra_plugins.{NAME}.GlattnSlurmLocalLauncher"
    max_num_timeout: int = 0


def register() -> None:
    ConfigStore.instance().store(
        group="hydra/launcher", name=NAME, node=GlattnSlurmLocalConf, provider="glattn-tests"
    )


register()
