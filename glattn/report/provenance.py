"""Where a report's results came from: reused runs and cells made by different code.

A reused run (tag ``glattn.reused_from``) took its training from a run of another
experiment, so its ``perf/*`` and ``time/*`` figures are read from that source run
(`measured_by_source`); NOTES.md lists reused runs and flags cells made by different code.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import pandas as pd

from glattn.report.frames import col
from glattn.tracking.provenance import (
    REUSED_FROM_EXPERIMENT_TAG,
    REUSED_FROM_TAG,
    SOURCE_CODE_DIFFERS_TAG,
    code_difference,
)

#: the frame's column holding the run that measured a row's perf/* and time/* figures
MEASURED_BY = "measured_by"


def reused(frame: pd.DataFrame) -> pd.Series:
    """True for the rows of reused runs."""
    return col(frame, f"tags.{REUSED_FROM_TAG}").fillna("").astype(str).str.len() > 0


def measured_by_source(frame: pd.DataFrame, keys: Iterable[str], history: Callable | None):
    """`frame` with each reused run's ``metrics.<key>`` (of `keys`) taken from its source
    run's last logged value (``history(run_ids, key) -> {run_id: {step: value}}``), and
    ``measured_by`` naming the run that measured each row (its own, or the source)."""
    frame = frame.copy()
    frame[MEASURED_BY] = col(frame, "run_id")
    mask = reused(frame)
    if not mask.any() or history is None:
        return frame
    sources = frame.loc[mask, f"tags.{REUSED_FROM_TAG}"].astype(str)
    frame.loc[mask, MEASURED_BY] = sources
    for key in keys:
        values = history(sorted(set(sources)), key)
        last = {rid: steps[max(steps)] for rid, steps in values.items() if steps}
        if f"metrics.{key}" not in frame:
            frame[f"metrics.{key}"] = float("nan")
        frame.loc[mask, f"metrics.{key}"] = [last.get(rid, float("nan")) for rid in sources]
    return frame


def notes(frames: dict[str, pd.DataFrame]) -> list[str]:
    """NOTES.md lines: every reused run with its source; every cell made by several codes."""
    out = []
    for experiment, frame in frames.items():
        if frame.empty:
            continue
        for _, row in frame[reused(frame)].iterrows():
            out.append(
                f"reused, not trained: {experiment}/{row['run_name']} ({row['run_id']}) took "
                f"its training from run {row[f'tags.{REUSED_FROM_TAG}']} of experiment "
                f"{row.get(f'tags.{REUSED_FROM_EXPERIMENT_TAG}') or '?'}; its throughput, "
                "latency and memory are that run's"
            )
        out += _mixed_code(experiment, frame)
    return out


def _tags(row: pd.Series) -> dict[str, str]:
    return {k.removeprefix("tags."): v for k, v in row.dropna().items() if k.startswith("tags.")}


def _mixed_code(experiment: str, frame: pd.DataFrame) -> list[str]:
    if "cell" not in frame:
        return []
    out, tag = [], f"tags.{SOURCE_CODE_DIFFERS_TAG}"
    for cell, sub in frame.groupby("cell", sort=True):
        rows = [row for _, row in sub.iterrows()]
        first = _tags(rows[0])
        differs = sorted({d for row in rows[1:] for d in code_difference(_tags(row), first)})
        differs += sorted(
            f"{row['run_name']} reused a training made by other code ({row[tag]})"
            for row in rows
            if isinstance(row.get(tag), str) and row[tag]
        )
        if differs:
            names = ", ".join(sorted(str(r["run_name"]) for r in rows))
            out.append(
                f"different code in one cell ({experiment}, cell {cell}: {names}): "
                + "; ".join(differs)
                + "; sweep.rerun=true retrains a cell with today's code"
            )
    return out
