"""Reading the metadata tables of the real data sets (CSV or tab-separated), with errors
that name the file, the line and what was expected. Line numbers count the header as 1."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from glattn.data.errors import DataError


def read_table(path: Path, required: list[str], lower_columns: bool = True) -> pd.DataFrame:
    """All cells as stripped strings (blank stays ""), separator sniffed from the header
    (tab or comma), column names stripped (and lower-cased); missing columns raise."""
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            header = f.readline()
    except OSError as e:
        raise DataError(f"{path}: cannot read metadata file ({e})") from e
    if not header.strip():
        raise DataError(
            f"{path}: the file is empty; expected a header line naming the columns"
            + (f" (at least {required})" if required else "")
        )
    sep = "\t" if "\t" in header else ","
    try:
        frame = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except (pd.errors.ParserError, UnicodeDecodeError) as e:
        raise DataError(
            f"{path}: cannot parse as a {'tab' if sep == chr(9) else 'comma'}"
            f"-separated table ({str(e).strip()})"
        ) from e
    frame.columns = [c.strip().lower() if lower_columns else c.strip() for c in frame.columns]
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise DataError(
            f"{path}: missing column(s) {missing}; found {list(frame.columns)}, "
            f"expected at least {required}"
        )
    for col in frame.columns:
        frame[col] = frame[col].str.strip()
    return frame


def line_of(row_position: int) -> int:
    """File line number of the row at 0-based position `row_position` (header is line 1)."""
    return row_position + 2


def check_not_blank(frame: pd.DataFrame, columns: list[str], path: Path) -> None:
    for col in columns:
        blank = frame.index[frame[col] == ""]
        if len(blank):
            lines = [line_of(frame.index.get_loc(i)) for i in blank[:5]]
            raise DataError(
                f"{path}: column {col!r} is blank on line(s) {lines}"
                f"{' ...' if len(blank) > 5 else ''}; expected a value on every row"
            )


def check_unique(frame: pd.DataFrame, column: str, path: Path) -> None:
    dup = frame[column].duplicated(keep=False)
    if dup.any():
        groups = frame[dup].groupby(column, sort=True)
        shown = []
        for value, rows in list(groups)[:5]:
            lines = [line_of(frame.index.get_loc(i)) for i in rows.index]
            shown.append(f"{value} (lines {lines})")
        raise DataError(
            f"{path}: duplicate {column} value(s): {'; '.join(shown)}"
            f"{' ...' if groups.ngroups > 5 else ''}; expected each {column} once"
        )
