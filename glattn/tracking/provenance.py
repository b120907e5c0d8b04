"""Where a run's result came from: the code that made it, a reused training's source run,
and the sweeps a job run belongs to (tags; every writer and reader imports them from here).

Code (every job run): ``glattn.version`` (the installed distribution's version),
``git_commit`` (the job's tag, glattn.job.spec) with ``glattn.git_dirty`` (``true`` when
the glattn package's tracked files differ from that commit), and one
``glattn.code.<module>`` per component module that is not glattn's own: the module of a
``_target_`` in the config that lives outside the glattn package and outside the installed
libraries (a user's fusion, residual, reader), valued the sha256[:12] of its file.

Reuse: a run that reused a training FINISHED in another experiment of the store carries
``glattn.reused_from`` (the source run id), ``glattn.reused_from_experiment`` (its
experiment's name) and a description (``mlflow.note.content``, the run page's
description) saying it was reused, not trained; when other code made the source,
``glattn.source_code_differs`` says what differs.

Sweeps: every job run of a sweep (trained, reused, or skipped because an earlier run had
FINISHED it) carries ``glattn.sweep.<parent run id>=true``, one tag per sweep launch that
counted it (`sweep_filter` finds them). The UI's saved view of a sweep filters on the
grid's tag instead (glattn.tracking.ui.mark_grid, ``glattn.in_grid.<grid>``), which every
launch of the same grid shares.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import subprocess
import sysconfig
from collections.abc import Mapping
from pathlib import Path

VERSION_TAG = "glattn.version"
COMMIT_TAG = "git_commit"
DIRTY_TAG = "glattn.git_dirty"
CODE_TAG_PREFIX = "glattn.code."
REUSED_FROM_TAG = "glattn.reused_from"
REUSED_FROM_EXPERIMENT_TAG = "glattn.reused_from_experiment"
#: on a reused run whose source was made by other code: what differs (`code_difference`)
SOURCE_CODE_DIFFERS_TAG = "glattn.source_code_differs"
#: MLflow's run description (shown on the run's page)
NOTE_TAG = "mlflow.note.content"
SWEEP_MEMBER_PREFIX = "glattn.sweep."
SWEEP_MEMBER_VALUE = "true"
#: metric prefixes that measure the training process, never copied from another run
MEASURED_PREFIXES = ("perf/", "time/")

_PACKAGE = Path(__file__).resolve().parents[1]  # glattn/


def is_measurement(key: str) -> bool:
    """A metric that measures the process that trained (throughput, timings, memory)."""
    return key.startswith(MEASURED_PREFIXES)


def sweep_member_tag(parent_run_id: str) -> str:
    """``glattn.sweep.<parent run id>``: the tag that puts a job run in that sweep's view."""
    return f"{SWEEP_MEMBER_PREFIX}{parent_run_id}"


def sweep_filter(parent_run_id: str) -> str:
    """The MLflow search filter of a sweep's job runs (its view in the UI)."""
    return f"tags.`{sweep_member_tag(parent_run_id)}` = '{SWEEP_MEMBER_VALUE}'"


def reuse_tags(run_id: str, experiment: str | None, run_name: str | None) -> dict[str, str]:
    """The tags of a run that reused the FINISHED run ``run_id`` of ``experiment``."""
    where = f"run {run_name} ({run_id})" if run_name else f"run {run_id}"
    if experiment:
        where += f" of experiment {experiment}"
    return {
        REUSED_FROM_TAG: run_id,
        REUSED_FROM_EXPERIMENT_TAG: experiment or "",
        NOTE_TAG: (
            f"Reused, not trained: this configuration had FINISHED as {where}. The weights, "
            "the loss and accuracy curves and the evaluation come from that training; its "
            "throughput, timings and memory are that run's measurements and are not logged "
            "here (see the source run). sweep.rerun=true trains it again."
        ),
    }


# ----------------------------------------------------------------------------- code
def code_tags(cfg) -> dict[str, str]:
    """``glattn.version``, ``glattn.git_dirty`` and ``glattn.code.<module>`` of `cfg`'s
    components (the commit is the job's ``git_commit`` tag)."""
    tags = {VERSION_TAG: _version(), DIRTY_TAG: _dirty()}
    for module, digest in sorted(component_hashes(cfg).items()):
        tags[f"{CODE_TAG_PREFIX}{module}"] = digest
    return tags


def code_of(tags: Mapping[str, str]) -> dict[str, str]:
    """The code identity within a run's tags (version, commit, dirty flag, components)."""
    keys = (VERSION_TAG, COMMIT_TAG, DIRTY_TAG)
    return {k: str(v) for k, v in tags.items() if k in keys or k.startswith(CODE_TAG_PREFIX)}


def code_difference(mine: Mapping[str, str], theirs: Mapping[str, str]) -> list[str]:
    """What differs between two code identities (`code_of`), one phrase each:
    ``module <your module> 1a2b3c4d5e6f -> 9f8e7d6c5b4a``, ``glattn commit abc -> def``.
    A run from before these tags (no version tag) is compared on its commit only."""
    mine, theirs = code_of(mine), code_of(theirs)
    if not theirs:
        return []
    keys = set(mine) | set(theirs)
    if VERSION_TAG not in theirs:  # recorded before code tags existed: nothing to compare
        keys = {COMMIT_TAG}
    out = []
    for key in sorted(keys):
        a, b = theirs.get(key, "none"), mine.get(key, "none")
        if a == b or (key in (COMMIT_TAG, DIRTY_TAG) and "unknown" in (a, b)):
            continue
        if key.startswith(CODE_TAG_PREFIX):
            out.append(f"module {key[len(CODE_TAG_PREFIX) :]} {a} -> {b}")
        else:
            name = {VERSION_TAG: "version", COMMIT_TAG: "commit", DIRTY_TAG: "uncommitted changes"}
            out.append(f"glattn {name[key]} {a} -> {b}")
    return out


def component_hashes(cfg) -> dict[str, str]:
    """{module: sha256[:12] of its file} of every ``_target_`` module of `cfg` outside the
    glattn package and the installed libraries (site-packages, the standard library)."""
    from omegaconf import OmegaConf

    container = OmegaConf.to_container(cfg, resolve=False) if not isinstance(cfg, dict) else cfg
    container = {k: v for k, v in container.items() if k != "hydra"}
    out = {}
    for target in sorted(set(_targets(container))):
        found = _module_file(target)
        if found is not None:
            out[found[0]] = _file_hash(found[1])
    return out


def _targets(node):
    if isinstance(node, Mapping):
        for key, value in node.items():
            if key == "_target_" and isinstance(value, str):
                yield value
            else:
                yield from _targets(value)
    elif isinstance(node, list):
        for item in node:
            yield from _targets(item)


def _module_file(target: str) -> tuple[str, Path] | None:
    """(module, file) of a ``_target_`` that is a user's own code, else None."""
    parts = target.split(".")
    for i in range(len(parts) - 1, 0, -1):
        name = ".".join(parts[:i])
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            continue
        if spec is None:
            continue
        origin = spec.origin
        if not origin or not origin.endswith(".py"):
            return None
        path = Path(origin).resolve()
        return (name, path) if _is_users(path) else None
    return None


def _is_users(path: Path) -> bool:
    if path.is_relative_to(_PACKAGE):
        return False
    paths = sysconfig.get_paths()
    libs = {paths[k] for k in ("purelib", "platlib", "stdlib", "platstdlib") if k in paths}
    return not any(path.is_relative_to(Path(p).resolve()) for p in libs)


def _file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]


@functools.lru_cache(maxsize=1)
def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("glattn")
    except PackageNotFoundError:
        return "unknown"


def _dirty() -> str:
    """``true`` when the glattn package's tracked files differ from the checked-out commit,
    ``false`` when not, ``unknown`` outside a git checkout."""
    try:
        out = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", str(_PACKAGE)],
            capture_output=True,
            text=True,
            timeout=10,
            cwd=_PACKAGE,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    if out.returncode != 0:
        return "unknown"
    return "true" if out.stdout.strip() else "false"
