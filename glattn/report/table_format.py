"""A small table model (cells with footnotes) rendered to Markdown, LaTeX (booktabs) and CSV.

A missing cell is a dash with a footnote saying why; nothing is ever filled in. The best value
of each column named in `Table.best` is bold (Markdown ``**``, LaTeX ``\\textbf``); the LaTeX
caption carries the title without its "Table N:" (LaTeX numbers tables itself).
"""

from __future__ import annotations

import math
import re
import string
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

DASH = "–"  # en dash
TEXT_COLUMNS = {"Reference", "Test"}  # left-aligned in LaTeX like the label columns


@dataclass
class Cell:
    """One table cell: its display text, the numbers behind it, and an optional footnote."""

    text: str
    mean: float = math.nan
    std: float = math.nan
    n: int | None = None
    p_value: float = math.nan
    note: str | None = None  # footnote text (a dash always has one)

    @classmethod
    def missing(cls, why: str) -> Cell:
        return cls(DASH, note=why)


@dataclass
class Table:
    """A titled table: header, rows of cells, caption; footnotes are collected from cells."""

    key: str  # file stem, e.g. "table3_fusion"
    title: str
    caption: str
    columns: list[str]
    rows: list[list[Cell]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # table-level notes (no marker)
    #: {column name: "max" | "min"}: the columns whose best value is bold
    best: dict = field(default_factory=dict)

    def __post_init__(self):
        for row in self.rows:
            self._check_row(row)

    def add_row(self, row: list[Cell]) -> None:
        self._check_row(row)
        self.rows.append(row)

    def _check_row(self, row):
        if len(row) != len(self.columns):
            raise ValueError(f"{self.key}: row has {len(row)} cells, header {len(self.columns)}")

    def footnotes(self) -> dict[str, str]:
        """{note text: marker}, markers a, b, c ... in reading order."""
        marks: dict[str, str] = {}
        for row in self.rows:
            for cell in row:
                if cell.note and cell.note not in marks:
                    marks[cell.note] = _marker(len(marks))
        return marks

    def best_cells(self) -> set[tuple[int, int]]:
        """(row, column) of the best value of each column in `best` (ties all bold)."""
        out = set()
        for name, how in self.best.items():
            if name not in self.columns:
                continue
            j = self.columns.index(name)
            vals = [(i, r[j].mean) for i, r in enumerate(self.rows) if _finite(r[j].mean)]
            if len(vals) < 2:
                continue
            pick = max if how == "max" else min
            target = pick(v for _, v in vals)
            out |= {(i, j) for i, v in vals if v == target}
        return out

    # -- renderers -------------------------------------------------------------------
    def to_markdown(self) -> str:
        marks = self.footnotes()
        bold = self.best_cells()

        def cell_md(i: int, j: int, cell: Cell) -> str:
            text = cell.text.replace("|", "\\|")
            text = f"**{text}**" if (i, j) in bold else text
            return text + (f"<sup>{marks[cell.note]}</sup>" if cell.note else "")

        lines = [f"### {self.title}", "", self.caption, ""]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in self.columns) + " |")
        lines.append("|" + "|".join("---" for _ in self.columns) + "|")
        lines += [
            "| " + " | ".join(cell_md(i, j, c) for j, c in enumerate(row)) + " |"
            for i, row in enumerate(self.rows)
        ]
        if marks or self.notes:
            lines.append("")
        lines += [f"<sup>{m}</sup> {note}  " for note, m in marks.items()]
        lines += [f"{note}  " for note in self.notes]
        return "\n".join(lines) + "\n"

    def to_latex(self) -> str:
        """A booktabs table (needs \\usepackage{booktabs}); all text LaTeX-escaped."""
        marks = self.footnotes()
        bold = self.best_cells()

        def cell_tex(i: int, j: int, cell: Cell) -> str:
            text = latex_escape(cell.text)
            text = f"\\textbf{{{text}}}" if (i, j) in bold else text
            return text + (f"\\textsuperscript{{{marks[cell.note]}}}" if cell.note else "")

        nlab = self._label_columns()
        align = "".join(
            "l" if i < nlab or name in TEXT_COLUMNS else "r" for i, name in enumerate(self.columns)
        )
        lines = [
            "\\begin{table}[t]",
            "\\centering",
            "\\small",
            f"\\caption{{{latex_escape(_unnumbered(self.title))}. {latex_escape(self.caption)}}}",
            f"\\label{{tab:{self.key}}}",
            f"\\begin{{tabular}}{{{align}}}",
            "\\toprule",
            " & ".join(latex_escape(c) for c in self.columns) + " \\\\",
            "\\midrule",
        ]
        lines += [
            " & ".join(cell_tex(i, j, c) for j, c in enumerate(row)) + " \\\\"
            for i, row in enumerate(self.rows)
        ]
        lines += ["\\bottomrule", "\\end{tabular}"]
        foot = [f"\\textsuperscript{{{m}}}{latex_escape(note)}" for note, m in marks.items()]
        foot += [latex_escape(note) for note in self.notes]
        if foot:
            lines.append("\\par\\vspace{2pt}{\\footnotesize " + " \\\\ ".join(foot) + "}")
        lines.append("\\end{table}")
        return "\n".join(lines) + "\n"

    def to_frame(self) -> pd.DataFrame:
        """Tidy form: one line per cell with its numbers, text and footnote."""
        nlab = self._label_columns()
        out = []
        for row in self.rows:
            labels = " / ".join(c.text for c in row[:nlab])
            for name, cell in zip(self.columns[nlab:], row[nlab:]):
                out.append(
                    {
                        "row": labels,
                        "column": name,
                        "text": cell.text,
                        "mean": cell.mean,
                        "std": cell.std,
                        "n": cell.n,
                        "p_value": cell.p_value,
                        "footnote": cell.note or "",
                    }
                )
        frame = pd.DataFrame(
            out, columns=["row", "column", "text", "mean", "std", "n", "p_value", "footnote"]
        )
        frame["n"] = frame["n"].astype("Int64")  # an integer (empty where a cell has none)
        return frame

    def write(self, out_dir: Path) -> list[Path]:
        """Write <key>.md, <key>.tex and <key>.csv into out_dir; returns the paths."""
        out_dir.mkdir(parents=True, exist_ok=True)
        paths = [out_dir / f"{self.key}.{ext}" for ext in ("md", "tex", "csv")]
        paths[0].write_text(self.to_markdown())
        paths[1].write_text(self.to_latex())
        self.to_frame().to_csv(paths[2], index=False)
        return paths

    label_columns: int = 1

    def _label_columns(self) -> int:
        return max(1, min(self.label_columns, len(self.columns)))


_LATEX = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "±": r"$\pm$",
    "×": r"$\times$",
    "Δ": r"$\Delta$",
    "≥": r"$\geq$",
    "–": "--",
    "−": "$-$",
    "α": r"$\alpha$",
    "σ": r"$\sigma$",
    "⊙": r"$\odot$",
}
_LATEX_RE = re.compile("|".join(re.escape(k) for k in _LATEX))


def latex_escape(text: str) -> str:
    """Escape LaTeX specials and map the few Unicode symbols the tables use to math."""
    return _LATEX_RE.sub(lambda m: _LATEX[m.group(0)], str(text))


def _finite(x) -> bool:
    return x is not None and isinstance(x, (int, float)) and math.isfinite(x)


def _unnumbered(title: str) -> str:
    """'Table 3: Fusion strategies' -> 'Fusion strategies' (LaTeX's caption numbers it)."""
    return re.sub(r"^Table\s+\d+\s*:\s*", "", title)


def _marker(i: int) -> str:
    letters = string.ascii_lowercase
    return letters[i] if i < 26 else letters[i // 26 - 1] + letters[i % 26]
