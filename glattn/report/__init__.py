"""MLflow runs -> the paper's Tables 1-6 (Markdown, LaTeX, CSV), statistics over seeds and
figures. Entry point: `glattn report EXPERIMENT` (docs/report.md)."""

from glattn.report.runs import ReportError, load_runs
from glattn.report.stats import compare, convergence_epoch, summarize

__all__ = ["ReportError", "load_runs", "summarize", "compare", "convergence_epoch"]
