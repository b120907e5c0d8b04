"""One report: runs -> tables (Markdown, LaTeX, CSV) + figures -> outputs/reports/EXPERIMENT/,
logged as artifacts of the experiment's newest parent sweep run."""

from __future__ import annotations

import logging
import shutil
import tempfile
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from glattn.report import artifacts, figures, grid, runs, tables
from glattn.report.table_format import latex_escape

log = logging.getLogger(__name__)


@dataclass
class Report:
    out_dir: Path
    tables: dict = field(default_factory=dict)  # {number: Table | None}
    files: list = field(default_factory=list)
    notes: list = field(default_factory=list)  # what was skipped, and why
    parent_run_id: str | None = None


def make_report(
    experiment: str,
    uri: str | None = None,
    metric: str = "balanced_acc",
    out_dir: Path | None = None,
    which: list[int] | None = None,
    make_figures: bool = True,
    gradcam: bool = True,
    log_artifacts: bool = True,
) -> Report:
    """Write the tables (and figures) of `experiment`; see README.md "Report"."""
    if metric not in tables.METRICS:
        raise runs.ReportError(f"--metric {metric!r}: expected one of {sorted(tables.METRICS)}")
    uri = uri or runs.default_tracking_uri()
    frame = runs.load_runs(uri, experiment)  # fails early on a bad experiment/URI
    out_dir = Path(out_dir or Path("outputs") / "reports" / experiment)
    report = Report(out_dir)
    which = which or tables.tables_for(experiment)
    history = partial(runs.metric_history, uri)
    ctx = tables.Context(metric, grid.expected_levels(experiment), history)

    report.tables = tables.build_tables(frame, ctx, which)
    built = {n: t for n, t in report.tables.items() if t is not None}
    for n, t in report.tables.items():
        if t is None:
            report.notes.append(f"Table {n}: no runs with the data it needs in {experiment!r}")
    if which and not built:
        raise runs.ReportError(
            f"experiment {experiment!r} has no runs for Table(s) {which}: " + "; ".join(report.notes)
        )
    for t in built.values():
        report.files += t.write(out_dir)
    report.files += _combined(experiment, built, out_dir)

    if make_figures:
        fig_dir = out_dir / "figures"
        report.files += figures.training_curves(frame, history, metric, fig_dir, report.notes)
        report.files += figures.per_class_recall(frame, fig_dir, report.notes)
        report.files += confusion_figures(uri, frame, metric, fig_dir, report.notes)
        if gradcam:
            from glattn.report import gradcam_grid

            report.files += gradcam_grid.fusion_grid(uri, frame, metric, fig_dir, report.notes)

    notes_path = out_dir / "NOTES.md"
    notes_path.write_text(
        f"# Report notes: {experiment}\n\nTracking URI: {runs.mask(uri)}\n"
        f"Runs: {len(frame)} FINISHED job runs\n\n" + "".join(f"- {n}\n" for n in report.notes)
    )
    report.files.append(notes_path)

    sweeps = runs.sweep_runs(uri, experiment)
    if log_artifacts and not sweeps.empty:
        report.parent_run_id = str(sweeps.iloc[0]["run_id"])
        artifacts.log_report(uri, report.parent_run_id, out_dir)
    elif log_artifacts:
        report.notes.append(f"no parent sweep run (tag glattn.role=sweep) in {experiment!r}: "
                            "the report was not logged to MLflow")  # fmt: skip
    return report


def _combined(experiment: str, built: dict, out_dir: Path) -> list[Path]:
    """report.md (all tables) and report.tex (a compilable standalone document)."""
    if not built:
        return []
    md = out_dir / "report.md"
    md.write_text(f"# {experiment}\n\n" + "\n".join(t.to_markdown() for t in built.values()))
    tex = out_dir / "report.tex"
    tex.write_text(
        "\\documentclass{article}\n\\usepackage[T1]{fontenc}\n\\usepackage{booktabs}\n"
        "\\usepackage[margin=1.5cm,landscape]{geometry}\n\\begin{document}\n"
        f"\\section*{{{latex_escape(experiment)}}}\n"
        + "\n".join(t.to_latex() for t in built.values())
        + "\\end{document}\n"
    )
    return [md, tex]


def confusion_figures(uri, frame, metric, fig_dir: Path, notes: list) -> list[Path]:
    """Confusion matrix of the best configuration per training data set (summed over its
    seeds' confusion-matrix artifacts; the image artifact is copied when no numbers exist)."""
    paths = []
    train = tables.trained(frame)
    for ds in tables.ordered("dataset", train["dataset"].dropna().unique()):
        label, best = figures.best_strategy(frame, metric, ds)
        if label is None:
            notes.append(f"confusion matrix ({ds}): no run with a {metric} score")
            continue
        with tempfile.TemporaryDirectory() as tmp:
            m, names, n, png = artifacts.confusion_sum(uri, list(best["run_id"]), Path(tmp))
            if m is not None:
                names = names or list(figures.CLASS_ORDER[: m.shape[0]])
                title = f"{tables.dataset_label(ds)}: {label} (sum of {n} seeds)"
                paths += figures.plot_confusion(m, names, title, fig_dir, f"confusion_{ds}")
            elif png is not None:
                fig_dir.mkdir(parents=True, exist_ok=True)
                dst = fig_dir / f"confusion_{ds}.png"
                shutil.copyfile(png, dst)
                paths.append(dst)
                notes.append(f"confusion matrix ({ds}, {label}): copied one seed's logged "
                             "image (no numeric confusion-matrix artifact to sum)")  # fmt: skip
            else:
                notes.append(f"confusion matrix ({ds}, best: {label}): its runs logged no "
                             "confusion-matrix artifact")  # fmt: skip
    return paths
