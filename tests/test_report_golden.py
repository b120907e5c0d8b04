"""Golden outputs of the paper's report: the tables (Markdown, LaTeX, CSV), report.md and the
claims' rows and verdicts of the report tests' stores, pinned as text under tests/golden/.

A change of a number, a title, a caption, a column or a verdict fails here. To accept an
intended change: ``GLATTN_WRITE_GOLDEN=1 pytest tests/test_report_golden.py`` and review the
diff of tests/golden/.
"""

import os
import re
from pathlib import Path

import pytest
from test_report import store  # noqa: F401 - the tables' store (a fixture)
from test_report_claims import store as claims_store  # noqa: F401 - the claims' store
from test_report_helpers import report

from glattn.report import claims

GOLDEN = Path(__file__).parent / "golden"
WRITE = os.environ.get("GLATTN_WRITE_GOLDEN") == "1"
RUN_ID = re.compile(r"\b[0-9a-f]{32}\b")
TABLE_FILES = [
    f"{stem}.{ext}"
    for stem in (
        "table1_backbones",
        "table2_cbam",
        "table3_fusion",
        "table4_residual",
        "table5_transfer",
        "table6_efficiency",
    )
    for ext in ("md", "tex", "csv")
]
CLAIM_COLUMNS = [
    "claim",
    "stratum",
    "comparison",
    "arm_a",
    "arm_b",
    "n_pairs",
    "effect",
    "low",
    "high",
    "p",
    "p_holm",
    "threshold",
    "direction",
    "unit",
    "verdict",
    "reason",
    "primary",
    "pooled",
    "note",
]


def _check(name: str, text: str) -> None:
    text = RUN_ID.sub("<run>", text)
    path = GOLDEN / name
    if WRITE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert path.is_file(), f"{path} missing: GLATTN_WRITE_GOLDEN=1 writes it"
    assert text == path.read_text(), f"{name} differs from {path}"


def test_paper_report_matches_golden(store, tmp_path):  # noqa: F811
    out = tmp_path / "paper"
    argv = ["paper", "--tracking-uri", store.uri, "--out", str(out), "--no-figures", "--no-log"]
    assert report(argv) == 0
    for name in [*TABLE_FILES, "report.md", "claims.md", "claims.csv"]:
        _check(f"paper/{name}", (out / name).read_text())


@pytest.mark.parametrize("experiment", ["c1", "c2", "c3", "c4", "c5"])
def test_claims_match_golden(claims_store, experiment):  # noqa: F811
    c = claims.check_claims(claims_store.uri, experiment, n_resamples=300)
    frame = c.frame()[CLAIM_COLUMNS]
    verdicts = "".join(f"criterion {n}: {c.verdict(n)}\n" for n in range(1, 7))
    _check(f"claims/{experiment}.csv", frame.to_csv(index=False, float_format="%.10g") + verdicts)
