"""CSV and LaTeX table writers and the typed CSV reader (atomic writes), shared by every step.

The standard library's ``csv`` rather than pandas: importing pandas costs every run a few tenths
of a second on a loaded batch node for what ``csv`` does in milliseconds (docs/performance.md).
A step's row type is a dataclass whose fields are its table's columns; a row read back gets
their types (``parse_row``), and a damaged table is one error naming the file, column and value.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Mapping, Sequence, TypeVar, get_type_hints

from lib.errors import InputError
from lib.io.atomic import write_text_atomic

RowT = TypeVar("RowT")

_CASTS = (int, float, str)

# Characters of a text cell that LaTeX would read as commands, and what it needs instead.
_LATEX_ESCAPES = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
    "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
}  # fmt: skip


def _format(value: object) -> str:
    """A cell: a float in its shortest form that reads back to the same value, a non-finite one as ``nan``."""
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else "nan"
    return str(value)


def write_csv(path: Path, rows: Sequence[Mapping[str, object]]) -> Path:
    """Write rows as CSV, atomically: the columns of every row, in order of appearance, ``nan`` where a row has none (``_format``)."""
    if not rows:
        raise ValueError(f"refusing to write an empty table to {path}")
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    header = list(dict.fromkeys(key for row in rows for key in row))
    writer.writerow(header)
    for row in rows:
        writer.writerow([_format(row.get(key, math.nan)) for key in header])
    return write_text_atomic(path, buffer.getvalue())


def read_csv(path: Path) -> list[dict[str, str]]:
    """Rows of a CSV written by an earlier step, every value as its text.

    Raises:
        InputError: the file is missing (says which step produces it) or is not a table (empty,
            or a row with more or fewer fields than the header).
    """
    try:
        with open(path, newline="") as handle:
            reader = csv.DictReader(handle)
            rows = list(reader)
            header = reader.fieldnames
    except FileNotFoundError as err:
        raise InputError(f"{path} not found: run the step that produces it first (see --steps)") from err
    except (UnicodeDecodeError, csv.Error) as err:
        raise InputError(f"{path} is not a readable table: {' '.join(str(err).split())}") from err
    if not header:
        raise InputError(f"{path} is not a readable table: it is empty")
    for number, row in enumerate(rows, start=2):
        if None in row or None in row.values():
            raise InputError(f"{path} is not a readable table: line {number} has not the {len(header)} fields of the header")
    return rows


def read_rows(path: Path, cls: type[RowT]) -> list[RowT]:
    """Rows of a step's CSV as ``cls`` (``parse_row``): typed, or one error naming the file, column and value."""
    return [parse_row(cls, row, str(path)) for row in read_csv(path)]


def parse_row(cls: type[RowT], row: Mapping[str, object], where: str) -> RowT:
    """``cls`` built from a row of texts (``read_csv``), each column cast to its field's type.

    Example:
        >>> from lib.medians import CategoryMedian
        >>> parse_row(CategoryMedian, {"cat_name": "30-45_BB", "n_events": "12", "sum_weights": "12.0",
        ...                            "median_val_NonCal": "0.81", "median_err_NonCal": "0.01"}, "m.csv").n_events
        12

    Raises:
        InputError: a column is missing or its value is not of the field's type (``where`` names the table).
    """
    hints = get_type_hints(cls)
    values: dict[str, object] = {}
    for column in fields(cls):  # type: ignore[arg-type]
        if column.name not in row:
            if column.default is not MISSING:
                continue  # a column added later: a table written before it gets the default
            raise InputError(f"{where}: no column {column.name}")
        raw = row[column.name]
        cast = hints[column.name]
        try:
            values[column.name] = cast(raw) if cast in _CASTS else raw
        except (TypeError, ValueError) as err:
            raise InputError(f"{where}: {column.name} = {raw!r} is not {hints[column.name].__name__}") from err
    return cls(**values)


def write_latex_table(
    path: Path, rows: Sequence[Mapping[str, object]], columns: Sequence[tuple[str, str]], decimals: int | None, caption: str
) -> Path:
    """A booktabs-free, compile-anywhere ``tabular`` of the given columns (key, header).

    Text cells are LaTeX-escaped, headers are taken as LaTeX; ``decimals=None`` prints floats at
    full precision, a non-finite float as ``--``.
    """

    def cell(value: object) -> str:
        if isinstance(value, float):
            if not math.isfinite(value):
                return "--"
            return repr(value) if decimals is None else f"{value:.{decimals}f}"
        return "".join(_LATEX_ESCAPES.get(char, char) for char in str(value))

    lines = [
        r"\begin{table}[htbp]",
        r"\centering",
        r"\caption{" + caption + "}",
        r"\begin{tabular}{" + "l" + "r" * (len(columns) - 1) + "}",
        r"\hline",
        " & ".join(header for _, header in columns) + r" \\",
        r"\hline",
        *(" & ".join(cell(row[key]) for key, _ in columns) + r" \\" for row in rows),
        r"\hline",
        r"\end{tabular}",
        r"\end{table}",
        "",
    ]
    return write_text_atomic(path, "\n".join(lines))
