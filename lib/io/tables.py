"""CSV and LaTeX table writers (atomic), shared by every step."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Mapping, Sequence, TypeVar

from lib.errors import InputError
from lib.io.atomic import write_text_atomic
from lib.rows import parse_row

RowT = TypeVar("RowT")

__all__ = ["write_csv", "read_csv", "read_rows", "write_latex_table"]


def _format(value: object) -> str:
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else "nan"
    return str(value)


def write_csv(path: Path, rows: Sequence[Mapping[str, object]]) -> Path:
    """Write rows (same keys, in order) as CSV with full float precision, atomically."""
    if not rows:
        raise ValueError(f"refusing to write an empty table to {path}")
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    header = list(rows[0].keys())
    writer.writerow(header)
    for row in rows:
        writer.writerow([_format(row[k]) for k in header])
    return write_text_atomic(path, buf.getvalue())


def read_csv(path: Path) -> list[dict[str, str]]:
    """Rows of a CSV written by an earlier step.

    Raises:
        InputError: the file is missing (says which step produces it).
    """
    try:
        with open(path, newline="") as handle:
            return list(csv.DictReader(handle))
    except FileNotFoundError as err:
        raise InputError(f"{path} not found: run the step that produces it first (see --steps)") from err


def read_rows(path: Path, cls: type[RowT]) -> list[RowT]:
    """Rows of a step's CSV as ``cls`` (``lib.rows.parse_row``): typed, or one error naming the file, column and value."""
    return [parse_row(cls, row, str(path)) for row in read_csv(path)]


def write_latex_table(
    path: Path, rows: Sequence[Mapping[str, object]], columns: Sequence[tuple[str, str]], decimals: int | None, caption: str
) -> Path:
    """A booktabs-free, compile-anywhere ``tabular`` of the given columns (key, header).

    ``decimals=None`` prints floats at full precision.
    """

    def cell(value: object) -> str:
        if isinstance(value, float):
            if not math.isfinite(value):
                return "--"
            return repr(value) if decimals is None else f"{value:.{decimals}f}"
        return str(value).replace("_", r"\_")

    lines = [
        r"\begin{table}[htbp]",
        r"\centering",
        r"\caption{" + caption + "}",
        r"\begin{tabular}{" + "l" + "r" * (len(columns) - 1) + "}",
        r"\hline",
        " & ".join(h for _, h in columns) + r" \\",
        r"\hline",
    ]
    for row in rows:
        lines.append(" & ".join(cell(row[k]) for k, _ in columns) + r" \\")
    lines += [r"\hline", r"\end{tabular}", r"\end{table}", ""]
    return write_text_atomic(path, "\n".join(lines))
