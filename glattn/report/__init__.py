"""MLflow runs -> the paper's Tables 1-6 (Markdown, LaTeX, CSV), statistics over seeds and
figures. Entry point: `glattn report EXPERIMENT` (docs/report.md)."""
