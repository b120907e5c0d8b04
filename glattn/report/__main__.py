"""`python -m glattn.report EXPERIMENT [--tracking-uri URI] [--metric M] [--out DIR]
[--where KEY=VALUE] [--include-debug]`, `python -m glattn.report claims [EXPERIMENT]` (the six
success criteria, glattn.report.claims) and `python -m glattn.report estimate ...` (GPU-hours,
glattn.report.estimate)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from glattn.report import runs, tables

SUBCOMMANDS = """subcommands (the first argument):
  EXPERIMENT             the tables and figures of one MLflow experiment (table3_fusion, ...)
  paper                  every table from its table<N>_* stage experiment, plus the claims
  claims [EXPERIMENT]    the seed's six success criteria (claims.md/.tex/.csv, forest plot)
  estimate ...           GPU-hours of the paper's grid (python -m glattn.report estimate -h)

Every report reads one declared run set, written to runs_used.csv: one configuration (cell)
= the fingerprint params minus the seed; debug-preset runs are left out unless
--include-debug; --where KEY=VALUE (repeatable) keeps the runs whose param or tag matches."""


def add_selection_args(p: argparse.ArgumentParser) -> None:
    """--where and --include-debug: which runs a report reads (glattn.report.selection)."""
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


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m glattn.report",
        description="Write the paper's tables (Markdown, LaTeX, CSV) and figures (PNG, PDF) "
        "from the FINISHED job runs of one MLflow experiment.",
        epilog=SUBCOMMANDS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "experiment", help="MLflow experiment name (table3_fusion, paper), or claims / estimate"
    )
    p.add_argument(
        "--tracking-uri",
        default=None,
        help="default: $MLFLOW_TRACKING_URI, else sqlite:///<abs cwd>/outputs/mlflow.db "
        "(conf/tracking's default store)",
    )
    p.add_argument("--metric", default="balanced_acc", choices=sorted(tables.METRICS))
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="output directory (default outputs/reports/EXPERIMENT)",
    )
    p.add_argument(
        "--tables",
        default=None,
        help="comma-separated table numbers (default: by experiment name: "
        "tableN_* -> N, paper -> 1-6, else every table whose data exist)",
    )
    p.add_argument("--no-figures", action="store_true", help="tables only")
    p.add_argument("--no-gradcam", action="store_true", help="skip the Grad-CAM grid")
    p.add_argument(
        "--no-log", action="store_true", help="do not log the report to the parent sweep run"
    )
    add_selection_args(p)
    return p.parse_args(argv)


def parse_tables(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        numbers = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        numbers = []
    if not numbers or any(n not in tables.BUILDERS for n in numbers):
        raise runs.ReportError(f"--tables {text!r}: expected comma-separated numbers 1-6")
    return numbers


def parse_claims_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m glattn.report claims",
        description="Check the seed's six success criteria from the FINISHED job runs: "
        "claims.md, claims.tex, claims.csv and figures/claims_forest.{png,pdf}.",
    )
    p.add_argument(
        "experiment",
        nargs="?",
        default="paper",
        help="MLflow experiment; 'paper' (default) reads each criterion from its "
        "table<N>_* stage experiment",
    )
    p.add_argument("--tracking-uri", default=None, help="as for the tables")
    p.add_argument("--metric", default="balanced_acc", choices=["balanced_acc", "acc"])
    p.add_argument("--out", type=Path, default=None, help="default outputs/reports/EXPERIMENT")
    p.add_argument(
        "--resamples", type=int, default=2000, help="bootstrap resamples (default 2000)"
    )
    p.add_argument("--bootstrap-seed", type=int, default=0, help="bootstrap seed (default 0)")
    p.add_argument("--no-figures", action="store_true", help="no forest plot")
    p.add_argument(
        "--no-log", action="store_true", help="do not log the claims to the parent sweep run"
    )
    add_selection_args(p)
    return p.parse_args(argv)


def claims_main(argv=None) -> int:
    args = parse_claims_args(argv)
    from glattn.report.claims_report import make_claims

    try:
        claims = make_claims(
            args.experiment,
            uri=args.tracking_uri,
            metric=args.metric,
            out_dir=args.out,
            n_resamples=args.resamples,
            seed=args.bootstrap_seed,
            make_figures=not args.no_figures,
            log_artifacts=not args.no_log,
            select={"where": tuple(args.where), "include_debug": args.include_debug},
        )
    except runs.ReportError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for n in range(1, 7):
        print(f"criterion {n}: {claims.verdict(n)}")
    print(f"wrote {len(claims.files)} files: {', '.join(str(f) for f in claims.files)}")
    for note in claims.notes:
        print(f"note: {note}")
    return 0


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    # MLflow's per-download progress bars (hundreds of small CSVs) would bury the report
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] == "claims":
        return claims_main(argv[1:])
    if argv and argv[0] == "estimate":
        from glattn.report import estimate

        return estimate.main(argv[1:])
    args = parse_args(argv)
    from glattn.report.report import make_report

    try:
        report = make_report(
            args.experiment,
            uri=args.tracking_uri,
            metric=args.metric,
            out_dir=args.out,
            which=parse_tables(args.tables),
            make_figures=not args.no_figures,
            gradcam=not args.no_gradcam,
            log_artifacts=not args.no_log,
            where=args.where,
            include_debug=args.include_debug,
        )
    except runs.ReportError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for t in report.tables.values():
        if t is not None:
            print(t.to_markdown())
    print(f"wrote {len(report.files)} files to {report.out_dir}")
    for note in report.notes:
        print(f"note: {note}")
    if report.parent_run_id:
        print(f"logged as artifacts 'report/' of parent sweep run {report.parent_run_id}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
