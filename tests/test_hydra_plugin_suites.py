"""Hydra's own plugin test suites, run against glattn's launchers and sweeper.

``hydra.test_utils.launcher_common_tests`` is how Hydra tests its plugins (basic, joblib,
submitit, ...): LauncherTestSuite (1 and 2 job sweeps, config groups, the job name, id and
num, output dirs, a bad key fails, no sweeping over Hydra's own config, custom resolvers),
IntegrationTestSuite (a generated ``task.py`` run with ``-m`` in a subprocess: job name,
sweep dir and subdir, ``get_original_cwd``, ``to_absolute_path``) and
BatchedSweeperTestSuite (batches of ``max_batch_size``, job numbering across batches).
They use the test apps that ship in Hydra's package (``hydra.test_utils.a_module`` and its
``configs/``); glattn's ``conf/`` goes on Hydra's search path for the launcher configs, as
run.py has it.

- ``local_gpus`` (hydra_plugins/glattn_local_gpus) in CPU mode (``gpus=[]``): every job is a
  worker subprocess.
- the glattn sweeper (hydra_plugins/glattn_sweeper) with Hydra's basic launcher, batched.
- ``GlattnSlurmLauncher`` (hydra_plugins/glattn_slurm) on submitit's local executor
  (tests/hydra_apps/hydra_plugins/glattn_slurm_local), as hydra-submitit-launcher's own
  tests run its launcher (``submitit_local``). slurm.yaml's SLURM-only settings need a
  cluster: tests/test_slurm_sweep.py.

Every parametrisation gets a fresh ``overrides`` list: the suites extend it in place.
"""

import importlib
import os
from pathlib import Path

import pytest
from hydra.core.plugins import Plugins
from hydra.core.singleton import Singleton
from hydra.plugins.launcher import Launcher
from hydra.plugins.sweeper import Sweeper
from hydra.test_utils.launcher_common_tests import (
    BatchedSweeperTestSuite,
    IntegrationTestSuite,
    LauncherTestSuite,
)
from hydra.version import VersionBase

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
APPS = Path(__file__).resolve().parent / "hydra_apps"
SEARCHPATH = f"hydra.searchpath=['file://{ROOT / 'conf'}']"
SLURM_LOCAL = "glattn_slurm_local"  # tests/hydra_apps/hydra_plugins/glattn_slurm_local
QUIET = ["hydra/hydra_logging=disabled", "hydra/job_logging=disabled"]


@pytest.fixture(autouse=True)
def _fresh_version_base(hydra_restore_singletons):
    """Hydra's version base as a fresh process has it (unset: jobs run in their output dir,
    which the suites check). Any earlier test in this process that composed with
    ``version_base="1.3"`` left it set; Hydra's fixture restores the state afterwards."""
    state = Singleton.get_state()
    state["instances"].pop(VersionBase, None)
    Singleton.set_state(state)


@pytest.fixture(autouse=True)
def _plugin_paths(monkeypatch, _fresh_version_base):
    """This checkout's glattn and the test launcher importable here and in every process
    the suites start (task.py, local_gpus workers, submitit's local jobs)."""
    monkeypatch.syspath_prepend(str(APPS))
    paths = [str(APPS), str(ROOT), os.environ.get("PYTHONPATH", "")]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in paths if p))
    test_launcher = importlib.import_module(f"hydra_plugins.{SLURM_LOCAL}")
    test_launcher.register()
    Plugins.instance().register(test_launcher.GlattnSlurmLocalLauncher)


# Parametrisations that run no glattn code beyond what a kept one runs are skipped, each
# with its reason, so that the file takes a few minutes on two busy cores.
_NAME_BEFORE_LAUNCH = (
    "the job name is set before launch; no_config and "
    "..._and_command_line_override carry it through the launcher"
)
_DIRS_IN_BOTH = "sweep_dir_cli_overridding_config sets the dirs in the config and on the CLI"
#: local_gpus (whose job side, _worker.py, is glattn's): (test, suite case) -> reason
LAUNCHER_REPEATS = {
    ("test_sweep_1_job_strict", ""): "the same body as test_sweep_1_job",
    ("test_custom_task_name", "different_filename"): _NAME_BEFORE_LAUNCH,
    ("test_custom_task_name", "different_filename_and_config_file_name_override"): (
        _NAME_BEFORE_LAUNCH
    ),
    ("test_custom_sweeper_run_workdir", "sweep_dir_config_override"): _DIRS_IN_BOTH,
    ("test_custom_sweeper_run_workdir", "sweep_dir_cli_override"): _DIRS_IN_BOTH,
    ("test_custom_sweeper_run_workdir", "subdir:override_dirname"): (
        "subdir:custom_override_dirname builds the subdir from the job's overrides too"
    ),
}
#: the glattn sweeper with Hydra's basic launcher: the cases run (all of LauncherTestSuite
#: and BatchedSweeperTestSuite, one of IntegrationTestSuite), all others skipped
SWEEPER_KEEP = {
    (name, "")
    for suite in (LauncherTestSuite, BatchedSweeperTestSuite)
    for name in dir(suite)
    if name.startswith("test_")
} | {("test_custom_sweeper_run_workdir", "subdir:custom_override_dirname")}
SWEEPER_SKIP = (
    "the job side (name, cwd, paths) is Hydra's basic launcher's; the sweeper's part (each "
    "job's overrides and number) is test_custom_sweeper_run_workdir"
    "[subdir:custom_override_dirname]"
)
#: GlattnSlurmLauncher on submitit's local executor: the cases run, all others skipped
SLURM_KEEP = {
    ("test_sweep_1_job", ""),
    ("test_sweep_2_jobs", ""),
    ("test_sweep_1_job_strict_and_bad_key", ""),
    ("test_not_sweeping_hydra_overrides", ""),
    ("test_sweep_with_custom_resolver", ""),
    ("test_get_orig_dir_multirun", ""),
    ("test_custom_sweeper_run_workdir", "subdir:custom_override_dirname"),
}
SLURM_SKIP = (
    "the job side is hydra-submitit-launcher's (BaseSubmititLauncher.__call__, not "
    "overridden) and glattn's launch() runs as in test_sweep_2_jobs"
)


def _repeat_reason(test: str, case_id: str) -> str | None:
    """Why `test`[case_id] repeats a kept parametrisation's code path, or None to run it."""
    case, _, plugin = case_id.rpartition("-")  # "<suite case>-<plugin>" or "<plugin>"
    if (test, case) == ("test_sweep_1_job_strict", ""):
        return LAUNCHER_REPEATS[(test, case)]
    if plugin == "glattn_sweeper":
        return None if (test, case) in SWEEPER_KEEP else SWEEPER_SKIP
    if plugin == "slurm_local_executor":
        return None if (test, case) in SLURM_KEEP else SLURM_SKIP
    return LAUNCHER_REPEATS.get((test, case))


@pytest.fixture(autouse=True)
def _skip_repeats(request):
    reason = _repeat_reason(request.node.originalname, request.node.callspec.id)
    if reason:
        pytest.skip(f"repeats a kept case's code path: {reason}")


@pytest.fixture
def overrides(request):
    return list(request.param)


@pytest.fixture
def extra_flags(request):
    return list(request.param)


LAUNCHERS = [
    pytest.param("local_gpus", [SEARCHPATH, "hydra.launcher.gpus=[]"], id="local_gpus"),
    pytest.param("basic", [SEARCHPATH, "hydra/sweeper=glattn"], id="glattn_sweeper"),
    pytest.param(SLURM_LOCAL, ["hydra.launcher.timeout_min=2"], id="slurm_local_executor"),
]


@pytest.mark.parametrize("launcher_name, overrides", LAUNCHERS, indirect=["overrides"])
class TestLaunchers(LauncherTestSuite):
    pass


@pytest.mark.parametrize(
    "task_launcher_cfg, extra_flags",
    [
        pytest.param(
            {},
            ["-m", *QUIET, SEARCHPATH, "hydra/launcher=local_gpus", "hydra.launcher.gpus=[]"],
            id="local_gpus",
        ),
        pytest.param(
            {},
            ["-m", *QUIET, SEARCHPATH, "hydra/sweeper=glattn", "hydra/launcher=basic"],
            id="glattn_sweeper",
        ),
        pytest.param(
            {},
            [
                "-m",
                *QUIET,
                f"hydra/launcher={SLURM_LOCAL}",
                "hydra.launcher.gpus_per_node=0",
                "hydra.launcher.timeout_min=1",
            ],
            id="slurm_local_executor",
        ),
    ],
    indirect=["extra_flags"],
)
class TestLaunchersIntegration(IntegrationTestSuite):
    pass


@pytest.mark.parametrize(
    "launcher_name, overrides",
    [
        pytest.param(
            "basic",
            [SEARCHPATH, "hydra/sweeper=glattn", "hydra.sweeper.max_batch_size=2"],
            id="glattn_sweeper",
        ),
        pytest.param(  # batches after the first start at job numbers > 0 on local_gpus
            "local_gpus",
            [
                SEARCHPATH,
                "hydra.launcher.gpus=[]",
                "hydra/sweeper=glattn",
                "hydra.sweeper.max_batch_size=2",
            ],
            id="glattn_sweeper_local_gpus",
        ),
    ],
    indirect=["overrides"],
)
class TestGlattnSweeperBatches(BatchedSweeperTestSuite):
    pass


@pytest.mark.parametrize(
    "kind, name",
    [
        (Launcher, "LocalGpusLauncher"),
        (Launcher, "GlattnSlurmLauncher"),
        (Sweeper, "GlattnSweeper"),
    ],
)
def test_discovery(kind, name):
    """Hydra's plugin discovery finds glattn's plugins (as Hydra's own plugins test it)."""
    assert name in [cls.__name__ for cls in Plugins.instance().discover(kind)]
