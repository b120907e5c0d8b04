"""The arguments of `glattn report EXPERIMENT` and `glattn claims [EXPERIMENT]` (subcommands of
glattn.cli) and what they run."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from contextlib import contextmanager
from pathlib import Path

from glattn.report import runs
from glattn.report.cells import METRICS
from glattn.tracking import uris

EPILOG = """EXPERIMENT is an MLflow experiment (table3_fusion, my_fusion, ...); `paper` reads every
table from its table<N>_* stage experiment, plus the claims. Related: glattn claims (the
claims the experiment files declare), glattn estimate (GPU-hours of the paper's grid).

Every report reads one declared run set, written to runs_used.csv: one configuration (cell)
is the fingerprint params minus the seed."""


def add_shared_args(p: argparse.ArgumentParser, what: str, metrics) -> None:
    """The arguments `glattn report` and `glattn claims` (`what`) share."""
    p.add_argument(
        "--tracking-uri",
        help="default: $MLFLOW_TRACKING_URI, else sqlite:///<abs cwd>/outputs/mlflow.db "
        "(conf/tracking's default store)",
    )
    p.add_argument("--metric", default="balanced_acc", choices=sorted(metrics))
    p.add_argument("--out", type=Path, default=None, help="default outputs/reports/EXPERIMENT")
    p.add_argument("--no-figures", action="store_true", help="no figures")
    p.add_argument(
        "--no-log", action="store_true", help=f"do not log the {what} to the parent sweep run"
    )
    p.add_argument(
        "--where",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help='keep runs whose param (or tags.<name>) equals VALUE, e.g. "dataset.image_size=224"'
        " (repeatable)",
    )
    p.add_argument(
        "--include-debug",
        action="store_true",
        help="also read debug=smoke|overfit|profile runs (and the <experiment>-debug experiment)",
    )
    p.add_argument(
        "--experiments-dir",
        action="append",
        default=[],
        type=Path,
        metavar="DIR",
        help="also read experiment files (their report: blocks) from DIR, before the shipped "
        "experiments/, e.g. my_conf/experiment of a hydra.searchpath folder (repeatable)",
    )


def table_numbers(text: str) -> list[int]:
    """--tables: comma-separated table numbers."""
    try:
        numbers = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        numbers = []
    if not numbers:
        raise argparse.ArgumentTypeError(f"{text!r}: expected comma-separated table numbers")
    return numbers


def configure_report(p: argparse.ArgumentParser) -> None:
    """`glattn report`'s arguments."""
    p.description = (
        "Write the paper's tables (Markdown, LaTeX, CSV) and figures (PNG, PDF) from the "
        "FINISHED job runs of one MLflow experiment, from what the runs logged."
    )
    p.epilog = EPILOG
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.add_argument("experiment", help="MLflow experiment name (table3_fusion, ..., or paper)")
    p.add_argument(
        "--tables",
        type=table_numbers,
        help="comma-separated table numbers (default: the table the experiment file "
        "declares, every table of paper's stages, else every declared table whose data exist)",
    )
    p.add_argument("--no-gradcam", action="store_true", help="skip the Grad-CAM grid")
    add_shared_args(p, "report", METRICS)
    p.set_defaults(run=run_report)


def configure_claims(p: argparse.ArgumentParser) -> None:
    """`glattn claims`'s arguments."""
    p.description = (
        "Check the claims the experiment files declare from the FINISHED job runs: claims.md, "
        "claims.tex, claims.csv and figures/claims_forest.{png,pdf}."
    )
    p.add_argument(
        "experiment",
        nargs="?",
        default="paper",
        help="MLflow experiment; 'paper' (default) reads each criterion from its "
        "table<N>_* stage experiment",
    )
    p.add_argument(
        "--resamples", type=int, default=2000, help="bootstrap resamples (default 2000)"
    )
    p.add_argument("--bootstrap-seed", type=int, default=0, help="bootstrap seed (default 0)")
    add_shared_args(p, "claims", ["balanced_acc", "acc"])
    p.set_defaults(run=run_claims)


@contextmanager
def own_lines_only():
    """The report's console: its own INFO lines and everyone's warnings, no download bars."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    quiet, own = logging.getLogger("glattn"), logging.getLogger("glattn.report")
    levels = quiet.level, own.level
    quiet.setLevel(logging.WARNING)
    own.setLevel(logging.INFO)
    try:
        yield
    finally:
        quiet.setLevel(levels[0])
        own.setLevel(levels[1])


def _made(make, args: argparse.Namespace, **kwargs):
    """`make`'s result from the shared arguments; None (the error printed) on a ReportError."""
    try:
        with own_lines_only():
            return make(
                args.experiment,
                uri=args.tracking_uri,
                metric=args.metric,
                out_dir=args.out,
                make_figures=not args.no_figures,
                log_artifacts=not args.no_log,
                experiments_dirs=args.experiments_dir,
                where=tuple(args.where),
                include_debug=args.include_debug,
                **kwargs,
            )
    except runs.ReportError as err:
        print(f"error: {err}", file=sys.stderr)
        return None


def run_claims(args: argparse.Namespace) -> int:
    from glattn.report.claims_report import make_claims

    claims = _made(make_claims, args, n_resamples=args.resamples, seed=args.bootstrap_seed)
    if claims is None:
        return 2
    for n in claims.criteria:
        print(f"criterion {n}: {claims.verdict(n)}")
    print(f"wrote {len(claims.files)} files: {', '.join(str(f) for f in claims.files)}")
    for note in claims.notes:
        print(f"note: {note}")
    return 0


def run_report(args: argparse.Namespace) -> int:
    from glattn.report.report import make_report

    report = _made(make_report, args, which=args.tables, gradcam=not args.no_gradcam)
    if report is None:
        return 2
    for t in report.tables.values():
        if t is not None:
            print(t.to_markdown())
    print(f"wrote {len(report.files)} files to {report.out_dir}")
    for note in report.notes:
        print(f"note: {note}")
    for experiment in runs.source_experiments(report.frames):
        print(f"MLflow UI, {experiment}: {_ui_hint(args, experiment)}")
    return 0


def _ui_hint(args, experiment: str) -> str:
    """The MLflow UI link of an experiment the report read (glattn.tracking.ui)."""
    from glattn.tracking import ui

    uri = args.tracking_uri or uris.default_tracking_uri()
    try:
        return ui.experiment_hint(uri, experiment)
    except Exception as err:  # noqa: BLE001 - a link must not fail a written report
        return f"{ui.ui_command(uri)} ({type(err).__name__}: no view written)"
