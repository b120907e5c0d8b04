"""Frame helpers every report module shares: columns, metrics, level order, sub-frames. A runs
frame has one row per MLflow run: ``run_id``, ``start_time``, ``params.<key>``, ``metrics.<key>``,
``tags.<key>``, the factor columns, ``seed``, ``task``, ``cell`` and ``variant`` (selection)."""

from __future__ import annotations

import itertools

import pandas as pd

from glattn.groups import FACTORS, ORDER, display_order

#: The row keys of tables, strata and figures: the factors, then the runs' ``variant`` label.
ROW_KEYS = (*FACTORS, "variant")

DATASET_NAMES = {"ham10000": "HAM10000", "isic2018": "ISIC 2018", "synthetic": "Synthetic"}
SPLIT_NAMES = {"official_test": "official test", "official_val": "official val."}


def col(frame: pd.DataFrame, name: str) -> pd.Series:
    """Column `name` with None for missing values (a column of Nones when absent)."""
    column = frame.get(name, pd.Series(None, index=frame.index, dtype=object))
    return column.where(column.notna(), None)


def metric(frame: pd.DataFrame, key: str) -> pd.Series:
    """The runs' logged ``metrics.<key>`` as floats (NaN where a run lacks it)."""
    return pd.to_numeric(col(frame, f"metrics.{key}"), errors="coerce").astype(float)


def ordered(factor: str, levels) -> list:
    """`levels` (None dropped, once each) in the group's display order (glattn.groups)."""
    return display_order(factor, list(dict.fromkeys(levels)))


def rank(factor: str, value):
    order = ORDER.get(factor, ())
    return (order.index(value), "") if value in order else (len(order), str(value))


def dataset_label(ds: str) -> str:
    return DATASET_NAMES.get(ds, ds)


def seed_key(frame: pd.DataFrame) -> pd.Series:
    """The key runs pair and repeat by: the seed, else (no seed logged) the run id."""
    return frame["seed"].where(frame["seed"].notna(), frame["run_id"])


def trained(runs: pd.DataFrame) -> pd.DataFrame:
    return runs[runs["task"] == "train"]


def restrict(frame: pd.DataFrame, baseline: dict) -> pd.DataFrame:
    """Pin each factor in `baseline` to its value where the factor varies in `frame`."""
    for factor, value in baseline.items():
        if frame[factor].nunique(dropna=True) > 1 and (frame[factor] == value).any():
            frame = frame[frame[factor] == value]
    return frame


def varying(frame: pd.DataFrame, exclude=()) -> list[str]:
    """The row keys (factors, then ``variant``) with more than one value in `frame`."""
    keys = [f for f in ROW_KEYS if f not in exclude and f in frame]
    return [f for f in keys if frame[f].nunique(dropna=True) > 1]


def combos(frame: pd.DataFrame, keys: list[str]) -> list[tuple]:
    """The combinations of `keys` that occur, in display order."""
    found = {tuple(r) for r in frame[keys].itertuples(index=False)}
    return sorted(found, key=lambda t: tuple(rank(k, v) for k, v in zip(keys, t)))


def select(frame: pd.DataFrame, keys, levels) -> pd.DataFrame:
    return frame[(frame[list(keys)] == list(levels)).all(axis=1)]


def groups(frame: pd.DataFrame, keys: list[str], levels_of=None, full: bool = True):
    """(levels, sub-frame) over `levels_of(frame, key)` x ... when `full` (levels absent from the
    runs give empty sub-frames), else over the combinations of `keys` that occur."""
    if full and levels_of is not None:
        grid = itertools.product(*(levels_of(frame, k) for k in keys))
    else:
        grid = combos(frame, keys) if keys else [()]
    for levels in grid:
        yield tuple(levels), select(frame, keys, levels)


def strata(frame: pd.DataFrame, keys: list[str]):
    """(label, sub-frame) per combination of `keys` that occurs (claims' strata)."""
    if frame.empty:
        return
    for levels, sub in groups(frame, keys, full=False):
        label = ", ".join(
            dataset_label(v) if k == "dataset" else (str(v) if k == "variant" else f"{k}={v}")
            for k, v in zip(keys, levels)
        )
        yield label or "all", sub
