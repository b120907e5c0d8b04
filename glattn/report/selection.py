"""Which runs a report reads, chosen once per report and written to ``runs_used.csv``. A cell
is one configuration: equal fingerprint params but ``seed`` and `LOCATIONS`, and the same data
digest. Runs of one table row but different cells get a ``variant`` label, or a refusal saying
how to select; a seed run twice in a cell keeps its latest run."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd

from glattn.config import FINGERPRINT_EXCLUDE, FINGERPRINT_IGNORE
from glattn.report.frames import FACTORS, col
from glattn.tracking.names import CHOICE_PARAM_PREFIX, DEBUG_TAG

#: The identity of a cell's target besides its params (eval runs: the data set scored).
TARGET = ("task", "eval_dataset", "eval_split")
#: params that only say where files come from: the data set's folder, an eval's checkpoint
LOCATIONS = ("dataset.root",)
EVAL_LOCATIONS = ("ckpt_path",)
#: params no cell is told apart by (besides the fingerprint's excluded groups)
_IGNORED = {"seed", *LOCATIONS, *(f"{group}.{key}" for group, key in FINGERPRINT_IGNORE)}
DIGEST = "dataset_digest"  # the run's data set digest (from its MLflow dataset input)
DATA = "data"  # the derived column standing for the data set's contents in a cell's identity
GENERATED = ("synthetic",)  # data sets generated from their params (the root is a folder)
USED_COLUMNS = ["run_id", "run_name", "experiment", "cell", "variant", "seed", "task"]


class SelectionError(ValueError):
    """The runs cannot be split into cells without a choice only the user can make."""


def dataset_digest(run) -> str | None:
    """The digest of an MLflow run's data set input, or None for a run that logged none."""
    inputs = getattr(getattr(run, "inputs", None), "dataset_inputs", None) or ()
    return next((str(i.dataset.digest) for i in inputs if i.dataset.digest), None)


def data_identity(frame: pd.DataFrame) -> pd.Series:
    """What a real data set's folder held: its digest, else the folder; None if generated."""
    root = col(frame, "params.dataset.root")
    name = col(frame, "params.dataset.name").fillna(col(frame, "dataset"))
    real = root.where(~root.astype(str).isin(["None", "nan"]))
    out = col(frame, DIGEST).fillna(real.map(lambda r: None if pd.isna(r) else f"root {r}"))
    return out.where(~name.isin(GENERATED), None)


def _defines_cell(key: str) -> bool:
    return not (
        key in _IGNORED
        or key.split(".")[0] in FINGERPRINT_EXCLUDE
        or key.startswith(CHOICE_PARAM_PREFIX)
        or key.endswith("._partial_")
    )


def _identity(frame: pd.DataFrame) -> pd.DataFrame:
    """What defines each run's cell: its fingerprint params minus `_IGNORED`, Hydra's choices
    and ``._partial_`` (an eval's checkpoint path blanked), and DATA when known."""
    keys = sorted(c.removeprefix("params.") for c in frame.columns if c.startswith("params."))
    ident = frame[[f"params.{k}" for k in keys if _defines_cell(k)]].copy()
    evals = col(frame, "task").fillna("train") == "eval"
    ident.loc[evals, ident.columns.intersection([f"params.{k}" for k in EVAL_LOCATIONS])] = None
    data = data_identity(frame)
    return ident.assign(**{DATA: data}) if data.notna().any() else ident


def _cell_id(values: tuple) -> str:
    blob = json.dumps([None if pd.isna(v) else str(v) for v in values])
    return hashlib.sha256(blob.encode()).hexdigest()[:10]


def add_cells(frame: pd.DataFrame) -> pd.DataFrame:
    """Adds ``cell`` (a hash of its identity) and ``variant``; SelectionError when a row
    would pool two cells that no shared param tells apart."""
    ident = _identity(frame)
    params = list(ident.columns)
    ids = [_cell_id(r) for r in ident.itertuples(index=False)]
    frame = frame.assign(cell=ids if params else col(frame, "fingerprint"), variant="")
    keys = [k for k in (*FACTORS, *TARGET) if k in frame]
    work = pd.concat([frame[[*keys, "cell"]], ident], axis=1)  # identity columns
    for _, sub in work.groupby(col(frame, "dataset").fillna("?"), sort=False):
        counts = sub.groupby(keys, dropna=False, sort=False)[["cell", *params]].nunique()
        pooled = counts[counts["cell"] > 1]  # rows of several cells: what tells them apart
        names = sorted(p for p in params if sub[p].notna().all() and (pooled[p] > 1).any())
        if names:
            frame.loc[sub.index, "variant"] = [
                ", ".join(f"{p.removeprefix('params.')}={v}" for p, v in zip(names, r))
                for r in sub[names].itertuples(index=False)
            ]
    _refuse_pooled(work.assign(variant=frame["variant"]), keys, params)
    return frame


def _refuse_pooled(frame: pd.DataFrame, keys: list[str], params: list[str]) -> None:
    for levels, combo in frame.groupby([*keys, "variant"], dropna=False, sort=False):
        if combo["cell"].nunique() < 2:
            continue
        diff = [p for p in params if combo[p].nunique(dropna=False) > 1]
        shown = "; ".join(
            f"{p.removeprefix('params.')} in {sorted(map(str, combo[p].unique()))}"
            for p in diff[:8]
        )
        row = ", ".join(f"{k}={v}" for k, v in zip(keys, levels))
        params_only = [p for p in diff if p != DATA]  # --where reads params, not DATA
        example = params_only[0].removeprefix("params.") if params_only else "KEY"
        value = combo[params_only[0]].dropna().iloc[0] if params_only else "VALUE"
        raise SelectionError(
            f"runs of {combo['cell'].nunique()} configurations share one row ({row}); "
            f"they differ in {shown or 'their fingerprint tag'}. Select one: "
            f'--where "{example}={value}", another experiment (glattn report NAME), or tags'
        )


def debug_mask(frame: pd.DataFrame) -> pd.Series:
    """Runs of a debug preset: tag or param ``debug``, or ``debug=`` in their overrides."""
    tag = col(frame, f"tags.{DEBUG_TAG}").fillna("").astype(str)
    param = col(frame, f"params.{DEBUG_TAG}").fillna("None").astype(str)
    overrides = col(frame, "tags.overrides").fillna("").astype(str)
    debug = (tag != "") | ~param.isin(["None", "null", ""])
    return debug | overrides.str.contains(r"(?:^|[\s,\[])debug=", regex=True)


def debug_note(frame: pd.DataFrame, what: str, shown: int = 20) -> str:
    """One line naming debug-preset runs per experiment: ``run name (run id)``."""
    parts = []
    for exp, sub in frame.groupby("experiment", sort=False):
        runs = [f"{n} ({r})" for n, r in zip(col(sub, "run_name"), sub["run_id"])]
        more = f", and {len(runs) - shown} more" if len(runs) > shown else ""
        parts.append(f"{len(runs)} in {exp!r}: " + ", ".join(runs[:shown]) + more)
    return f"debug-preset runs {what}: " + "; ".join(parts)


def apply_where(frame: pd.DataFrame, wheres) -> pd.DataFrame:
    """Keep the runs whose param (or tag with ``tags.``, or factor) equals each KEY=VALUE."""
    for text in wheres or ():
        key, sep, value = (s.strip() for s in str(text).partition("="))
        if not sep or not key:
            raise SelectionError(
                f'--where {text!r}: expected KEY=VALUE, e.g. "dataset.image_size=224"'
            )
        name = next((c for c in (key, f"params.{key}", f"tags.{key}") if c in frame.columns), None)
        if name is None:
            raise SelectionError(
                f"--where {text!r}: no run has a param or tag {key!r} "
                f"(params look like dataset.image_size, tags like tags.fingerprint)"
            )
        frame = frame[frame[name].astype(str) == value]
    return frame


def dedupe(frame: pd.DataFrame, notes: list) -> pd.DataFrame:
    """One run per (cell, target, seed): the latest, with a note naming the reruns."""
    key = ["cell", *[k for k in TARGET if k in frame], "seed"]
    ordered = frame.sort_values("start_time")
    dup = ordered.duplicated(subset=key, keep="last")
    if dup.any():
        notes.append(
            f"{int(dup.sum())} FINISHED run(s) repeat a seed of the same configuration (the "
            "same config run again); the latest run per seed is used: left out "
            + ", ".join(ordered.loc[dup, "run_id"].astype(str).tolist()[:10])
        )
    return ordered[~dup]


def runs_used(frames: dict[str, pd.DataFrame], out_dir: Path) -> tuple[pd.DataFrame, Path]:
    """runs_used.csv in `out_dir`: the declared run set of every experiment read (run id, name,
    experiment, cell, variant, seed, task); the frame and the file."""
    out = pd.concat([pd.DataFrame({c: col(f, c) for c in USED_COLUMNS}) for f in frames.values()])
    out = out.sort_values(["experiment", "cell", "seed"], key=lambda s: s.astype(str))
    out.to_csv(path := Path(out_dir) / "runs_used.csv", index=False)
    return out, path
