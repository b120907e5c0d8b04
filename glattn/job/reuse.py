"""A training reused, not trained: the `Source` run whose FINISHED training a job takes
over (another experiment of the store, or the local ``best.pt`` with tracking off), the
one line that says so, and the line a FINISHED run made by different code gets.

A reused run keeps the source's weights, loss and accuracy curves and evaluates them
again; what measured the training process (`glattn.tracking.provenance.is_measurement`:
``perf/*``, ``time/*``, per-epoch timings and throughput, memory) stays the source run's
and is never logged as the new run's own; its tags name the source
(`glattn.tracking.provenance.reuse_tags`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

from glattn.tracking.provenance import (
    SOURCE_CODE_DIFFERS_TAG,
    code_difference,
    is_measurement,
    reuse_tags,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Source:
    """The FINISHED run (or checkpoint) a reused job takes its training from."""

    run_id: str | None
    experiment: str | None = None
    run_name: str | None = None
    path: str | None = None  # the local best.pt when no run names it
    tags: Mapping[str, str] = field(default_factory=dict)

    def describe(self) -> str:
        """``experiment probeC, run resnet18_..._s0 (3f2a...)`` (or the checkpoint file)."""
        if self.run_id is None:
            return f"checkpoint {self.path}"
        where = f"experiment {self.experiment}, " if self.experiment else ""
        name = f"run {self.run_name} ({self.run_id})" if self.run_name else f"run {self.run_id}"
        return where + name

    def tags_for_run(self, current_code: Mapping[str, str]) -> dict[str, str]:
        """The tags of the new run that reuses this one (none without a source run); what
        differs from `current_code` (this process's) in ``glattn.source_code_differs``."""
        if self.run_id is None:
            return {}
        tags = reuse_tags(self.run_id, self.experiment, self.run_name)
        differs = code_difference(current_code, self.tags)
        if differs:
            tags[SOURCE_CODE_DIFFERS_TAG] = "; ".join(differs)
        return tags

    def status(self) -> dict:
        """The source as status.json and the sweep summary record it."""
        out = {"run_id": self.run_id, "experiment": self.experiment, "run_name": self.run_name}
        return out if self.run_id is not None else {**out, "path": self.path}


def announce(source: Source, current_code: Mapping[str, str]) -> None:
    """One line naming the source run; a second one when different code made it."""
    log.info("reused, not trained: this configuration FINISHED as %s", source.describe())
    if source.run_id is not None:
        say_code_difference(current_code, source.tags, f"the reused {source.describe()}")


def say_code_difference(current: Mapping[str, str], theirs: Mapping[str, str], what: str) -> bool:
    """Warn in one line when the FINISHED run ``what`` was made by other code than this
    process's; True when it was."""
    differs = code_difference(current, theirs)
    if differs:
        log.warning(
            "%s was made by different code (%s): its result is kept; sweep.rerun=true "
            "trains it again with this code",
            what,
            "; ".join(differs),
        )
    return bool(differs)


def without_measurements(row: Mapping) -> dict:
    """An epoch row or a metrics dict without what measured the training process."""
    return {k: v for k, v in row.items() if not is_measurement(k)}
