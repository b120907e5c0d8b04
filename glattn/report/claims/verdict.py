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
)


def judge(row: Row) -> None:
    """Verdict and reason of a row whose Holm-adjusted p is set."""
    thr, lo, hi, d = row.threshold, row.low, row.high, row.direction
    u = "" if row.unit in ("%", "p") else " "
    unit = f"{u}{row.unit}"
    iv = f"[{lo:.2f}, {hi:.2f}]{unit}"
    beyond = (lo > thr) if d == ">" else (hi < thr)
    short = (hi <= thr) if d == ">" else (lo >= thr)
    side = "above" if d == ">" else "below"
    if row._deterministic:
        if math.isnan(row.effect):
            row.verdict, row.reason = INCONCLUSIVE, row._reason or "no value"
        elif (row.effect > thr) if d == ">" else (row.effect < thr):
            row.verdict = SUPPORTED
            row.reason = f"{row.effect:.2f}{unit} is {side} {thr:g}{unit}; {row.interval}"
        else:
            row.verdict = NOT_SUPPORTED
            row.reason = f"{row.effect:.2f}{unit} is not {side} {thr:g}{unit}; {row.interval}"
        return
    if row.n_pairs == 0 or math.isnan(row.effect):
        row.verdict, row.reason = INCONCLUSIVE, row._reason or "no paired runs"
        return
    if row.n_pairs < MIN_PAIRS:
        row.verdict = INCONCLUSIVE
        row.reason = (
            f"too few runs: {row.n_pairs} seed pair(s), the paired t-test needs at least "
            f"{MIN_PAIRS}"
        )
    elif short:
        row.verdict = NOT_SUPPORTED
        row.reason = f"the whole 95% interval {iv} is on the wrong side of {thr:g}{unit}"
    elif not beyond:
        row.verdict = INCONCLUSIVE
        row.reason = f"the 95% interval {iv} contains the threshold {thr:g}{unit}"
    elif math.isnan(row.p_holm):
        row.verdict = INCONCLUSIVE
        row.reason = f"the 95% interval {iv} clears {thr:g}{unit}, but {row._reason}"
    elif row.p_holm >= ALPHA:
        row.verdict = INCONCLUSIVE
        row.reason = (
            f"the 95% interval {iv} clears {thr:g}{unit}, but the seeds do not agree: "
            f"Holm-adjusted p = {row.p_holm:.3g} >= {ALPHA}"
        )
        if row._reason:  # zero spread
            row.reason += f" ({row._reason})"
    else:
        row.verdict = SUPPORTED
        row.reason = (
            f"the 95% interval {iv} is {side} {thr:g}{unit} and the Holm-adjusted "
            f"p = {row.p_holm:.3g} < {ALPHA}"
        )
    if row.verdict == INCONCLUSIVE:
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
    if not verdicts:
        return INCONCLUSIVE
    if NOT_SUPPORTED in verdicts:
        return NOT_SUPPORTED
    return SUPPORTED if all(v == SUPPORTED for v in verdicts) else INCONCLUSIVE


def headline(rows: list[Row], number: int) -> list[Row]:
    """The rows that decide a claim: its primary pooled rows, else its primary rows."""
    mine = [r for r in rows if r.claim == number and r.primary]
    pooled = [r for r in mine if r.pooled]
    return pooled or mine


def _span(numbers: list[int]) -> str:
    lo, hi = min(numbers), max(numbers)
    if list(numbers) == list(range(lo, hi + 1)) and hi > lo:
        return f"{lo}-{hi}"
    return ", ".join(map(str, numbers))


def claim6(rows: list[Row], crit: Criterion, numbers: list[int]) -> Row:
    """The conjunction `crit` of the criteria `numbers`: supported only when each deciding
    row is; its p is the largest of their Holm-adjusted p-values."""
    parts, ps = [], []
    for n in numbers:
        head = headline(rows, n)
        v = combine([r.verdict for r in head])
        parts.append((n, v))
        ps += [r.p_holm for r in head if not math.isnan(r.p_holm)]
    verdict = combine([v for _, v in parts])
    p = max(ps) if ps else math.nan
    listing = ", ".join(f"{n}: {v}" for n, v in parts)
    if verdict == SUPPORTED:
        why = f"criteria {_span(numbers)} are all supported after Holm's adjustment ({listing})"
    elif verdict == NOT_SUPPORTED:
        why = f"not every criterion holds ({listing})"
    else:
        why = f"not every criterion is decided ({listing})"
    return Row(
        crit.number,
        "all",
        f"criteria {_span(numbers)} together",
        test="intersection-union: the largest Holm-adjusted p of the deciding rows",
        p=p,
        p_holm=p,
        threshold=crit.threshold,
        direction="<",
        unit="p",
        verdict=verdict,
        reason=why,
        primary=True,
        pooled=True,
    )
