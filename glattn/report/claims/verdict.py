"""The claims' verdicts: Holm (1979) within each criterion's family, then each row judged by
its interval and its Holm-adjusted p; the power of what stays inconclusive (statsmodels); the
conjunction (the last criterion, an intersection-union test)."""

from __future__ import annotations

import math

from glattn.report import stats
from glattn.report.claims.rows import (
    ALPHA,
    INCONCLUSIVE,
    MIN_PAIRS,
    NOT_SUPPORTED,
    SUPPORTED,
    Criterion,
    Row,
    new_row,
)


def judge(row: Row) -> None:
    """Verdict and reason of a row whose Holm-adjusted p is set."""
    thr, lo, hi, above = row.threshold, row.low, row.high, row.direction == ">"
    unit = ("" if row.unit in ("%", "p") else " ") + row.unit
    iv, side = f"[{lo:.2f}, {hi:.2f}]{unit}", "above" if above else "below"
    row.verdict = INCONCLUSIVE
    if math.isnan(row.effect) or not (row._deterministic or row.n_pairs):
        row.reason = row._reason or ("no value" if row._deterministic else "no paired runs")
    elif row._deterministic:
        holds = row.effect > thr if above else row.effect < thr
        row.verdict = SUPPORTED if holds else NOT_SUPPORTED
        is_side = f"is {side}" if holds else f"is not {side}"
        row.reason = f"{row.effect:.2f}{unit} {is_side} {thr:g}{unit}; {row.interval}"
    elif row.n_pairs < MIN_PAIRS:
        row.reason = (
            f"too few runs: {row.n_pairs} seed pair(s), the paired t-test needs at least "
            f"{MIN_PAIRS}"
        )
    elif hi <= thr if above else lo >= thr:
        row.verdict = NOT_SUPPORTED
        row.reason = f"the whole 95% interval {iv} is on the wrong side of {thr:g}{unit}"
    elif not (lo > thr if above else hi < thr):
        row.reason = f"the 95% interval {iv} contains the threshold {thr:g}{unit}"
    elif math.isnan(row.p_holm):
        row.reason = f"the 95% interval {iv} clears {thr:g}{unit}, but {row._reason}"
    elif row.p_holm >= ALPHA:
        spread = f" ({row._reason})" if row._reason else ""  # zero spread
        row.reason = (
            f"the 95% interval {iv} clears {thr:g}{unit}, but the seeds do not agree: "
            f"Holm-adjusted p = {row.p_holm:.3g} >= {ALPHA}{spread}"
        )
    else:
        row.verdict = SUPPORTED
        row.reason = (
            f"the 95% interval {iv} is {side} {thr:g}{unit} and the Holm-adjusted "
            f"p = {row.p_holm:.3g} < {ALPHA}"
        )
    if row.verdict == INCONCLUSIVE and row.n_pairs and not math.isnan(row.effect):
        _power(row)


def _power(row: Row) -> None:
    """What the current seeds could detect (80% power) and what would resolve this one."""
    pw = stats.t_power(row._sd, row.n_pairs, row._distance)
    if math.isnan(pw.mde):
        row.reason += "; no spread to compute power from (fewer than 2 pairs or no variance)"
        return
    sign = 1 if row.direction == ">" else -1
    row.mde = row._show(row._thr + sign * pw.mde)
    row.seeds_needed = pw.seeds_needed
    u = "" if row.unit == "%" else " "
    row.reason += (
        f"; with {row.n_pairs} seeds an effect {row.direction} {row.mde:.2f}{u}{row.unit} "
        "would be detected at 80% power"
    )
    if math.isinf(pw.seeds_needed):
        row.reason += "; the observed effect is on the wrong side, no number of seeds helps"
    elif not math.isnan(pw.seeds_needed):
        row.reason += f"; about {int(pw.seeds_needed)} seeds would resolve the observed one"


def adjust_and_judge(rows: list[Row]) -> None:
    """Holm within each claim's family (its rows that have a p-value), then verdicts."""
    for number in {r.claim for r in rows}:
        family = [r for r in rows if r.claim == number]
        for r, p in zip(family, stats.holm([r.p for r in family])):
            r.p_holm = float(p)
        for r in family:
            judge(r)


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
