"""The claims the experiment files declare (their ``report.claims``: the builder, the
threshold, the direction), checked from the declared run set; the paper's are the reference
code's six "Success Metrics for Paper" (CBAM > 2 points, best fusion > 1 point over `original`,
faster progressive convergence, a cross-data-set drop < 5 points, overhead < 20%, and the
conjunction of the others at p < 0.05). A row is supported only when its 95% interval clears
the threshold and its Holm-adjusted p < 0.05 (docs/report-statistics.md). Modules: rows.py
(rows, statistics), criteria.py (the pipeline, the paper's criteria), verdict.py (verdicts).
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from glattn.report import declared, runs
from glattn.report.claims.rows import (
    INCONCLUSIVE,
    METRICS,
    SUPPORTED,
    Context,
    Criterion,
    Row,
    conjunction,
    fill_accuracy,
    no_data,
)
from glattn.report.claims.verdict import adjust_and_judge, combine, conjunction_row, headline
from glattn.report.predictions import RunFiles

__all__ = [
    "INCONCLUSIVE",
    "METRICS",
    "SUPPORTED",
    "Claims",
    "Criterion",
    "Row",
    "adjust_and_judge",
    "check_claims",
    "criteria_of",
    "fill_accuracy",
]

log = logging.getLogger(__name__)


@dataclass
class Claims:
    rows: list[Row]
    sources: dict[int, str]  # criterion -> experiment
    criteria: dict[int, Criterion]  # the declared ones, then their conjunction
    metric: str
    n_resamples: int
    seed: int
    notes: list = field(default_factory=list)
    files: list = field(default_factory=list)
    frames: dict = field(default_factory=dict)  # experiment -> the run set read

    def verdict(self, number: int) -> str:
        return combine([r.verdict for r in headline(self.rows, number)])

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame([r.record() for r in self.rows])


def criteria_of(catalog: declared.Catalog, experiment: str) -> dict[int, Criterion]:
    """{number: Criterion} of the claims `experiment` decides (Catalog.claims), then their
    conjunction."""
    out = {
        c.number: Criterion(
            c.number, c.claim, c.threshold, c.direction, c.unit, d.number, d.builder_of(c)
        )
        for d, c in catalog.claims(experiment)
    }
    last = conjunction(sorted(out))
    return {**out, last.number: last}


def claim_sources(
    uri: str, experiment: str, notes: list, catalog: declared.Catalog, criteria: dict
) -> dict[int, str]:
    """Criterion -> experiment: a stages file (`paper`) reads each from the stage experiment
    that declares it."""
    runs.client_for(uri)  # a missing store is an error before any work
    checked = {n: c for n, c in criteria.items() if c.build is not None}
    if experiment not in catalog.stages:
        return {n: experiment for n in checked}
    numbers = sorted({c.table for c in checked.values()})
    stages = runs.stage_experiments(uri, numbers, [], catalog.tables_for)
    out = {n: stages[c.table] for n, c in checked.items() if c.table in stages}
    for n, crit in checked.items():
        if n not in out:
            name = catalog.by_number()[crit.table].experiment
            notes.append(
                f"criterion {n}: no experiment {name!r} (Table {crit.table}) in the store"
            )
    if not out:
        names = ", ".join(catalog.stages[experiment])
        raise runs.ReportError(f"none of {names} at {runs.mask(uri)} for {experiment!r}")
    return out


def _check_args(metric: str, n_resamples: int) -> None:
    if metric not in METRICS:
        raise runs.ReportError(
            f"--metric {metric!r}: the claims recompute the metric per image, so it must be "
            f"one of {list(METRICS)}"
        )
    if n_resamples < 1:
        raise runs.ReportError(f"--resamples {n_resamples}: expected a positive number")
    if n_resamples < 2000:
        log.warning("claims: %d bootstrap resamples (the protocol asks for >= 2000)", n_resamples)


def check_claims(
    uri: str,
    experiment: str,
    metric: str = "balanced_acc",
    n_resamples: int = 2000,
    seed: int = 0,
    frames: dict | None = None,
    select: dict | None = None,
    catalog: declared.Catalog | None = None,
    experiments_dirs=(),
) -> Claims:
    """Rows of the declared criteria and their conjunction from the FINISHED job runs (see
    the module docstring). `frames` ({experiment: run set}) are the report's own, so tables
    and claims read the same runs; `select` (runs.load_runs' where / include_debug) chooses
    the others; `catalog` the declarations (default: declared.load(experiments_dirs))."""
    _check_args(metric, n_resamples)
    catalog = catalog or declared.load(experiments_dirs)
    criteria = criteria_of(catalog, experiment)
    notes: list[str] = []
    sources = claim_sources(uri, experiment, notes, catalog, criteria)
    frames = dict(frames or {})
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        ctx = Context(uri, metric, RunFiles(uri, Path(tmp)), n_resamples, seed, notes)
        for n, crit in criteria.items():
            if crit.build is None:
                continue
            if n not in sources:
                rows.append(no_data(crit, f"no experiment for criterion {n}"))
                continue
            exp = sources[n]
            if exp not in frames:
                try:
                    frames[exp] = runs.load_runs(uri, exp, notes=notes, **(select or {}))
                except runs.ReportError as err:
                    if experiment not in catalog.stages:
                        raise
                    notes.append(f"criterion {n}: {err}")
                    rows.append(no_data(crit, str(err)))
                    continue
            rows += crit.build(ctx, crit, frames[exp], exp)
    adjust_and_judge(rows)
    last = max(criteria)
    rows.append(conjunction_row(rows, criteria[last], [n for n in criteria if n != last]))
    return Claims(rows, sources, criteria, metric, n_resamples, seed, notes, frames=frames)
