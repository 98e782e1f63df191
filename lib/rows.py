"""Typed CSV rows: a dataclass's fields are a table's columns, and a row read back gets their types.

Steps write their tables (``fit_results.csv``, ``median_for_cats.csv``) and later steps read them
back from disk, as the original's did. Parsed here once, by the declared field types, a later
step works with numbers instead of casting strings at every use, and a damaged or foreign table
is one error naming the file, the column and the value.
"""

from __future__ import annotations

from dataclasses import MISSING, fields
from typing import Mapping, TypeVar, get_type_hints

from lib.errors import InputError

__all__ = ["parse_row"]

RowT = TypeVar("RowT")
_CASTS = {int: int, float: float, str: str}


def parse_row(cls: type[RowT], row: Mapping[str, object], where: str) -> RowT:
    """``cls`` built from a row of texts (``lib.io.tables.read_csv``), each column cast to its field's type.

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
        cast = _CASTS.get(hints[column.name])
        try:
            values[column.name] = cast(raw) if cast is not None else raw  # type: ignore[operator]
        except (TypeError, ValueError) as err:
            raise InputError(f"{where}: {column.name} = {raw!r} is not {hints[column.name].__name__}") from err
    return cls(**values)
