"""The factor maps (per pT bin, Data | MC | Data/MC) and the change against a previous JSON, for the page and the PDF.

One colour scale (ColorBrewer's Blues) serves Data and MC, so the same colour is the same factor in
both; the ratio and the change get a diverging one (RdBu) centred on 1 and 0, at least ±5 % and
±2 % wide so that statistical noise stays pale. On the page each pT bin is a 3×3 plain HTML table
coloured here: no script, no image, and the numbers can be copied.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

from lib.categories import CategoryScheme
from lib.correction.auditor import AuditReport
from lib.report.formats import num, percent
from lib.report.outputs import SampleOutputs

RGB = tuple[float, float, float]
BLUES: tuple[RGB, ...] = ((247, 251, 255), (198, 219, 239), (107, 174, 214), (33, 113, 181), (8, 48, 107))
RDBU: tuple[RGB, ...] = ((33, 102, 172), (146, 197, 222), (247, 247, 247), (244, 165, 130), (178, 24, 43))
MISSING = "#e0e0e0"


@dataclass(frozen=True)
class Scale:
    """Maps a value in ``[low, high]`` to a colour of ``stops`` (values outside are clamped)."""

    low: float
    high: float
    stops: tuple[RGB, ...]

    def colour(self, value: float) -> str:
        """``#rrggbb`` of ``value``, linear between the two nearest stops; grey for a missing (non-finite) value."""
        if not math.isfinite(value):
            return MISSING
        span = self.high - self.low
        position = 0.5 if span <= 0 else min(max((value - self.low) / span, 0.0), 1.0)
        t = position * (len(self.stops) - 1)
        i = min(int(t), len(self.stops) - 2)
        low, high = self.stops[i], self.stops[i + 1]
        return "#" + "".join(f"{round(a + (b - a) * (t - i)):02x}" for a, b in zip(low, high))


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


RATIO_MIN_HALF_WIDTH = 0.05
CHANGE_MIN_HALF_WIDTH = 0.02


@dataclass(frozen=True)
class FactorMap:
    """One row of maps: a sample's factors (``sample`` set) or the Data/MC ratio, with its colour scale."""

    label: str
    values: dict[str, tuple[float, float]]  # value and error per category
    scale: Scale
    sample: SampleOutputs | None = None


def _ratio(data: dict[str, tuple[float, float]], mc: dict[str, tuple[float, float]]) -> dict[str, tuple[float, float]]:
    ratios = {}
    for name, (fd, ed) in data.items():
        if name not in mc:
            continue
        fm, em = mc[name]
        ratio = fd / fm if fm else math.nan
        ratios[name] = (ratio, abs(ratio) * math.hypot(ed / fd if fd else math.nan, em / fm if fm else math.nan))
    return ratios


def factor_maps(samples: Sequence[SampleOutputs | None]) -> list[FactorMap]:
    """The factor maps of the samples that have factors (Data first) and, with both, their ratio."""
    with_factors = sorted((s for s in samples if s is not None and s.has_factors), key=lambda s: s.label != "Data")
    values = [s.factor_values() for s in with_factors]
    scale = sequential([f for m in values for f, _ in m.values()])
    maps = [FactorMap(s.label, m, scale, s) for s, m in zip(with_factors, values)]
    if len(maps) == 2:
        ratios = _ratio(*values)
        label = f"{maps[0].label}/{maps[1].label}"
        maps.append(FactorMap(label, ratios, diverging([r for r, _ in ratios.values()], 1.0, RATIO_MIN_HALF_WIDTH)))
    return maps


@dataclass(frozen=True)
class Cell:
    """What one category's cell shows: the coloured value, its text, a second line, marks and a tooltip."""

    value: float  # drives the colour
    text: str
    detail: str = ""
    marks: tuple[str, ...] = ()  # CSS classes: "fallback", "flagged"
    tooltip: str = ""


# A grid as the page draws it: a caption, and per leading-muon region its cells (CSS classes, title, style, text, detail).
Grid = tuple[str, list[tuple[str, list[dict[str, str]]]]]


@dataclass(frozen=True)
class MapSection:
    """A section of maps: its colour legends, and per pT bin a heading and the grids side by side."""

    legends: list[dict[str, str]]
    bins: list[tuple[str, list[Grid]]]


def _grid(scheme: CategoryScheme, i_pt: int, cell_for: Callable[[str], Cell | None], scale: Scale, caption: str) -> Grid:
    """The cells of pT bin ``i_pt``, leading region down, subleading across; ``cell_for(name)`` None leaves a grey, empty cell."""
    n_eta = scheme.n_eta
    rows = []
    for i1, lead in enumerate(scheme.region_names):
        shown = []
        for i2 in range(n_eta):
            name = scheme.names[n_eta * n_eta * i_pt + n_eta * i1 + i2]
            cell = cell_for(name)
            if cell is None:
                shown.append({"classes": "cell empty", "title": f"{name}: no value", "text": "–"})
                continue
            background = scale.colour(cell.value)
            shown.append({
                "classes": " ".join(("cell",) + cell.marks), "title": cell.tooltip or name, "text": cell.text, "detail": cell.detail,
                "style": f"background:{background};color:{text_colour(background)}",
            })  # fmt: skip
        rows.append((lead, shown))
    return caption, rows


def _pt_heading(scheme: CategoryScheme, i_pt: int) -> str:
    return f"leading pT {scheme.pt_edges[i_pt]:g}–{scheme.pt_edges[i_pt + 1]:g} GeV"


def region_legend(scheme: CategoryScheme) -> str:
    """``B: 0 ≤ |η| < 0.9 · O: 0.9 ≤ |η| < 1.8 · E: 1.8 ≤ |η| < 2.4`` from the configured edges."""
    edges = scheme.abseta_edges
    return " · ".join(f"{r}: {edges[i]:g} ≤ |η| < {edges[i + 1]:g}" for i, r in enumerate(scheme.region_names))


def _legend(scale: Scale, label: str, fmt: str) -> dict[str, str]:
    gradient = ", ".join(f"rgb({r:.0f},{g:.0f},{b:.0f})" for r, g, b in scale.stops)
    return {"label": label, "low": format(scale.low, fmt), "high": format(scale.high, fmt), "gradient": gradient}


def _cells(factor_map: FactorMap, flagged: dict[str, str]) -> Callable[[str], Cell | None]:
    """The cell of each category: value ± error; a factor is marked when borrowed or flagged by the audit."""
    rows = {r.name: r for r in factor_map.sample.rows} if factor_map.sample else {}

    def cell(name: str) -> Cell | None:
        if name not in factor_map.values:
            return None
        value, error = factor_map.values[name]
        if name not in rows:
            return Cell(value, num(value, 3), f"± {num(error, 3)}", tooltip=f"{name}: {factor_map.label} = {value:.4f} ± {error:.4f}")
        marks = tuple(m for m, on in (("fallback", rows[name].fallback), ("flagged", name in flagged)) if on)
        tooltip = f"{name}: {value:.4f} ± {error:.4f} ({rows[name].factor.source})" + (f"; audit: {flagged[name]}" if name in flagged else "")
        return Cell(value, num(value, 3), f"± {num(error, 3)}", marks, tooltip)

    return cell


def factor_map_section(samples: Sequence[SampleOutputs | None], scheme: CategoryScheme, own: str, flagged: dict[str, str]) -> MapSection | None:
    """Per pT bin the factor grids of the samples given and, with both, their ratio; None before step 3.

    ``flagged``: the audit's reasons per category of the report's own sample, labelled ``own``.
    """
    maps = factor_maps(samples)
    if not maps:
        return None
    cells = [_cells(m, flagged if m.sample is not None and m.label == own else {}) for m in maps]
    bins = [(_pt_heading(scheme, i), [_grid(scheme, i, c, m.scale, m.label) for m, c in zip(maps, cells)]) for i in range(scheme.n_pt)]
    legends = [_legend(maps[0].scale, "factor", ".3f")] + ([_legend(maps[-1].scale, "ratio", ".3f")] if maps[-1].sample is None else [])
    return MapSection(legends, bins)


def change_section(audit: AuditReport | None, scheme: CategoryScheme) -> MapSection | None:
    """Per pT bin the relative change of each factor against the previous JSON; None without one."""
    if audit is None or audit.previous_path is None:
        return None
    by_name = {c.name: c for c in audit.categories}
    changes = [c.relative_change for c in audit.categories if c.relative_change is not None]
    scale = diverging(changes, 0.0, CHANGE_MIN_HALF_WIDTH)

    def cell(name: str) -> Cell | None:
        c = by_name[name]
        if c.previous is None or c.relative_change is None:
            return None
        return Cell(c.relative_change, percent(c.relative_change), f"{num(c.previous, 3)} → {num(c.value, 3)}",
                    tooltip=f"{name}: {c.previous:.4f} → {c.value:.4f}")  # fmt: skip

    bins = [(_pt_heading(scheme, i), [_grid(scheme, i, cell, scale, "now / previous − 1")]) for i in range(scheme.n_pt)]
    return MapSection([_legend(scale, "change", "+.1%")], bins)
