"""A small table model (cells with footnotes) rendered to Markdown, LaTeX (``Styler.to_latex``,
booktabs) and CSV for the paper's tables and the claims. A missing cell is a dash with a footnote
saying why; the best value of each column in `Table.best`, and any cell marked bold, is bold."""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field
from itertools import product
from pathlib import Path
from string import ascii_lowercase

import numpy as np
import pandas as pd

DASH = "–"  # en dash
#: LaTeX column types by column name; other columns: ``l`` for the label columns, else ``r``
COLUMN_TYPES = {"Criterion": "p{9cm}", "Reason": "p{8cm}"}
COLUMN_TYPES |= dict.fromkeys(["Reference", "Test", "Source", "Verdict"], "l")
BOLD = "textbf:--rwrap;"  # Styler's CSS-like LaTeX command: \textbf{<cell>}
#: footnote markers: a ... z, then aa, ab, ...
_MARKERS = [*ascii_lowercase, *map("".join, product(ascii_lowercase, repeat=2))]


@dataclass
class Cell:
    """One table cell: its display text, the numbers behind it, and an optional footnote."""

    text: str
    mean: float = math.nan
    std: float = math.nan
    n: int | None = None
    p_value: float = math.nan
    note: str | None = None  # footnote text (a dash always has one)
    bold: bool = False  # bold whatever the column's best value is

    @classmethod
    def missing(cls, why: str) -> Cell:
        return cls(DASH, note=why)


@dataclass
class Table:
    """A titled table: header, rows of cells, caption; footnotes are collected from cells."""

    key: str  # file stem, e.g. "table3_fusion"
    title: str  # a Markdown heading and the start of the LaTeX caption; "" for none
    caption: str
    columns: list[str]
    rows: list[list[Cell]] = field(default_factory=list)
    #: {column name: "max" | "min"}: the columns whose best value is bold
    best: dict = field(default_factory=dict)
    label_columns: int = 1  # the leading columns that name a row (left-aligned, in the CSV's row)

    def add_row(self, row: list[Cell]) -> None:
        if len(row) != len(self.columns):
            raise ValueError(f"{self.key}: row has {len(row)} cells, header {len(self.columns)}")
        self.rows.append(row)

    def footnotes(self) -> dict[str, str]:
        """{note text: marker}, markers a, b, c ... in reading order."""
        notes = dict.fromkeys(cell.note for row in self.rows for cell in row if cell.note)
        return dict(zip(notes, _MARKERS))

    def _cells(self, attr: str, dtype=object) -> pd.DataFrame:
        """One attribute of every cell, by position."""
        values = [[getattr(c, attr) for c in row] for row in self.rows]
        return pd.DataFrame(values, columns=range(len(self.columns)), dtype=dtype)

    def bold(self) -> pd.DataFrame:
        """Which cells are bold, by position: those marked bold and the best finite mean of
        each column in `best` (ties all bold; none where fewer than two cells have one)."""
        out, means = self._cells("bold", bool), self._cells("mean", float)
        means = means.where(np.isfinite(means))
        for name, how in self.best.items():
            if name in self.columns:
                col = means[self.columns.index(name)]
                if col.count() > 1:
                    out[col.name] |= col == col.agg(how)
        return out

    def _display(self, escape, mark: str, bold: str = "{}") -> pd.DataFrame:
        """The cells' text escaped, `bold` around bold cells, the footnote `mark` after."""
        marks = self.footnotes()
        text = self._cells("text").map(escape)
        notes = self._cells("note").map(lambda note: mark.format(marks[note]) if note else "")
        return text.where(~self.bold(), text.map(bold.format)) + notes

    def to_markdown(self) -> str:
        """The title as a heading, the caption, a pipe table and the footnotes."""
        cells = self._display(lambda t: str(t).replace("|", "\\|"), "<sup>{}</sup>", "**{}**")
        cells.columns = [c.replace("|", "\\|") for c in self.columns]
        table = cells.to_markdown(index=False, disable_numparse=True, stralign=None)
        foot = "".join(f"<sup>{m}</sup> {note}  \n" for note, m in self.footnotes().items())
        head = f"### {self.title}\n\n" if self.title else ""
        return f"{head}{self.caption}\n\n{table}\n" + (f"\n{foot}" if foot else "")

    def to_latex(self) -> str:
        """A booktabs table float (\\usepackage{booktabs}), LaTeX-escaped, footnotes below."""
        styler = (
            self._display(latex_escape, "\\textsuperscript{{{}}}")
            .style.hide(axis="index")
            .relabel_index([latex_escape(c) for c in self.columns], axis=1)
            .apply(lambda _: np.where(self.bold(), BOLD, ""), axis=None)
            .set_table_styles([{"selector": "small", "props": ":;"}])
        )
        # the title without its "Table N:" (LaTeX numbers tables itself)
        title = re.sub(r"^Table\s+\d+\s*:\s*", "", self.title)
        caption = ". ".join(t for t in (title, self.caption) if t)
        tex = styler.to_latex(
            hrules=True,
            caption=latex_escape(caption),
            label=f"tab:{self.key}",
            column_format="".join(
                COLUMN_TYPES.get(name, "l" if i < self.label_columns else "r")
                for i, name in enumerate(self.columns)
            ),
            position="t",
            position_float="centering",
        )
        foot = [f"\\textsuperscript{{{m}}}{latex_escape(n)}" for n, m in self.footnotes().items()]
        if not foot:
            return tex
        notes = "\\par\\vspace{2pt}{\\footnotesize " + " \\\\ ".join(foot) + "}\n"
        return tex.replace("\\end{table}", notes + "\\end{table}")

    def to_frame(self) -> pd.DataFrame:
        """Tidy form: one line per cell with its numbers, text and footnote."""
        nlab = self.label_columns
        records = [
            {"row": " / ".join(c.text for c in row[:nlab]), "column": name, **asdict(cell)}
            for row in self.rows
            for name, cell in zip(self.columns[nlab:], row[nlab:])
        ]
        columns = ["row", "column", "text", "mean", "std", "n", "p_value", "note"]
        frame = pd.DataFrame(records, columns=columns)
        frame = frame.rename(columns={"note": "footnote"}).fillna({"footnote": ""})
        return frame.astype({"n": "Int64"})  # n an integer (empty where a cell has none)

    def write(self, out_dir: Path) -> list[Path]:
        """Write <key>.md, <key>.tex and <key>.csv into out_dir; returns the paths."""
        out_dir.mkdir(parents=True, exist_ok=True)
        paths = [out_dir / f"{self.key}.{ext}" for ext in ("md", "tex", "csv")]
        paths[0].write_text(self.to_markdown())
        paths[1].write_text(self.to_latex())
        self.to_frame().to_csv(paths[2], index=False)
        return paths


#: LaTeX's specials escaped, the few Unicode symbols the tables use as math
_MATH = ["pm", "times", "Delta", "geq", "to", "alpha", "sigma", "odot"]
_LATEX = str.maketrans(
    {c: "\\" + c for c in "&%$#_{}"}
    | {"\\": r"\textbackslash{}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}
    | {"<": "$<$", ">": "$>$", "–": "--", "—": "---", "−": "$-$"}
    | {c: f"$\\{name}$" for c, name in zip("±×Δ≥→ασ⊙", _MATH)}
)


def latex_document(body: str) -> str:
    """A standalone document (booktabs, landscape) around `body`: report.tex, claims.tex."""
    return (
        "\\documentclass{article}\n\\usepackage[T1]{fontenc}\n\\usepackage[utf8]{inputenc}\n"
        "\\usepackage{booktabs}\n\\usepackage[margin=1.5cm,landscape]{geometry}\n"
        "\\begin{document}\n" + body + "\\end{document}\n"
    )


def latex_escape(text: str) -> str:
    """Escape LaTeX specials and map the few Unicode symbols the tables use to math."""
    return str(text).translate(_LATEX)
