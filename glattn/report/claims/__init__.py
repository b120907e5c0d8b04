"""The claims the experiment files declare (``report.claims``), checked from the declared run
set, and their verdicts: a row is supported only when its 95% interval clears the threshold and
its Holm-adjusted p < 0.05 (docs/report-statistics.md). rows.py: the rows and their statistics;
criteria.py: the pipeline and the paper's criteria."""

from __future__ import annotations

import logging
import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from hydra.utils import get_object

from glattn.report import declared, runs, stats
from glattn.report.claims.rows import (
    ALPHA,
    INCONCLUSIVE,
    METRICS,
    MIN_PAIRS,
    NOT_SUPPORTED,
    SUPPORTED,
    Context,
    Criterion,
    Row,
    conjunction,
    new_row,
    no_data,
)
from glattn.report.predictions import RunFiles

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
        """One line per row, its public fields only."""
        return pd.DataFrame([vars(r) for r in self.rows]).filter(regex="^[^_]")


def criteria_of(catalog: declared.Catalog, experiment: str) -> dict[int, Criterion]:
    """{number: Criterion} of the claims `experiment` decides, then their conjunction."""
    out = {
        c.number: Criterion(**vars(c), table=d.number, build=get_object(c._target_))
        for d, c in catalog.claims(experiment)
    }
    last = conjunction(list(out))
    return {**out, last.number: last}


def claim_sources(
    uri: str, experiment: str, notes: list, catalog: declared.Catalog, criteria: dict
) -> dict[int, str]:
    """Criterion -> experiment: a stages file (`paper`) reads each from the stage experiment
    that declares it."""
    runs.client_for(uri)  # a missing store is an error before any work
    checked = {n: c for n, c in criteria.items() if c.build is not None}
    numbers = sorted({c.table for c in checked.values()})
    tables = runs.table_sources(uri, experiment, numbers, [], catalog)
    for n, c in checked.items():
        if c.table not in tables:
            name = catalog.by_number()[c.table].experiment
            notes.append(f"criterion {n}: no experiment {name!r} (Table {c.table}) in the store")
    return {n: tables[c.table] for n, c in checked.items() if c.table in tables}


def check_claims(
    uri: str,
    experiment: str,
    metric: str = "balanced_acc",
    n_resamples: int = 2000,
    seed: int = 0,
    frames: dict | None = None,
    where=(),
    include_debug: bool = False,
    catalog: declared.Catalog | None = None,
    experiments_dirs=(),
) -> Claims:
    """Rows of the declared criteria and their conjunction from the FINISHED job runs.
    `frames` ({experiment: run set}) are the report's own, so tables and claims read the same
    runs; `where` and `include_debug` (runs.load_runs') choose the others."""
    if metric not in METRICS:
        raise runs.ReportError(
            f"--metric {metric!r}: the claims recompute the metric per image, so it must be "
            f"one of {list(METRICS)}"
        )
    if n_resamples < 1:
        raise runs.ReportError(f"--resamples {n_resamples}: expected a positive number")
    if n_resamples < 2000:
        log.warning("claims: %d bootstrap resamples (the protocol asks for >= 2000)", n_resamples)
    catalog = catalog or declared.load(experiments_dirs)
    criteria = criteria_of(catalog, experiment)
    notes: list[str] = []
    sources = claim_sources(uri, experiment, notes, catalog, criteria)
    frames, select = dict(frames or {}), {"where": where, "include_debug": include_debug}
    rows: list[Row] = []
    *checked, last = criteria  # the declared ones, then their conjunction
    with tempfile.TemporaryDirectory() as tmp:
        ctx = Context(metric, RunFiles(uri, Path(tmp)), n_resamples, seed)
        for n in checked:
            crit = criteria[n]
            if n not in sources:
                rows.append(no_data(crit, f"no experiment for criterion {n}"))
                continue
            exp = sources[n]
            if exp not in frames:
                try:
                    frames[exp] = runs.load_runs(uri, exp, notes=notes, **select)
                except runs.ReportError as err:
                    if experiment not in catalog.stages:
                        raise
                    notes.append(f"criterion {n}: {err}")
                    rows.append(no_data(crit, str(err)))
                    continue
            rows += crit.build(ctx, crit, frames[exp], exp)
    adjust_and_judge(rows)
    rows.append(conjunction_row(rows, criteria[last], checked))
    return Claims(rows, sources, criteria, metric, n_resamples, seed, notes, frames=frames)


def judge(row: Row) -> None:
    """Verdict and reason of a row whose Holm-adjusted p is set; an inconclusive row with paired
    runs also says what its seeds could detect (80% power) and how many would resolve it."""
    row.verdict, row.reason = _verdict(row)
    if row.verdict != INCONCLUSIVE or not row.n_pairs or math.isnan(row.effect):
        return
    pw = stats.t_power(row._sd, row.n_pairs, row._distance)
    if math.isnan(pw.mde):
        row.reason += "; no spread to compute power from (fewer than 2 pairs or no variance)"
        return
    row.mde, row.seeds_needed = row._show(row._thr + row.sign() * pw.mde), pw.seeds_needed
    u = "" if row.unit == "%" else " "
    row.reason += (
        f"; with {row.n_pairs} seeds an effect {row.direction} {row.mde:.2f}{u}{row.unit} "
        "would be detected at 80% power"
    )
    if math.isinf(pw.seeds_needed):
        row.reason += "; the observed effect is on the wrong side, no number of seeds helps"
    elif not math.isnan(pw.seeds_needed):
        row.reason += f"; about {int(pw.seeds_needed)} seeds would resolve the observed one"


def _verdict(row: Row) -> tuple[str, str]:
    """(verdict, reason): supported when the 95% interval clears the threshold and the
    Holm-adjusted p < ALPHA; a deterministic row compares its one value."""
    thr, lo, hi, above = row.threshold, row.low, row.high, row.direction == ">"
    unit = ("" if row.unit in ("%", "p") else " ") + row.unit
    iv, bar, side = f"[{lo:.2f}, {hi:.2f}]{unit}", f"{thr:g}{unit}", "above" if above else "below"
    if math.isnan(row.effect) or not (row._deterministic or row.n_pairs):
        missing = "no value" if row._deterministic else "no paired runs"
        return INCONCLUSIVE, row._reason or missing
    if row._deterministic:
        holds = row.effect > thr if above else row.effect < thr
        is_side = f"is {side}" if holds else f"is not {side}"
        reason = f"{row.effect:.2f}{unit} {is_side} {bar}; {row.interval}"
        return (SUPPORTED if holds else NOT_SUPPORTED), reason
    if row.n_pairs < MIN_PAIRS:
        needs = f"the paired t-test needs at least {MIN_PAIRS}"
        return INCONCLUSIVE, f"too few runs: {row.n_pairs} seed pair(s), {needs}"
    if hi <= thr if above else lo >= thr:
        return NOT_SUPPORTED, f"the whole 95% interval {iv} is on the wrong side of {bar}"
    if not (lo > thr if above else hi < thr):
        return INCONCLUSIVE, f"the 95% interval {iv} contains the threshold {bar}"
    clears, holm = f"the 95% interval {iv} clears {bar}", f"Holm-adjusted p = {row.p_holm:.3g}"
    if math.isnan(row.p_holm):
        return INCONCLUSIVE, f"{clears}, but {row._reason}"
    if row.p_holm >= ALPHA:
        spread = f" ({row._reason})" if row._reason else ""  # zero spread
        return INCONCLUSIVE, f"{clears}, but the seeds do not agree: {holm} >= {ALPHA}{spread}"
    return SUPPORTED, f"the 95% interval {iv} is {side} {bar} and the {holm} < {ALPHA}"


def adjust_and_judge(rows: list[Row]) -> None:
    """Holm within each claim's family (its rows that have a p-value), then verdicts."""
    for number in {r.claim for r in rows}:
        family = [r for r in rows if r.claim == number]
        for r, p in zip(family, stats.holm([r.p for r in family])):
            r.p_holm = float(p)
            judge(r)  # reads the row alone


def combine(verdicts: list[str]) -> str:
    """Not supported if any is, supported if all are (and there are some), else inconclusive."""
    if NOT_SUPPORTED in verdicts:
        return NOT_SUPPORTED
    return SUPPORTED if verdicts and all(v == SUPPORTED for v in verdicts) else INCONCLUSIVE


def headline(rows: list[Row], number: int) -> list[Row]:
    """The rows that decide a claim: its primary pooled rows, else its primary rows."""
    mine = [r for r in rows if r.claim == number and r.primary]
    return [r for r in mine if r.pooled] or mine


def span(numbers: list[int]) -> str:
    """'1-5' for a run of consecutive numbers, else '1, 3'."""
    lo, hi = min(numbers), max(numbers)
    if list(numbers) == list(range(lo, hi + 1)) and hi > lo:
        return f"{lo}-{hi}"
    return ", ".join(map(str, numbers))


def conjunction_row(rows: list[Row], crit: Criterion, numbers: list[int]) -> Row:
    """The conjunction `crit` of the criteria `numbers`: supported only when each deciding
    row is; its p is the largest of their Holm-adjusted p-values."""
    heads = {n: headline(rows, n) for n in numbers}
    parts = {n: combine([r.verdict for r in head]) for n, head in heads.items()}
    ps = [r.p_holm for head in heads.values() for r in head if not math.isnan(r.p_holm)]
    row = new_row(crit, "all", f"criteria {span(numbers)} together", primary=True, pooled=True)
    row.test = "intersection-union: the largest Holm-adjusted p of the deciding rows"
    row.p = row.p_holm = max(ps, default=math.nan)
    row.verdict = combine(list(parts.values()))
    why = {
        SUPPORTED: f"criteria {span(numbers)} are all supported after Holm's adjustment",
        NOT_SUPPORTED: "not every criterion holds",
    }.get(row.verdict, "not every criterion is decided")
    listing = ", ".join(f"{n}: {v}" for n, v in parts.items())
    row.reason = f"{why} ({listing})"
    return row
