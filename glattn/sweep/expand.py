"""A grid's jobs from Hydra's public override parser: the cartesian product of the sweep's
overrides, in Hydra's basic-sweeper order, one list of ``key=value`` strings a job.

Hydra's own sweeper does this inside a private module; glattn's sweeper, its progress
count, its plan mode and the report's expected grid all read a grid here instead. The
sweep syntax is Hydra's (https://hydra.cc/docs/advanced/override_grammar/extended/):
``a,b``, ``choice(a,b)``, ``range(0,3)``, ``glob(*)`` (with a config loader). A later
override of a key replaces an earlier one, so the command line wins over an experiment
file's ``hydra.sweeper.params``.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException


def arguments(params: Mapping | None, overrides: Sequence[str] = ()) -> list[str]:
    """``hydra.sweeper.params`` as ``key=value`` overrides, then `overrides`."""
    return [f"{k}={v}" for k, v in (params or {}).items()] + [str(o) for o in overrides]


def jobs(args: Sequence[str], config_loader=None) -> list[list[str]]:
    """Every job of the sweep `args` asks for, in Hydra's order (the last key varies
    fastest). Raises hydra.errors.HydraException for a sweep that is not a list of values
    (``interval()``), OverrideParseException for bad syntax."""
    parsed = OverridesParser.create(config_loader=config_loader).parse_overrides(list(args))
    choices: dict[str, list[str]] = {}
    for override in parsed:
        key = override.get_key_element()
        if not override.is_sweep_override():
            choices[key] = [f"{key}={override.get_value_element_as_str()}"]
        elif override.is_discrete_sweep():
            choices[key] = [f"{key}={v}" for v in override.sweep_string_iterator()]
        else:
            raise HydraException(f"{key}: a grid takes a list of values, not {override.value()}")
    return [list(job) for job in itertools.product(*choices.values())]


def batches(jobs: Sequence[Sequence[str]], max_batch_size: int | None) -> list[list[list[str]]]:
    """`jobs` in batches of at most `max_batch_size` (all in one when it is None or -1)."""
    jobs = [list(j) for j in jobs]
    if max_batch_size is not None and max_batch_size != -1 and max_batch_size < 1:
        raise ValueError(f"max_batch_size={max_batch_size}: expected a positive number or null")
    size = len(jobs) if max_batch_size in (None, -1) else max_batch_size
    size = max(size, 1)
    return [jobs[k : k + size] for k in range(0, len(jobs), size)]


def values(spec) -> list[str]:
    """One key's levels in sweep syntax (``a,b``, ``choice(a,b)``, ``range(0,3)``) or a
    YAML list, as strings; [] for anything that is not a finite list (glob, interval)."""
    if isinstance(spec, (list, tuple)):
        return [str(v) for v in spec]
    try:
        return [job[0].split("=", 1)[1] for job in jobs([f"k={spec}"])]
    except Exception:  # noqa: BLE001 - glob needs a config loader; interval is no list
        return []
