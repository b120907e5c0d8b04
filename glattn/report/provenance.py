"""Where a report's results came from: a reused run (tag ``glattn.reused_from``) reports its
source run's ``perf/*`` and ``time/*``; NOTES.md lists reused runs and mixed-code cells."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import pandas as pd

from glattn.report.frames import col
from glattn.tracking import provenance

SOURCE = f"tags.{provenance.REUSED_FROM_TAG}"
SOURCE_EXPERIMENT = f"tags.{provenance.REUSED_FROM_EXPERIMENT_TAG}"
SOURCE_CODE_DIFFERS = f"tags.{provenance.SOURCE_CODE_DIFFERS_TAG}"
MEASURED_BY = "measured_by"  # the column naming the run that measured a row's perf/*, time/*


def reused(frame: pd.DataFrame) -> pd.Series:
    """True for the rows of reused runs."""
    return col(frame, SOURCE).fillna("").astype(str).str.len() > 0


def measured_by_source(frame: pd.DataFrame, keys: Iterable[str], history: Callable | None):
    """`frame` with each reused run's ``metrics.<key>`` the last value its source logged
    (by `history`), and ``measured_by`` naming the run that measured each row."""
    frame = frame.copy()
    frame[MEASURED_BY] = col(frame, "run_id")
    mask = reused(frame)
    if not mask.any() or history is None:
        return frame
    sources = frame.loc[mask, SOURCE].astype(str)
    frame.loc[mask, MEASURED_BY] = sources
    for key in keys:  # a column the frame lacks is added, NaN outside the reused rows
        last = {r: s[max(s)] for r, s in history(sorted(set(sources)), key).items() if s}
        frame.loc[mask, f"metrics.{key}"] = sources.map(last).astype(float)
    return frame


def notes(frames: dict[str, pd.DataFrame]) -> list[str]:
    """NOTES.md lines: every reused run with its source; every cell made by several codes."""
    out = []
    for experiment, frame in frames.items():
        for _, row in frame[reused(frame)].iterrows():
            out.append(
                f"reused, not trained: {experiment}/{row['run_name']} ({row['run_id']}) took "
                f"its training from run {row[SOURCE]} of experiment "
                f"{row.get(SOURCE_EXPERIMENT) or '?'}; its throughput, latency and memory are "
                "that run's"
            )
        out += _mixed_code(experiment, frame) if "cell" in frame else []
    return out


def _mixed_code(experiment: str, frame: pd.DataFrame) -> list[str]:
    out = []
    for cell, sub in frame.groupby("cell", sort=True):
        tags = [row.dropna().filter(regex=r"^tags\.") for _, row in sub.iterrows()]
        codes = [{k.removeprefix("tags."): v for k, v in t.items()} for t in tags]
        differs = sorted({d for c in codes[1:] for d in provenance.code_difference(c, codes[0])})
        differs += sorted(
            f"{row['run_name']} reused a training made by other code ({row[SOURCE_CODE_DIFFERS]})"
            for _, row in sub.iterrows()
            if isinstance(row.get(SOURCE_CODE_DIFFERS), str) and row[SOURCE_CODE_DIFFERS]
        )
        if differs:
            names = ", ".join(sorted(map(str, sub["run_name"])))
            out.append(
                f"different code in one cell ({experiment}, cell {cell}: {names}): "
                + "; ".join(differs)
                + "; sweep.rerun=true retrains a cell with today's code"
            )
    return out
