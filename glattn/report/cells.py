"""Table cells from runs, each a `table_format.Cell` with its footnote: mean ± sample std (ddof=1)
over the seeds of one configuration (one run per seed) with n, constants, differences, p-values."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import pandas as pd

from glattn.report import frames, stats
from glattn.report.table_format import DASH, Cell
from glattn.tracking.names import CHOICE_PARAM_PREFIX, REFERENCE_TAG_PREFIX

METRICS = {
    "balanced_acc": "Balanced acc. (%)",
    "acc": "Accuracy (%)",
    "macro_f1": "Macro-F1 (%)",
    "auc": "AUC (%)",
}
NO_RUNS = "no FINISHED run of this configuration in the experiment"
VAL_NOTE = "includes best-epoch validation values (these runs logged no test/{m})"


@dataclass
class Context:
    """What the table builders need besides the runs frame."""

    metric: str = "balanced_acc"
    #: {factor: [levels]} the experiment's sweep asked for (missing ones become dashes).
    expected: dict = field(default_factory=dict)
    #: history(run_ids, key) -> {run_id: {epoch: value}} (predictions.RunFiles.history).
    history: Callable | None = None
    convergence_fraction: float = 0.95

    def levels(self, frame: pd.DataFrame, factor: str) -> list:
        """Levels present in the runs, plus those the experiment's sweep asked for."""
        present = list(frame[factor].dropna().unique()) if factor in frame else []
        return frames.ordered(factor, present + list(self.expected.get(factor, [])))

    def grid(self, frame: pd.DataFrame, keys: list[str], full: bool = True):
        """frames.groups over the levels present plus those the sweep asked for."""
        return frames.groups(frame, keys, self.levels, full)


def metric_name(metric: str) -> str:
    """The metric's name without its unit: 'balanced_acc' -> 'Balanced acc.'."""
    return METRICS[metric].removesuffix(" (%)")


def p_text(p: float | None) -> str:
    """A p-value as every table prints it: 3 decimals, 1.0e-04 below 0.001, a dash for none."""
    if p is None or math.isnan(p):
        return DASH
    return f"{p:.3f}" if p >= 0.001 else f"{p:.1e}"


def pct(value: float) -> str:
    return f"{100 * value:.2f}"


def points(value: float) -> str:
    """A difference of two fractions in signed percentage points."""
    return f"{100 * value:+.2f}"


def millions(v: float) -> str:
    return f"{v / 1e6:.2f}"


def summary_cell(values: dict, scale=pct, note: str | None = None, missing=NO_RUNS) -> Cell:
    """`{seed: value}` -> 'mean ± std (n=k)' (no ± for n=1), or a dash + footnote."""
    s = stats.summarize(values)
    if s.n == 0:
        return Cell.missing(missing)
    text = scale(s.mean) if s.n == 1 else f"{scale(s.mean)} ± {scale(s.std).lstrip('+')}"
    return Cell(f"{text} (n={s.n})", s.mean, s.std, int(s.n), note=note)


def score(frame: pd.DataFrame, metric: str) -> pd.Series:
    """Per-run score: test/<m> (holdout test split), else best/val/<m>."""
    return frames.metric(frame, f"test/{metric}").fillna(
        frames.metric(frame, f"best/val/{metric}")
    )


def by_seed(frame: pd.DataFrame, values: pd.Series) -> tuple[dict, str | None]:
    """{seed: value} of a configuration's runs (the latest run per seed, as the claims pair
    them), a footnote if a seed repeats."""
    runs = frame.assign(key=frames.seed_key(frame), value=values).sort_values("start_time")
    repeats = int(runs["key"].duplicated().sum())
    latest = runs.drop_duplicates("key", keep="last").dropna(subset="value")
    note = f"{repeats} run(s) repeat a seed of this row; the latest run per seed is used"
    return dict(zip(latest["key"], latest["value"].astype(float))), (note if repeats else None)


def compare(a: pd.DataFrame, b: pd.DataFrame, metric: str) -> stats.Comparison:
    """`stats.compare` of two configurations' scores by seed (`score`, `by_seed`): b against a."""
    return stats.compare(*(by_seed(f, score(f, metric))[0] for f in (a, b)))


def logged_cell(frame, key: str, scale: Callable[[float], str], missing: str | None = None):
    """Mean ± std over seeds of the logged metric `key`."""
    values, note = by_seed(frame, frames.metric(frame, key))
    missing = missing or (NO_RUNS if frame.empty else f"runs did not log {key}")
    return summary_cell(values, scale, note, missing)


def metric_cell(frame: pd.DataFrame, ctx: Context) -> Cell:
    """The metric (`score`) over seeds, footnoted for validation values or missing seeds."""
    values = score(frame, ctx.metric)
    seeds, dup_note = by_seed(frame, values)
    notes = [dup_note] if dup_note else []
    if (values.notna() & frames.metric(frame, f"test/{ctx.metric}").isna()).any():
        notes.append(VAL_NOTE.format(m=ctx.metric))
    asked = ctx.expected.get("seed") or []
    if seeds and len(asked) > len(seeds):
        notes.append(f"fewer seeds than the {len(asked)} the experiment's sweep asks for")
    missing = NO_RUNS if frame.empty else f"runs logged neither test/{ctx.metric} nor best/val"
    return summary_cell(seeds, note="; ".join(notes) or None, missing=missing)


def constant_cell(frame: pd.DataFrame, key: str, fmt: Callable[[float], str]) -> Cell:
    """A per-configuration constant (parameters, FLOPs): the median over its seeds' runs."""
    seeds, _ = by_seed(frame, frames.metric(frame, key))
    if not seeds:
        return Cell.missing(NO_RUNS if frame.empty else f"runs did not log {key}")
    v = float(pd.Series(seeds).median())
    return Cell(fmt(v), v, 0.0 if len(seeds) > 1 else math.nan, len(seeds))


def p_cell(cmp: stats.Comparison) -> Cell:
    if math.isnan(cmp.p_value):
        return Cell.missing(f"no test: {cmp.reason}")
    note = f"p = 1: {cmp.reason}" if cmp.reason else None
    return Cell(p_text(cmp.p_value), p_value=cmp.p_value, n=min(cmp.n_a, cmp.n_b), note=note)


def diff_cell(cmp: stats.Comparison) -> Cell:
    if math.isnan(cmp.diff):
        return Cell.missing(f"no difference: {cmp.reason}")
    return Cell(points(cmp.diff), cmp.diff, p_value=cmp.p_value)


def caption_stats(ctx: Context) -> str:
    return (
        f"{metric_name(ctx.metric)} in %, mean ± sample std over seeds "
        f"(n = number of seeds), on the test split (test/{ctx.metric}); differences in "
        "percentage points of the metric"
    )


def references(group: str, runs: pd.DataFrame) -> dict[str, str]:
    """{option: reference} of `group` from what the runs logged: their option (``choice.<group>``)
    and ``reference.<group>`` tag (glattn.contract.references), extensions' alike."""
    ref = f"tags.{REFERENCE_TAG_PREFIX}{group}"
    option = group if group in runs else f"params.{CHOICE_PARAM_PREFIX}{group}"
    if option not in runs or ref not in runs:
        return {}
    logged = runs[[option, ref]].dropna()
    return {str(o): str(r) for o, r in zip(logged[option], logged[ref]) if str(r).strip()}
