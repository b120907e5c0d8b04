"""How plan mode and the paper's stages print a duration, a compute count and a size."""

from __future__ import annotations


def fmt_seconds(seconds: float | None) -> str:
    """``42s``, ``12.5m``, ``3.1h``; ``?`` when unknown."""
    if seconds is None:
        return "?"
    if seconds < 90:
        return f"{seconds:.0f}s"
    if seconds < 5400:
        return f"{seconds / 60:.1f}m"
    return f"{seconds / 3600:.1f}h"


def fmt_pflop(pflop: float | None) -> str:
    """PFLOP with 3 significant digits (thousands separated); ``?`` when unknown."""
    if pflop is None:
        return "?"
    if pflop >= 1000:
        return f"{pflop:,.0f}"
    return f"{pflop:.3g}" if pflop >= 0.01 else f"{pflop:.1e}"


def fmt_bytes(n: float | None) -> str:
    """Decimal units (kB, MB, GB, TB), as disk sizes are sold; ``?`` when unknown."""
    if n is None:
        return "?"
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6)):
        if n >= size:
            return f"{n / size:.3g} {unit}" if n < 100 * size else f"{n / size:,.0f} {unit}"
    return f"{n / 1e3:.3g} kB" if n else "0 B"
