"""CSV and LaTeX tables of the steps, written atomically and read back, with pandas."""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Mapping, Sequence, TypeVar

import pandas as pd

from lib.errors import InputError
from lib.io.atomic import write_text_atomic
from lib.rows import parse_row

RowT = TypeVar("RowT")

__all__ = ["write_csv", "read_csv", "read_rows", "write_latex_table"]


def write_csv(path: Path, rows: Sequence[Mapping[str, object]]) -> Path:
    """Write rows (same keys, in order) as CSV, atomically.

    Floats are written in their shortest form that reads back to the same value; a non-finite
    one as ``nan``.
    """
    if not rows:
        raise ValueError(f"refusing to write an empty table to {path}")
    frame = pd.DataFrame(list(rows)).replace([math.inf, -math.inf], math.nan)
    return write_text_atomic(path, frame.to_csv(index=False, lineterminator="\n", na_rep="nan"))


def read_csv(path: Path) -> list[dict[str, str]]:
    """Rows of a CSV written by an earlier step, every value as its text.

    Raises:
        InputError: the file is missing (says which step produces it) or is not a table.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", pd.errors.ParserWarning)  # a row longer than the header
            frame = pd.read_csv(path, dtype=str, keep_default_na=False, index_col=False)
    except FileNotFoundError as err:
        raise InputError(f"{path} not found: run the step that produces it first (see --steps)") from err
    except (pd.errors.ParserError, pd.errors.ParserWarning, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise InputError(f"{path} is not a readable table: {' '.join(str(err).split())}") from err
    return frame.to_dict("records")


def read_rows(path: Path, cls: type[RowT]) -> list[RowT]:
    """Rows of a step's CSV as ``cls`` (``lib.rows.parse_row``): typed, or one error naming the file, column and value."""
    return [parse_row(cls, row, str(path)) for row in read_csv(path)]


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
            return repr(float(value)) if decimals is None else f"{value:.{decimals}f}"
        return str(value)

    frame = pd.DataFrame([[row[key] for key, _ in columns] for row in rows], columns=[header for _, header in columns])
    styler = frame.style.hide(axis="index").format(cell, escape="latex")
    styler.set_table_styles([{"selector": rule, "props": ":hline;"} for rule in ("toprule", "midrule", "bottomrule")])
    latex = styler.to_latex(
        position="htbp", position_float="centering", caption=caption, column_format="l" + "r" * (len(columns) - 1)
    )
    return write_text_atomic(path, latex)
