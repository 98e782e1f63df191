"""Every number formatted one way across the report: the page, the PDF and the verdict's sentences."""

from __future__ import annotations

import math


def num(value: float, digits: int = 4) -> str:
    """Fixed decimals, an en dash for a missing value."""
    return f"{value:.{digits}f}" if math.isfinite(value) else "–"


def pm(value: float, error: float, digits: int = 4) -> str:
    """``value ± error`` (the error left out when it is missing)."""
    if not math.isfinite(value):
        return "–"
    return num(value, digits) + (f" ± {num(error, digits)}" if math.isfinite(error) else "")


def percent(value: float, digits: int = 1, sign: bool = True) -> str:
    """``+4.2 %``; an en dash for a missing value."""
    if not math.isfinite(value):
        return "–"
    return f"{value * 100:{'+' if sign else ''}.{digits}f} %"
