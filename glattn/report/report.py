"""One report: runs -> tables (Markdown, LaTeX, CSV) + figures -> outputs/reports/EXPERIMENT/,
logged as artifacts of the experiment's newest parent sweep run. `paper` adds the claims
section (claims.py: the six success criteria, claims.md/.tex/.csv + a forest plot)."""

from __future__ import annotations

import logging
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from glattn.report import artifacts, claims_report, figures, grid, runs, tables
from glattn.report import claims as claims_mod
from glattn.report.table_format import latex_escape

log = logging.getLogger(__name__)


@dataclass
class Report:
    out_dir: Path
    tables: dict = field(default_factory=dict)  # {number: Table | None}
    files: list = field(default_factory=list)
    notes: list = field(default_factory=list)  # what was skipped, and why
    parent_run_id: str | None = None
    claims: object = None  # claims.Claims (paper mode)


def make_report(
    experiment: str,
    uri: str | None = None,
    metric: str = "balanced_acc",
    out_dir: Path | None = None,
    which: list[int] | None = None,
    make_figures: bool = True,
    gradcam: bool = True,
    log_artifacts: bool = True,
    claims: bool | None = None,
    n_resamples: int = 2000,
) -> Report:
    """Write the tables (and figures) of `experiment`; see README.md "Report".

    `paper` reads each table from its own stage experiment (`table<N>_*`, as
    experiments/paper.yaml runs them); any other name reads that one experiment.
    `claims` (default: only for `paper`) adds the six success criteria (claims.py).
    """
    if metric not in tables.METRICS:
        raise runs.ReportError(f"--metric {metric!r}: expected one of {sorted(tables.METRICS)}")
    uri = uri or runs.default_tracking_uri()
    out_dir = Path(out_dir or Path("outputs") / "reports" / experiment)
    report = Report(out_dir)
    which = which or tables.tables_for(experiment)
    if experiment == "paper":
        claims_mod.require_store(uri)
        sources = stage_experiments(uri, which or sorted(tables.BUILDERS), report.notes)
        if not sources:
            raise runs.ReportError(f"no table<N>_* experiments at {runs.mask(uri)} for 'paper'")
    else:
        sources = {n: experiment for n in (which or sorted(tables.BUILDERS))}
    frames = {exp: runs.load_runs(uri, exp) for exp in dict.fromkeys(sources.values())}
    tmp = tempfile.TemporaryDirectory()  # training_log.csv downloads for the history fallback
    history = claims_mod.history_with_fallback(uri, Path(tmp.name))

    for n, exp in sources.items():
        ctx = tables.Context(metric, grid.expected_levels(exp), history)
        report.tables[n] = tables.BUILDERS[n](frames[exp], ctx)
        if report.tables[n] is None:
            report.notes.append(f"Table {n}: no runs with the data it needs in {exp!r}")
    built = {n: t for n, t in report.tables.items() if t is not None}
    if which and not built:
        raise runs.ReportError(
            f"experiment {experiment!r} has no runs for Table(s) {which}: "
            + "; ".join(report.notes)
        )
    for t in built.values():
        report.files += t.write(out_dir)
    if claims if claims is not None else experiment == "paper":
        report.claims = claims_mod.evaluate(
            uri, experiment, _claims_metric(metric, report), n_resamples, frames=frames
        )
        report.files += claims_report.write(report.claims, experiment, out_dir, make_figures)
        report.notes += report.claims.notes
    report.files += _combined(experiment, built, out_dir, report.claims)

    if make_figures:
        for exp, frame in frames.items():
            fig_dir = out_dir / "figures" / (exp if len(frames) > 1 or exp != experiment else "")
            report.files += figures.training_curves(frame, history, metric, fig_dir, report.notes)
            report.files += figures.per_class_recall(frame, fig_dir, report.notes)
            report.files += confusion_figures(uri, frame, metric, fig_dir, report.notes)
            if gradcam and frame["fusion"].nunique() > 1:
                from glattn.report import gradcam_grid

                report.files += gradcam_grid.fusion_grid(uri, frame, metric, fig_dir, report.notes)

    total = sum(len(f) for f in frames.values())
    notes_path = out_dir / "NOTES.md"
    notes_path.write_text(
        f"# Report notes: {experiment}\n\nTracking URI: {runs.mask(uri)}\n"
        f"Experiments: {', '.join(frames)}; {total} FINISHED job runs\n\n"
        + "".join(f"- {n}\n" for n in report.notes)
    )
    report.files.append(notes_path)
    tmp.cleanup()

    if log_artifacts:
        try:
            sweeps = runs.sweep_runs(uri, experiment)
        except runs.ReportError:  # `paper` need not exist as an experiment itself
            sweeps = None
        if sweeps is not None and not sweeps.empty:
            report.parent_run_id = str(sweeps.iloc[0]["run_id"])
            artifacts.log_report(uri, report.parent_run_id, out_dir)
        else:
            report.notes.append(
                f"no parent sweep run (tag glattn.role=sweep) in "
                f"{experiment!r}: the report was not logged"
            )
    return report


def stage_experiments(uri: str, numbers: list[int], notes: list) -> dict[int, str]:
    """{table number: experiment name} of the `table<N>_*` experiments in the store."""
    from mlflow.tracking import MlflowClient

    names = sorted(e.name for e in MlflowClient(uri).search_experiments())
    out = {}
    for n in numbers:
        hits = [x for x in names if tables.tables_for(x) == [n]]
        if hits:
            out[n] = hits[0]
            if len(hits) > 1:
                notes.append(f"Table {n}: several experiments {hits}; used {hits[0]!r}")
        else:
            notes.append(f"Table {n}: no experiment named table{n}_* in the store")
    return out


def _claims_metric(metric: str, report: Report) -> str:
    if metric in claims_mod.METRICS:
        return metric
    report.notes.append(
        f"claims: {metric} cannot be recomputed per image; the claims use balanced_acc"
    )
    return "balanced_acc"


def _combined(experiment: str, built: dict, out_dir: Path, claims=None) -> list[Path]:
    """report.md (all tables, then the claims) and report.tex (a compilable standalone
    document)."""
    if not built:
        return []
    md = out_dir / "report.md"
    md.write_text(
        f"# {experiment}\n\n"
        + "\n".join(t.to_markdown() for t in built.values())
        + ("\n" + claims_report.to_markdown(claims, experiment) if claims else "")
    )
    tex = out_dir / "report.tex"
    tex.write_text(
        "\\documentclass{article}\n\\usepackage[T1]{fontenc}\n\\usepackage{booktabs}\n"
        "\\usepackage[margin=1.5cm,landscape]{geometry}\n\\begin{document}\n"
        f"\\section*{{{latex_escape(experiment)}}}\n"
        + "\n".join(t.to_latex() for t in built.values())
        + ("\n" + claims_report.to_latex(claims, experiment) if claims else "")
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
                seeds = f"{n} seed{'s' if n != 1 else ''} summed"
                title = f"{tables.dataset_label(ds)}: {label} ({seeds})"
                paths += figures.plot_confusion(m, names, title, fig_dir, f"confusion_{ds}")
            elif png is not None:
                fig_dir.mkdir(parents=True, exist_ok=True)
                dst = fig_dir / f"confusion_{ds}.png"
                shutil.copyfile(png, dst)
                paths.append(dst)
                notes.append(
                    f"confusion matrix ({ds}, {label}): copied one seed's logged "
                    "image (no numeric confusion-matrix artifact to sum)"
                )
            else:
                notes.append(
                    f"confusion matrix ({ds}, best: {label}): its runs logged no "
                    "confusion-matrix artifact"
                )
    return paths
