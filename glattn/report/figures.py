"""The report's figures (PNG and PDF): training curves, per-class recall and the claims'
forest plot; one legend below the axes, footnotes for what is clipped, and % throughout."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from glattn.data.classes import CLASS_NAMES  # noqa: E402
from glattn.report import stats  # noqa: E402
from glattn.report.cells import METRICS, score  # noqa: E402
from glattn.report.frames import dataset_label, groups, ordered, trained, varying  # noqa: E402

#: one font size for every legend and footnote: readable at the page width of a paper
LEGEND_FONTSIZE = 9
MARK_NOTES = {
    "0": "0: a recall of zero (the bar has no height)",
    "n/a": "n/a: no run of that strategy logged this class's recall",
}
VERDICT_COLOURS = {"supported": "tab:green", "not supported": "tab:red", "inconclusive": "0.55"}


def save(fig, out_dir: Path, stem: str) -> list[Path]:
    """Write `stem`.png and `stem`.pdf (grown to hold the legend) and close the figure."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{stem}.png", out_dir / f"{stem}.pdf"]
    fig.tight_layout()
    for p in paths:
        fig.savefig(p, dpi=150, bbox_inches="tight", pad_inches=0.1)
    plt.close(fig)
    return paths


def shared_legend(fig, axes, footnotes=(), ncol: int | None = None) -> None:
    """One legend for the whole figure below its axes, and the footnotes below it."""
    fig.tight_layout()  # the axes' final place, so that nothing below them moves later
    seen = {}
    for ax in np.ravel(axes):
        for handle, label in zip(*ax.get_legend_handles_labels()):
            seen.setdefault(label, handle)
    bottom = 0.0
    if seen:
        legend = fig.legend(
            list(seen.values()),
            list(seen),
            loc="upper center",
            bbox_to_anchor=(0.5, 0.0),
            ncol=ncol or min(len(seen), 4),
            fontsize=LEGEND_FONTSIZE,
            frameon=False,
        )
        fig.canvas.draw()
        bottom = legend.get_window_extent().transformed(fig.transFigure.inverted()).y0
    if footnotes:
        text = "\n".join(footnotes)
        kw = {"ha": "left", "va": "top", "fontsize": LEGEND_FONTSIZE, "color": "0.25"}
        fig.text(0.01, bottom - 0.01, text, **kw)


def epoch_axis(ax) -> None:
    """Whole epochs on the x axis, even for a one-epoch run."""
    lo, hi = ax.dataLim.intervalx
    if np.isfinite([lo, hi]).all() and hi - lo < 1:
        ax.set_xlim(lo - 0.5, hi + 0.5)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))


def by_dataset(runs: pd.DataFrame):
    """Yield (data set, its training runs) per training data set, in the tables' order."""
    frame = trained(runs)
    for ds in ordered("dataset", frame["dataset"].dropna().unique()):
        yield ds, frame[frame["dataset"] == ds]


def strategies(frame: pd.DataFrame):
    """Yield (label, runs) per strategy: a combination of the varying row keys (a variant
    is a strategy of its own), in the tables' order."""
    keys = varying(frame, exclude={"dataset"}) or ["attention"]
    for levels, sub in groups(frame, keys, full=False):
        yield "/".join(str(v) for v in levels), sub


def mean_std_curve(histories: list[dict[int, float]]) -> pd.DataFrame:
    """Per-epoch mean, sample std (NaN when one run) and n over several runs' histories."""
    wide = pd.DataFrame([pd.Series(h, dtype=float) for h in histories if h])
    if wide.empty:
        return pd.DataFrame(columns=["mean", "std", "n"])
    wide = wide.sort_index(axis=1)
    return pd.DataFrame({"mean": wide.mean(), "std": wide.std(ddof=1), "n": wide.count()})


def training_curves(
    runs: pd.DataFrame, history: Callable, metric: str, out_dir: Path, notes: list[str]
) -> list[Path]:
    """Per data set: train/loss and val/<metric> (%) per strategy, mean ± std over seeds."""
    paths = []
    keys = ("train/loss", f"val/{metric}")
    for ds, sub in by_dataset(runs):
        hist = {k: history(list(sub["run_id"]), k) for k in keys}
        if not any(h for k in keys for h in hist[k].values()):
            notes.append(f"training curves ({ds}): the runs logged no per-epoch {keys}")
            continue
        fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
        clipped = []
        for label, s in strategies(sub):
            for ax, k, scale in zip(axes, keys, (1.0, 100.0)):
                curve = mean_std_curve([hist[k].get(r, {}) for r in s["run_id"]])
                if curve.empty:
                    continue
                x = curve.index.to_numpy()
                m, sd = curve["mean"] * scale, curve["std"].fillna(0) * scale
                marker = "o" if len(x) < 3 else None  # one epoch is a point, not a line
                (line,) = ax.plot(x, m, marker=marker, label=f"{label} (n={curve['n'].max()})")
                err = clipped_yerr(m, sd, *((0, 100) if scale == 100.0 else (-np.inf, np.inf)))
                clipped += [label] if (err < sd.to_numpy()).any() else []  # a % beyond 0-100
                ax.fill_between(x, m - err[0], m + err[1], color=line.get_color(), alpha=0.2)
        for ax in axes:
            epoch_axis(ax)
        axes[0].set(xlabel="epoch", ylabel="training loss")
        axes[1].set(xlabel="epoch", ylabel=f"validation {METRICS[metric]}")
        fig.suptitle(f"{dataset_label(ds)}: mean ± std over seeds")
        notes_below = [f"± std bands clipped to 0-100 %: {', '.join(clipped)}"] if clipped else []
        shared_legend(fig, axes, notes_below)
        paths += save(fig, out_dir, f"curves_{ds}")
    return paths


def recall_columns(frame: pd.DataFrame) -> tuple[str, list[str]]:
    """('test'|'val', classes) of the per-class recall metrics the runs logged."""
    for split in ("test", "val"):
        logged = frame.filter(regex=rf"^metrics\.{split}/recall_").dropna(axis=1, how="all")
        names = [c.split("/recall_", 1)[1] for c in logged]
        if names:
            known = [c for c in CLASS_NAMES if c in names]
            return split, known + sorted(set(names) - set(known))
    return "", []


def clipped_yerr(means, stds, low: float = 0.0, high: float = 100.0) -> np.ndarray:
    """(2, N) error bar lengths of mean ± std clipped to [low, high]; NaN std draws none."""
    means = np.asarray(means, dtype=float)
    stds = np.nan_to_num(np.asarray(stds, dtype=float), nan=0.0)
    return np.vstack([np.minimum(stds, means - low), np.minimum(stds, high - means)]).clip(0)


def mark_zero_and_missing(ax, xs, heights, width: float, colour) -> set[str]:
    """Mark a zero bar with a thick line and '0', a missing one with 'n/a'; the marks drawn."""
    heights = np.asarray(heights, dtype=float)
    for x, h in zip(xs, heights):
        if h == 0:
            ax.hlines(0, x - width / 2, x + width / 2, colors=colour, lw=4, clip_on=False)
            ax.text(x, 1, "0", ha="center", va="bottom", fontsize=LEGEND_FONTSIZE, color=colour)
        elif np.isnan(h):
            ax.text(x, 1, "n/a", ha="center", va="bottom", rotation=90, fontsize=8, color="0.4")
    return {m for m, hit in (("0", heights == 0), ("n/a", np.isnan(heights))) if hit.any()}


def per_class_recall(runs: pd.DataFrame, out_dir: Path, notes: list[str]) -> list[Path]:
    """Per data set: per-class recall (%, mean ± std over seeds) as bars per strategy."""
    paths = []
    for ds, sub in by_dataset(runs):
        split, classes = recall_columns(sub)
        if not classes:
            notes.append(
                f"per-class recall ({ds}): no test/recall_<class> or val/recall_<class> metrics"
            )
            continue
        bars_of = list(strategies(sub))
        width = 0.8 / max(1, len(bars_of))
        fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(classes) + 2), 3.8))
        x = np.arange(len(classes))
        clipped, marks = [], set()
        for i, (label, s) in enumerate(bars_of):
            summ = [stats.summarize(s[f"metrics.{split}/recall_{c}"].dropna()) for c in classes]
            means = np.array([100 * t.mean for t in summ])
            sds = np.nan_to_num([100 * t.std for t in summ])
            yerr = clipped_yerr(means, sds)
            xs = x + (i - (len(bars_of) - 1) / 2) * width
            n = max(t.n for t in summ)
            bars = ax.bar(xs, means, width, yerr=yerr, capsize=2, label=f"{label} (n={n})")
            marks |= mark_zero_and_missing(ax, xs, means, width, bars.patches[0].get_facecolor())
            cut = (yerr < sds).any(axis=0)  # mean ± std beyond 0-100
            clipped += [f"{c} ({label})" for c, hit in zip(classes, cut) if hit]
        ax.set_xticks(x, classes)
        ax.set(ylabel=f"{split} recall (%)", ylim=(0, 105))
        ax.set_title(f"{dataset_label(ds)}: per-class recall, mean ± std over seeds")
        notes_below = [MARK_NOTES[m] for m in sorted(marks)]
        if clipped:
            notes_below.append(f"error bars clipped to 0-100 %: {', '.join(clipped)}")
        shared_legend(fig, ax, notes_below)
        paths += save(fig, out_dir, f"recall_{ds}")
    return paths


def best_strategy(runs: pd.DataFrame, metric: str):
    """(label, runs) of the strategy with the highest mean score (test, else best val), the
    first in the tables' order on a tie; Nones when no run has a score."""
    scored = [(score(s, metric).mean(), label, s) for label, s in strategies(trained(runs))]
    best = max((x for x in scored if not math.isnan(x[0])), key=lambda x: x[0], default=None)
    return (best[1], best[2]) if best else (None, None)


def forest_plot(
    rows, metric: str, out_dir: Path, criteria: dict, stem: str = "claims_forest"
) -> list[Path]:
    """The claims' rows: a panel per criterion but the conjunction, each row's effect and
    95% interval coloured by verdict, the threshold dashed."""
    shown = [r for r in rows if not math.isnan(r.effect)]
    panels = [(n, [r for r in shown if r.claim == n]) for n, c in criteria.items() if c.build]
    panels = [(n, mine) for n, mine in panels if mine]
    if not panels:
        return []
    heights = [len(m) + 1.2 for _, m in panels]
    size = (8, 0.32 * sum(heights) + 0.8)
    fig, axes = plt.subplots(len(panels), 1, squeeze=False, figsize=size, height_ratios=heights)
    for ax, (n, mine) in zip(axes[:, 0], panels):
        crit = criteria[n]
        y = np.arange(len(mine))[::-1]
        for yi, r in zip(y, mine):
            colour = VERDICT_COLOURS.get(r.verdict, "black")
            xerr = np.nan_to_num([[r.effect - r.low], [r.high - r.effect]])  # no interval: 0
            ax.errorbar(r.effect, yi, xerr=xerr, fmt="o", color=colour, capsize=3, ms=4)
        ax.axvline(crit.threshold, color="black", ls="--", lw=1)
        ax.set_yticks(y, [f"{r.stratum}: {r.comparison}"[:60] for r in mine], fontsize=7)
        ax.set_ylim(-0.7, len(mine) - 0.3)
        ax.set_title(f"{n}: {crit.title(metric)} ({crit.bar()})", fontsize=8)
        ax.set_xlabel(f"effect ({crit.unit})", fontsize=7)
        ax.tick_params(axis="x", labelsize=7)
    for v, c in VERDICT_COLOURS.items():  # legend entries only: every verdict, seen or not
        axes[-1, 0].plot([], [], marker="o", ls="", color=c, label=v)
    shared_legend(fig, axes, ncol=3)
    return save(fig, out_dir, stem)
