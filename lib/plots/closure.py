"""Closure figure: fitted width against median predicted width, before and after calibration.

The ratio panel (fit / median - 1) is as tall as the calibrated points need. A point beyond it is
an arrow at the panel's edge; neighbouring arrows of a pass share one label ("+30 to +43 %"),
labels that would touch are stacked, and past two rows each pass gets one label per edge. Bins
the closure did not test are hollow grey markers, or grey arrows without a label.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from lib.closure import BinState, ClosureBin
from lib.plots.cms import cms_label, cms_style, two_panels
from lib.plots.save import PLOT_FORMATS, save_figure

if TYPE_CHECKING:
    from lib.figures import ClosureFigure

# Half-heights the ratio panel may take: the smallest that holds the calibrated points is drawn.
RATIO_HALF_RANGES = (0.2, 0.3, 0.5, 1.0)
# The calibrated points' centres stay within this share of the half-height when the rest holds labelled arrows,
# within the larger one when there are none.
POINTS_SHARE, EDGE_SHARE = 0.4, 0.9
UNTESTED_COLOR = "#949494"
# Off-scale arrows in axes coordinates of the ratio panel (top edge; the bottom one mirrors it).
ARROW_TIP, ARROW_TAIL, LABEL_TOP = 0.97, 0.86, 0.85
LABEL_FONTSIZE = 12
LABEL_ROWS = 2
LABEL_PAD_PX = 3.0


@dataclass(frozen=True)
class _Pass:
    """How one pass (before or after calibration) is drawn."""

    name: str
    color: str
    marker: str


BEFORE = _Pass("before calibration", "#e42536", "s")
AFTER = _Pass("after calibration", "#3f90da", "o")


@dataclass(frozen=True)
class _Points:
    """A pass's measured bins (a fit with a ratio), ordered by median; ``tested`` marks those the closure judged."""

    median: np.ndarray
    fit: np.ndarray
    fit_err: np.ndarray
    deviation: np.ndarray
    deviation_err: np.ndarray
    tested: np.ndarray


def _points(rows: Sequence[ClosureBin]) -> _Points:
    measured = sorted((r for r in rows if r.fit_quality == "ok" and math.isfinite(r.ratio)), key=lambda r: r.median_val)

    def column(key: str) -> np.ndarray:
        return np.array([float(getattr(r, key)) for r in measured], dtype=float)

    return _Points(
        column("median_val"), column("fit_val"), column("fit_err"), column("ratio") - 1.0, column("ratio_err"),
        np.array([r.state is BinState.TESTED for r in measured], dtype=bool),
    )  # fmt: skip


def ratio_half_range(calibrated: Sequence[Any], uncalibrated: Sequence[Any] = ()) -> float:
    """The ratio panel's half-height: the smallest of ``RATIO_HALF_RANGES`` that shows every tested calibrated bin.

    Where a tested bin of either pass lies beyond it (an arrow with a label), the calibrated ones
    keep to the inner ``POINTS_SHARE``, else to ``EDGE_SHARE`` of it.
    """
    calibrated_points = _points(calibrated)
    ours = np.abs(calibrated_points.deviation[calibrated_points.tested])
    tested = [np.abs(p.deviation[p.tested]) for p in (calibrated_points, _points(uncalibrated))]
    largest = float(np.max(ours)) if ours.size else 0.0
    for half in RATIO_HALF_RANGES:
        labelled = any(bool(np.any(deviations > half)) for deviations in tested)
        if largest <= (POINTS_SHARE if labelled else EDGE_SHARE) * half:
            return half
    return RATIO_HALF_RANGES[-1]


@dataclass(frozen=True)
class _OffScale:
    """Arrows of one pass at one edge of the ratio panel that share a label."""

    side: int  # +1: top edge, -1: bottom edge
    xs: tuple[float, ...]
    values: tuple[float, ...]
    color: str

    @property
    def centre(self) -> float:
        return 0.5 * (min(self.xs) + max(self.xs))

    def text(self) -> str:
        low, high = (round(100 * v) for v in (min(self.values), max(self.values)))
        return f"{low:+d} %" if low == high else f"{low:+d} to {high:+d} %"


def _runs(points: _Points, half: float, color: str) -> list[_OffScale]:
    """Tested points beyond ``half``, grouped into runs of neighbours (no in-range point between them) on the same edge."""
    runs: list[_OffScale] = []
    previous = 0
    for x, dev in zip(points.median[points.tested], points.deviation[points.tested]):
        side = int(np.sign(dev)) if abs(dev) > half else 0
        if side and side == previous:
            last = runs[-1]
            runs[-1] = _OffScale(side, (*last.xs, float(x)), (*last.values, float(dev)), color)
        elif side:
            runs.append(_OffScale(side, (float(x),), (float(dev),), color))
        previous = side
    return runs


def _merged(runs: list[_OffScale]) -> list[_OffScale]:
    """One label per pass (colour) and edge."""
    merged: dict[tuple[str, int], _OffScale] = {}
    for run in runs:
        key = (run.color, run.side)
        if key in merged:
            run = _OffScale(run.side, (*merged[key].xs, *run.xs), (*merged[key].values, *run.values), run.color)
        merged[key] = run
    return list(merged.values())


def _place_labels(rax: Any, groups: list[_OffScale], renderer: Any, max_rows: int | None) -> bool:
    """Write each group's label under its arrows, in the first row where it touches no other label, inside the panel;
    False, with every label removed again, when one finds no free row among ``max_rows``."""
    from matplotlib.transforms import blended_transform_factory

    blend = blended_transform_factory(rax.transData, rax.transAxes)
    to_data = rax.transData.inverted()
    frame = rax.get_window_extent(renderer)
    placed: list[tuple[Any, Any]] = []
    for group in sorted(groups, key=lambda g: g.centre):
        text = rax.text(group.centre, 0.5, group.text(), transform=blend, ha="center", va="top" if group.side > 0 else "bottom",
                        color=group.color, fontsize=LABEL_FONTSIZE)  # fmt: skip
        row = 0
        while True:
            if max_rows is not None and row >= max_rows:
                for made in [text, *(t for t, _ in placed)]:
                    made.remove()
                return False
            box = _put(text, group.side, row, frame, renderer, to_data)
            if not any(box.overlaps(other) for _, other in placed):
                placed.append((text, box))
                break
            row += 1
    return True


def _put(text: Any, side: int, row: int, frame: Any, renderer: Any, to_data: Any) -> Any:
    """Move ``text`` to label row ``row`` at its edge, shifted sideways into the panel; return its padded box in pixels."""
    box = text.get_window_extent(renderer)
    step = 1.05 * box.height / frame.height
    y = LABEL_TOP - row * step
    text.set_y(y if side > 0 else 1.0 - y)
    box = text.get_window_extent(renderer)
    shift = max(0.0, frame.x0 + LABEL_PAD_PX - box.x0) - max(0.0, box.x1 - (frame.x1 - LABEL_PAD_PX))
    if shift:
        centre = 0.5 * (box.x0 + box.x1) + shift
        text.set_x(float(to_data.transform((centre, 0.0))[0]))
        box = text.get_window_extent(renderer)
    return box.padded(LABEL_PAD_PX)


def _arrows(rax: Any, points: _Points, half: float, color: str) -> None:
    """An arrow at the panel's edge for each point beyond ``half``, pointing its way; grey for untested bins."""
    from matplotlib.transforms import blended_transform_factory

    blend = blended_transform_factory(rax.transData, rax.transAxes)
    for x, dev, tested in zip(points.median, points.deviation, points.tested):
        if abs(dev) <= half:
            continue
        tip, tail = (ARROW_TIP, ARROW_TAIL) if dev > 0 else (1.0 - ARROW_TIP, 1.0 - ARROW_TAIL)
        shade = color if tested else UNTESTED_COLOR
        rax.annotate("", xy=(x, tip), xytext=(x, tail), xycoords=blend, textcoords=blend,
                     arrowprops={"arrowstyle": "-|>", "color": shade, "lw": 1.5, "mutation_scale": 14})  # fmt: skip


def _draw_pass(ax: Any, rax: Any, style: _Pass, points: _Points, half: float, untested_label: str) -> None:
    """A pass's points with their errors in both panels (the ratio panel: those within ``half``): tested ones in its
    colour, untested ones as hollow grey markers, named ``untested_label`` in the legend ("_": not named)."""
    for tested in (True, False):
        chosen = points.tested == tested
        if not np.any(chosen):
            continue
        look = {"fmt": style.marker, "ms": 7} | (
            {"color": style.color, "label": style.name} if tested
            else {"color": UNTESTED_COLOR, "mfc": "none", "mew": 1.5, "label": untested_label}
        )  # fmt: skip
        ax.errorbar(points.median[chosen], points.fit[chosen], yerr=points.fit_err[chosen], **look)
        inside = chosen & (np.abs(points.deviation) <= half)
        rax.errorbar(points.median[inside], points.deviation[inside], yerr=points.deviation_err[inside], **(look | {"label": "_"}))


def plot_closure(figure: ClosureFigure, formats: tuple[str, ...] = PLOT_FORMATS) -> list[Path]:
    """y = x with the tolerance as a band, both passes as points, and a ratio panel (fit / median - 1), written in ``formats``.

    ``figure.after`` sets the ratio panel's range (``figure.before`` where it is empty).
    """
    before, after = figure.before, figure.after
    half = ratio_half_range(after, before) if after else ratio_half_range(before)
    with cms_style() as plt:
        fig, ax, rax = two_panels(plt, hspace=0.05)
        edges = [r.low for r in after] + [after[-1].high] if after else [0.5, 3.5]
        _band(ax, rax, np.linspace(min(edges), max(edges), 50), figure.tolerance)
        untested_label = f"not tested (< {figure.min_events} events)"
        groups: list[_OffScale] = []
        for style, rows in ((BEFORE, before), (AFTER, after)):
            points = _points(rows)
            _draw_pass(ax, rax, style, points, half, untested_label)
            if not np.all(points.tested):
                untested_label = "_"  # one legend entry for the untested bins of both passes
            _arrows(rax, points, half, style.color)
            groups += _runs(points, half, style.color)
        ax.set_ylabel(r"fitted $\sigma$ [GeV]")
        ax.legend(loc="upper left", fontsize=16)
        cms_label(ax, figure.simulation, figure.header.right(), fontsize=18)
        rax.set_xlabel(r"median predicted $\sigma_{m_{\mu\mu}}$ in bin [GeV]")
        rax.set_ylabel("fit/pred - 1")
        rax.set_ylim(-half, half)
        rax.set_xlim(rax.get_xlim())  # the automatic range, fixed before the labels are measured against it
        renderer = fig.canvas.get_renderer()
        if not _place_labels(rax, groups, renderer, LABEL_ROWS):
            _place_labels(rax, _merged(groups), renderer, None)
        return save_figure(fig, figure.stem, formats=formats)


def _band(ax: Any, rax: Any, x: np.ndarray, tolerance: float) -> None:
    """The line y = x and the band a bin passes within, in the main panel; zero and the band in the ratio panel."""
    ax.plot(x, x, color="black", lw=1, label="y = x")
    ax.fill_between(x, (1 - tolerance) * x, (1 + tolerance) * x, color="grey", alpha=0.25, label=rf"$\pm${100 * tolerance:g} %")
    rax.axhline(0.0, color="black", lw=1)
    rax.axhspan(-tolerance, tolerance, color="grey", alpha=0.25)
