"""The claims report: claims.md, claims.tex, claims.csv and the forest plot of the rows that
glattn.report.claims checks, and `make_claims` (`glattn claims`), which also logs them to the
experiment's newest sweep run."""

from __future__ import annotations

import math
from pathlib import Path

from glattn.report import runs, selection
from glattn.report.cells import metric_name, p_text
from glattn.report.claims import Claims, check_claims, headline, span
from glattn.report.claims.rows import MIN_PAIRS, Row, join_notes
from glattn.report.table_format import DASH, Cell, Table, latex_document, latex_escape
from glattn.tracking import uris


def _effect(r: Row) -> str:
    if math.isnan(r.effect):
        return DASH
    if r._deterministic or math.isnan(r.low):
        return f"{r.effect:+.2f}"
    return f"{r.effect:+.2f} [{r.low:+.2f}, {r.high:+.2f}]"


def _cells(r: Row, deciding: bool) -> dict[str, Cell]:
    """A row's cells by column, its stratum marked when the row decides its criterion."""
    return {
        "Stratum": Cell(r.stratum + (" (deciding)" if deciding else "")),
        "Comparison (b − a)": Cell(r.comparison),
        "n a / b / pairs": Cell(f"{r.n_a} / {r.n_b} / {r.n_pairs}"),
        "Effect [95% CI]": Cell(_effect(r)),
        "Test": Cell(r.test),
        "p": Cell(p_text(r.p)),
        "Holm p": Cell(p_text(r.p_holm)),
        "McNemar p": Cell(p_text(r.mcnemar_p)),
        "Verdict": Cell(r.verdict, bold=True),
        "Reason": Cell(join_notes(r.reason, r.note)),
    }


COLUMNS = list(_cells(Row(0, "", ""), False))


def _intro(c: Claims) -> str:
    m = metric_name(c.metric)
    return (
        f"Metric: {m}, recomputed per image from each run's `test_probabilities.csv` and "
        f"`split.csv` (row argmax, a tied maximum counts as wrong). Thresholds in pp are "
        f"percentage points of {m}. Effects are b − a, averaged over seed pairs. 95% "
        "intervals: bootstrap crossed over seeds and test images — each resample draws the "
        "seed pairs with replacement and, independently, one resample of the test images "
        "shared by every seed and both arms, as the seeds share the test set "
        f"({c.n_resamples} resamples, numpy default_rng seeded by "
        f"--bootstrap-seed={c.seed} and the row's label), so the interval counts seed-to-seed "
        "and test-set variation without dividing the test set's share by the number of "
        "seeds. p: one-sided paired t-test over seeds against the threshold "
        "(`scipy.stats.ttest_rel(b, a + threshold, alternative=...)`; p = 1 when all paired "
        "differences are equal), Holm-adjusted within each criterion's rows "
        "(`statsmodels multipletests(method='holm')`). Supported: the interval clears the "
        "threshold and the Holm p < 0.05. McNemar: exact binomial test "
        "(`scipy.stats.binomtest`) on the images one arm gets right and the other wrong, "
        "summed over seed pairs (a second view; it tests no difference, not the threshold). "
        f"Inconclusive: fewer than {MIN_PAIRS} seed pairs, an interval containing the "
        "threshold, or a Holm p ≥ 0.05; then the reason gives the effect the current seeds "
        "could detect at 80% power (statsmodels TTestPower, from the observed spread) and "
        "the seeds needed to resolve the observed one. 'Deciding' rows decide the criterion "
        "(the pooled row when there is one)."
    )


def claim_tables(c: Claims) -> list[Table]:
    """The summary (one row per criterion, captioned with how every number is computed) and
    one table per criterion (its rows, the deciding ones marked)."""
    summary = Table("claims", "", _intro(c), ["#", "Criterion", "Threshold", "Source", "Verdict"])
    out = [summary]
    for n, crit in c.criteria.items():
        texts = [str(n), crit.title(c.metric), crit.bar(), c.sources.get(n, DASH)]
        summary.add_row([*map(Cell, texts), Cell(c.verdict(n), bold=True)])
        title = f"Criterion {n}: {crit.title(c.metric)}"
        table = Table(f"claims_criterion{n}", title, _description(c, n), COLUMNS, label_columns=2)
        head = headline(c.rows, n) if crit.build else []  # the conjunction decides nothing
        for r in (r for r in c.rows if r.claim == n):
            table.add_row(list(_cells(r, any(r is h for h in head)).values()))
        out.append(table)
    return out


def to_markdown(c: Claims, experiment: str) -> str:
    """The claims section: its heading, the tables, the notes and how to reproduce a row."""
    notes = "\nNotes:\n\n" + "".join(f"- {x}\n" for x in c.notes) if c.notes else ""
    tables = "\n".join(t.to_markdown() for t in claim_tables(c))
    return f"## Claims: {experiment}\n\n{tables}{notes}\n{REPRODUCE.format(R=c.n_resamples)}\n"


def to_latex(c: Claims, experiment: str) -> str:
    """The claims section in LaTeX: the same tables, notes and reproduction recipe."""
    items = "".join(f"\\item {latex_escape(x)}\n" for x in c.notes)
    notes = f"\nNotes:\n\\begin{{itemize}}\n{items}\\end{{itemize}}\n" if items else ""
    tables = "\n".join(t.to_latex() for t in claim_tables(c))
    reproduce = latex_escape(REPRODUCE.format(R=c.n_resamples))
    return f"\\section*{{Claims: {latex_escape(experiment)}}}\n{tables}{notes}\n{reproduce}\n"


CONJUNCTION = (
    "The conjunction of criteria {span} after Holm's adjustment: supported only when each of "
    "their deciding rows is supported; its p is the largest of their Holm-adjusted p-values "
    "(an intersection-union test)."
)


def _description(c: Claims, n: int) -> str:
    build = c.criteria[n].build
    if build is None:
        return CONJUNCTION.format(span=span([m for m in c.criteria if m != n]))
    return " ".join((build.__doc__ or "").strip().split("\n\n")[0].split())


REPRODUCE = (
    "To reproduce a row from the runs' CSVs (claims.csv lists each row's run ids in "
    "`runs_a` / `runs_b`, in seed order): read each run's `test_probabilities.csv` and "
    "`split.csv` (`eval_probabilities.csv` for a task=eval run), take "
    "`sklearn.metrics.balanced_accuracy_score` of the row argmax per run, then "
    "`scipy.stats.ttest_rel(b, a + threshold/100, alternative='greater')` (direction >) "
    "or `alternative='less'` (direction <) over the seed pairs gives `p`; `effect` is "
    "100 × mean(b − a). A latency claim: `ttest_rel(log b, log a + log ratio, "
    "alternative='less')`; a convergence claim: the convergence epochs with threshold 0. "
    "The interval is a percentile bootstrap ({R} resamples) of the same mean, crossed: "
    "seed pairs resampled, and one image resample shared by every seed and both arms "
    "(glattn.report.stats.crossed_bootstrap)."
)


def write(c: Claims, experiment: str, out_dir: Path, figures_too: bool = True) -> list[Path]:
    """claims.md, claims.tex (standalone), claims.csv and figures/claims_forest.{png,pdf}."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    md, tex, csv = out_dir / "claims.md", out_dir / "claims.tex", out_dir / "claims.csv"
    md.write_text(to_markdown(c, experiment))
    tex.write_text(latex_document(to_latex(c, experiment)))
    frame = c.frame()
    frame.insert(1, "criterion", [c.criteria[n].title(c.metric) for n in frame["claim"]])
    frame.insert(2, "metric", c.metric)  # "pp" thresholds are percentage points of it
    frame.assign(bootstrap_resamples=c.n_resamples, bootstrap_seed=c.seed).to_csv(csv, index=False)
    c.files = [md, tex, csv]
    if figures_too:
        from glattn.report import figures

        c.files += figures.forest_plot(c.rows, c.metric, out_dir / "figures", c.criteria)
    return c.files


def make_claims(
    experiment: str = "paper",
    uri: str | None = None,
    out_dir: Path | None = None,
    make_figures: bool = True,
    log_artifacts: bool = True,
    **check,
) -> Claims:
    """`glattn claims`: check (`check`: check_claims' keywords), write, and log the files under
    ``report/`` of the newest sweep run of the experiments the runs came from."""
    uri = uri or uris.default_tracking_uri()
    out_dir = Path(out_dir or Path("outputs") / "reports" / experiment)
    c = check_claims(uri, experiment, **check)
    write(c, experiment, out_dir, make_figures)
    if c.frames:  # the run set read (`glattn report` writes its own)
        c.files.append(selection.runs_used(c.frames, out_dir)[1])
    if log_artifacts:
        run_id, note = runs.home_sweep(uri, experiment, c.frames, "claims")
        for path in c.files if run_id else []:
            sub = "report/figures" if path.parent.name == "figures" else "report"
            runs.client_for(uri).log_artifact(run_id, str(path), sub)
        c.notes.append(note)
    return c
