"""One report: the declared tables (Markdown, LaTeX, CSV), figures, report.md/.tex, runs_used.csv
and NOTES.md under outputs/reports/EXPERIMENT/, all from one run set, logged as artifacts of the
experiment's newest parent sweep run; `paper` adds the claims (glattn.report.claims)."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from glattn.report import (
    claims_report,
    declared,
    figures,
    predictions,
    provenance,
    runs,
    selection,
)
from glattn.report.cells import METRICS, Context
from glattn.report.claims import METRICS as CLAIM_METRICS
from glattn.report.claims import check_claims
from glattn.report.frames import dataset_label
from glattn.report.gradcam_grid import fusion_grid
from glattn.report.predictions import RunFiles
from glattn.report.table_format import latex_document, latex_escape
from glattn.tracking import uris


@dataclass
class Report:
    out_dir: Path
    tables: dict = field(default_factory=dict)  # {number: Table | None}
    files: list = field(default_factory=list)
    notes: list = field(default_factory=list)  # what was skipped, and why
    parent_run_id: str | None = None
    claims: object = None  # claims.Claims (paper mode)
    frames: dict = field(default_factory=dict)  # {experiment: the run set read}
    catalog: declared.Catalog | None = None  # the experiment files' report declarations


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
    where=(),
    include_debug: bool = False,
    experiments_dirs=(),
) -> Report:
    """Write the tables, figures and (`claims`, default: stages files only) claims of
    `experiment` from one run set (docs/report.md); ``report:`` blocks: `experiments_dirs`, then
    the shipped experiments/, all checked before any work."""
    catalog = _checked_catalog(experiments_dirs, metric, which)
    uri = uri or uris.default_tracking_uri()
    report = Report(Path(out_dir or Path("outputs") / "reports" / experiment), catalog=catalog)
    which = which or catalog.tables_for(experiment)
    numbers = which or sorted(catalog.by_number())
    sources = runs.table_sources(uri, experiment, numbers, report.notes, catalog)
    select = {"where": tuple(where or ()), "include_debug": include_debug}
    report.frames = {
        exp: runs.load_runs(uri, exp, notes=report.notes, **select)
        for exp in dict.fromkeys(sources.values())
    }
    report.notes += provenance.notes(report.frames)  # reused runs, cells made by other code
    with tempfile.TemporaryDirectory() as tmp:  # training_log.csv downloads (history)
        files = RunFiles(uri, Path(tmp))
        built = _write_tables(report, experiment, sources, metric, files.history, which)
        if claims if claims is not None else experiment in catalog.stages:
            if metric not in CLAIM_METRICS:
                report.notes.append(
                    f"claims: {metric} cannot be recomputed per image; the claims use balanced_acc"
                )
            kwargs = {"frames": report.frames, "catalog": catalog, **select}
            claims_metric = metric if metric in CLAIM_METRICS else "balanced_acc"
            report.claims = check_claims(uri, experiment, claims_metric, n_resamples, **kwargs)
            report.files += claims_report.write(
                report.claims, experiment, report.out_dir, make_figures
            )
            report.notes += report.claims.notes
        report.files += _combined(experiment, built, report.out_dir, report.claims)
        if make_figures:
            _write_figures(report, experiment, uri, metric, files, gradcam)
    if log_artifacts:  # found before NOTES.md is written: it says where the report went
        report.parent_run_id, note = runs.home_sweep(uri, experiment, report.frames, "report")
        report.notes.append(note)
    report.files += _write_run_set(report, experiment, uri)
    if report.parent_run_id:
        runs.client_for(uri).log_artifacts(report.parent_run_id, str(report.out_dir), "report")
    return report


def _checked_catalog(experiments_dirs, metric: str, which) -> declared.Catalog:
    """The declared tables after the checks needing no run: ``report:`` blocks, metric, tables."""
    catalog = declared.load(experiments_dirs)
    if metric not in METRICS:
        raise runs.ReportError(f"--metric {metric!r}: expected one of {sorted(METRICS)}")
    unknown = sorted(set(which or ()) - set(catalog.by_number()))
    if unknown:
        raise runs.ReportError(
            f"--tables {','.join(map(str, unknown))!r}: no experiment file declares it (declared: "
            f"{', '.join(map(str, sorted(catalog.by_number())))})"
        )
    return catalog


def _write_tables(report, experiment, sources, metric, history, which) -> dict:
    """Build and write each table of `sources`; returns those built ({number: Table})."""
    for n, exp in sources.items():
        ctx = Context(metric, report.catalog.expected(exp), history)
        report.tables[n] = report.catalog.by_number()[n].build(report.frames[exp], ctx)
        if report.tables[n] is None:
            where = " or ".join(map(repr, runs.source_experiments({exp: report.frames[exp]})))
            report.notes.append(f"Table {n}: no runs with the data it needs in {where}")
    built = {n: t for n, t in report.tables.items() if t is not None}
    if which and not built:
        raise runs.ReportError(
            f"experiment {experiment!r} has no runs for Table(s) {which}: "
            + "; ".join(report.notes)
        )
    for t in built.values():
        report.files += t.write(report.out_dir)
    return built


def _write_figures(report, experiment, uri, metric, files: RunFiles, gradcam) -> None:
    for exp, frame in report.frames.items():
        sub = exp if len(report.frames) > 1 or exp != experiment else ""
        fig_dir, notes = report.out_dir / "figures" / sub, report.notes
        report.files += figures.training_curves(frame, files.history, metric, fig_dir, notes)
        report.files += figures.per_class_recall(frame, fig_dir, notes)
        report.files += confusion_figures(files, frame, metric, fig_dir, notes)
        if gradcam and frame["fusion"].nunique() > 1:
            report.files += fusion_grid(uri, frame, metric, fig_dir, notes)


def _write_run_set(report: Report, experiment: str, uri: str) -> list[Path]:
    """runs_used.csv (every run read) and NOTES.md (where the runs came from, the notes)."""
    report.out_dir.mkdir(parents=True, exist_ok=True)
    used, used_path = selection.runs_used(report.frames, report.out_dir)
    counts = used["experiment"].value_counts(sort=False)
    sources = ", ".join(f"{name} ({n} runs)" for name, n in counts.items())
    notes_path = report.out_dir / "NOTES.md"
    notes_path.write_text(
        f"# Report notes: {experiment}\n\nTracking URI: {uris.mask_uri(uri)}\n"
        f"Experiments the runs come from: {sources}; {len(used)} FINISHED job runs in "
        f"{used['cell'].nunique()} configurations (runs_used.csv)\n\n"
        + "".join(f"- {n}\n" for n in report.notes)
    )
    return [used_path, notes_path]


def _combined(experiment: str, built: dict, out_dir: Path, claims=None) -> list[Path]:
    """report.md (all tables, then the claims) and report.tex (a standalone document)."""
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
        latex_document(
            f"\\section*{{{latex_escape(experiment)}}}\n"
            + "\n".join(t.to_latex() for t in built.values())
            + ("\n" + claims_report.to_latex(claims, experiment) if claims else "")
        )
    )
    return [md, tex]


def confusion_figures(files: RunFiles, frame, metric, fig_dir: Path, notes: list) -> list[Path]:
    """Confusion matrix (in % of each true class) of the best configuration per training data
    set, summed over its seeds' test predictions."""
    from glattn.metrics import confusion_figure  # scikit-learn: only when there is one to draw

    paths = []
    for ds, runs_of_ds in figures.by_dataset(frame):
        label, best = figures.best_strategy(runs_of_ds, metric)
        if label is None:
            notes.append(f"confusion matrix ({ds}): no run with a {metric} score")
            continue
        m, names, n = predictions.confusion_sum(files, best["run_id"])
        if m is None:
            notes.append(
                f"confusion matrix ({ds}, best: {label}): its runs logged no test predictions "
                "(test_probabilities.csv and split.csv)"
            )
            continue
        title = f"{dataset_label(ds)}: {label} ({n} seed{'s' if n != 1 else ''} summed)"
        figure = confusion_figure(m, names, title, percent=True)
        paths += figures.save(figure, fig_dir, f"confusion_{ds}")
    return paths
