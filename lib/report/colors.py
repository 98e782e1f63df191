"""Cell colours of the factor maps, computed here so that the page needs no script and no stylesheet.

A sequential ramp for factors (light = small, dark = large) and a diverging one for ratios and
changes (blue below the centre, white at it, red above), both from ColorBrewer's Blues and RdBu
stops; the text on a cell is black or white, whichever reads better on it.
"""

from __future__ import annotations

import math
from typing import Sequence

__all__ = ["Scale", "sequential", "diverging", "text_colour", "MISSING"]

RGB = tuple[float, float, float]
BLUES: tuple[RGB, ...] = ((247, 251, 255), (198, 219, 239), (107, 174, 214), (33, 113, 181), (8, 48, 107))
RDBU: tuple[RGB, ...] = ((33, 102, 172), (146, 197, 222), (247, 247, 247), (244, 165, 130), (178, 24, 43))
MISSING = "#e0e0e0"


def _interpolate(stops: Sequence[RGB], t: float) -> RGB:
    t = min(max(t, 0.0), 1.0) * (len(stops) - 1)
    i = min(int(t), len(stops) - 2)
    f = t - i
    lo, hi = stops[i], stops[i + 1]
    return tuple(a + (b - a) * f for a, b in zip(lo, hi))  # type: ignore[return-value]


def _hex(rgb: RGB) -> str:
    return "#" + "".join(f"{round(c):02x}" for c in rgb)


class Scale:
    """Maps a value in ``[low, high]`` to a colour of ``stops`` (values outside are clamped)."""

    def __init__(self, low: float, high: float, stops: Sequence[RGB]) -> None:
        self.low, self.high, self.stops = low, high, tuple(stops)

    def colour(self, value: float) -> str:
        """``#rrggbb`` of ``value``; grey for a missing (non-finite) value."""
        if not math.isfinite(value):
            return MISSING
        span = self.high - self.low
        return _hex(_interpolate(self.stops, 0.5 if span <= 0 else (value - self.low) / span))


def sequential(values: Sequence[float]) -> Scale:
    """Light-to-dark blue over the finite values' range."""
    finite = [v for v in values if math.isfinite(v)]
    return Scale(min(finite, default=0.0), max(finite, default=1.0), BLUES)


def diverging(values: Sequence[float], centre: float, min_half_width: float) -> Scale:
    """Blue-white-red, symmetric around ``centre``, at least ``min_half_width`` each way (so noise stays pale)."""
    half = max([abs(v - centre) for v in values if math.isfinite(v)] + [min_half_width])
    return Scale(centre - half, centre + half, RDBU)


def text_colour(background: str) -> str:
    """Black on light cells, white on dark ones (relative luminance below 0.4)."""
    r, g, b = (int(background[i : i + 2], 16) / 255 for i in (1, 3, 5))
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in (r, g, b)]
    luminance = 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]
    return "#ffffff" if luminance < 0.4 else "#000000"
