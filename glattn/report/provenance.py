"""Where a report's results came from: reused runs and cells made by different code.

A reused run (tag ``glattn.reused_from``, glattn.tracking.provenance) took its training
from a FINISHED run of another experiment: what measured the training process
(``perf/*``, ``time/*``) is that source run's, so `measured_by_source` reads those figures
from the source run for the efficiency table, and `notes` lists the reused runs in
NOTES.md. A cell (one configuration, glattn.report.selection) whose runs were made by
different code (glattn's version, commit or uncommitted changes, a user's component
module; or a reused run whose source was) is flagged in NOTES.md.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import pandas as pd

from glattn.report.frames import col
from glattn.tracking.provenance import (
    CODE_TAG_PREFIX,
    COMMIT_TAG,
    DIRTY_TAG,
    REUSED_FROM_EXPERIMENT_TAG,
    REUSED_FROM_TAG,
    SOURCE_CODE_DIFFERS_TAG,
    VERSION_TAG,
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
        name = f"metrics.{key}"
        if name not in frame:
            frame[name] = float("nan")
        frame.loc[mask, name] = [last.get(rid, float("nan")) for rid in sources]
    return frame


def notes(frames: dict[str, pd.DataFrame]) -> list[str]:
    """NOTES.md lines: every reused run with its source; every cell made by several codes."""
    out = []
    for experiment, frame in frames.items():
        if frame.empty:
            continue
        mask = reused(frame)
        for _, row in frame[mask].iterrows():
            source_exp = row.get(f"tags.{REUSED_FROM_EXPERIMENT_TAG}") or "?"
            out.append(
                f"reused, not trained: {experiment}/{row['run_name']} ({row['run_id']}) took "
                f"its training from run {row[f'tags.{REUSED_FROM_TAG}']} of experiment "
                f"{source_exp}; its throughput, latency and memory are that run's"
            )
        out += _mixed_code(experiment, frame)
    return out


def _code(row: pd.Series) -> dict[str, str]:
    keys = [VERSION_TAG, COMMIT_TAG, DIRTY_TAG]
    keys += [c[len("tags.") :] for c in row.index if c.startswith(f"tags.{CODE_TAG_PREFIX}")]
    return {k: str(row[f"tags.{k}"]) for k in keys if pd.notna(row.get(f"tags.{k}"))}


def _mixed_code(experiment: str, frame: pd.DataFrame) -> list[str]:
    if "cell" not in frame:
        return []
    out, tag = [], f"tags.{SOURCE_CODE_DIFFERS_TAG}"
    for cell, sub in frame.groupby("cell", sort=True):
        rows = [row for _, row in sub.iterrows()]
        first = _code(rows[0])
        differs = sorted({d for row in rows[1:] for d in code_difference(_code(row), first)})
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
