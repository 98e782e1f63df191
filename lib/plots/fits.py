"""Per-category fit figure, drawn from a ``FitResult``'s arrays: RooFit supplies numbers, matplotlib draws them.

Figures are drawn by the dozen, so each process builds one figure per kind (Data or simulation,
with or without background, the model's legend) and only re-fills it per category. The PNG
restores a backdrop of what a kind and fit range share and draws the category's artists on top
(blitting); the PDF is drawn whole.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from lib.fitting.result import FitCurves, FitResult, ParamResult
from lib.io.atomic import atomic_path
from lib.plots.cms import cms_label, cms_style, fit_right_label, two_panels
from lib.plots.save import PLOT_FORMATS, PNG_DPI, save_figure

if TYPE_CHECKING:
    from lib.figures import FitFigure

TOTAL_COLOR = "#3f90da"
SIGNAL_COLOR = "#e42536"
BACKGROUND_COLOR = "#964a8b"
FAILED_COLOR = "#c00000"
PULL_BAND = 2.0
# The info block, top left, in axes coordinates: a label column and a value column, one row per number.
INFO_ROWS, INFO_TOP, INFO_STEP, INFO_COLUMNS = 7, 0.95, 0.047, (0.03, 0.155)


def _info_rows(result: FitResult, shared: tuple[str, ...]) -> list[tuple[str, str]]:
    """The numbers a reader checks first, as (label, value) rows: sigma, chi2/NDF, minimiser status, events, accepted attempt.

    ``shared``: the radiation parameters the fit took from its group's pooled fit, marked "(shared)";
    another constant one (fixed by ``fit.params`` or as undetermined) is marked "(fixed)".

    Only the fixed labels are mathtext (parsed once per process); the values are plain text.
    """
    chosen = result.chosen
    rows = [
        _width_row(result),
        (r"$\chi^2$/NDF", f"{chosen.chi2_ndf:.2f}  ({chosen.n_float} free par.)"),
        ("status", f"{chosen.status}, covQual {chosen.cov_qual}"),
        ("events", f"{chosen.n_events:,}"),
    ]
    radiation = {p.name: p for p in chosen.params if p.name in ("fsr_fraction", "fsr_scale")}
    if len(radiation) == 2:
        fraction, scale = radiation["fsr_fraction"], radiation["fsr_scale"]
        shown_fraction = f"{fraction.value:.1%}" + _error_or_origin(fraction, shared, f" \u00b1 {fraction.error:.1%}")
        shown_scale = f"{scale.value:.2f}" + _error_or_origin(scale, shared, f" \u00b1 {scale.error:.2f} GeV", " GeV")
        rows.append(("FSR", f"{shown_fraction}, mean loss {shown_scale}"))
    if result.weighted:
        rows.append((r"$\Sigma w$", f"{chosen.sum_weights:,.0f}"))
    if len(result.attempts) > 1:
        shown = next((i for i, a in enumerate(result.attempts, 1) if a.label == chosen.label), 0)
        rows.append(("attempt", f"{shown} of {len(result.attempts)}: {chosen.label}"))
    return rows


def _error_or_origin(param: ParamResult, shared: tuple[str, ...], error: str, unit: str = "") -> str:
    """A floating parameter's ``error`` text; where a constant one's value came from instead of an error of 0."""
    if param.name in shared:
        return f"{unit} (shared)"
    return f"{unit} (fixed)" if param.constant else error


def _width_row(result: FitResult) -> tuple[str, str]:
    """The reported width; an effective one with the DCB core beside it, which it came from."""
    value = f"{result.fit_val:.4f} \u00b1 {result.fit_err:.4f} GeV"
    if result.width_definition != "effective":
        return r"$\sigma_{DCB}$", value
    core = next((p.value for p in result.chosen.params if p.name == "sigma"), float("nan"))
    return r"$\sigma_{eff}$", f"{value}  (core {core:.3f})"


@dataclass
class _FitFigure:
    """One figure and the artists that change from category to category."""

    fig: Any
    ax: Any
    rax: Any
    points: Any
    error_bars: Any
    total: Any
    signal: Any
    background: Any
    pulls: Any
    info: list[tuple[Any, Any]]
    failure: Any
    rlabel: Any
    status: Any  # "Preliminary" after "CMS", which a long right-hand label must keep clear of
    rlabel_size: float  # the right-hand label's size, unless it is long
    # The PNG backdrop (every artist but those of ``changing()``) and the axis limits it was rendered with.
    backdrop: Any = None
    backdrop_limits: tuple[tuple[float, float], ...] = ()

    def changing(self) -> list[Any]:
        """The artists that differ between categories, in drawing order: not part of the PNG backdrop."""
        artists = [self.ax.yaxis, self.rax.yaxis, self.points, self.error_bars, self.total, self.signal, self.background,
                   self.pulls, *(text for row in self.info for text in row), self.failure, self.rlabel]  # fmt: skip
        return sorted((a for a in artists if a is not None), key=lambda a: a.get_zorder())


_FIGURES: dict[tuple[bool, bool, str, bool, bool], _FitFigure] = {}


def model_label(peak: str, acceptance: bool, radiating: bool = False) -> str:
    """The signal model as the legend names it: the Z peak's BW (x) DCB, times the window acceptance A(m) when the fit
    has it; with a radiation component (fit.fsr) the radiating BW (or, for the Higgs, the radiating peak) is marked FSR."""
    if peak != "z":
        return r"FSR $\otimes$ DCB" if radiating else "DCB"
    bw = r"BW$_{\mathrm{FSR}}$" if radiating else "BW"
    return bw + (r" $\otimes$ DCB $\times$ A(m)" if acceptance else r" $\otimes$ DCB")


def _figure(weighted: bool, with_background: bool, peak: str, acceptance: bool = False, radiating: bool = False) -> _FitFigure:
    """This process's figure of the kind (built on first use): axes, label, legend, empty artists.

    With a background the signal is dashed, in another colour, over the solid total, so both stay
    visible where they coincide; without one the total is the signal model, named so.
    """
    key = (weighted, with_background, peak, acceptance, radiating)
    if key not in _FIGURES:
        with cms_style() as plt:
            fig, ax, rax = two_panels(plt, hspace=0.06)
            # The final margins first: the CMS header is placed in axes coordinates.
            fig.subplots_adjust(left=0.13, right=0.95, top=0.95, bottom=0.08)
            curves = _curve_artists(ax, weighted, with_background, model_label(peak, acceptance, radiating))
            pulls = _pull_panel(rax)
            info = [
                tuple(ax.text(x, INFO_TOP - i * INFO_STEP, "", transform=ax.transAxes, va="top", ha="left", fontsize=16) for x in INFO_COLUMNS)
                for i in range(INFO_ROWS)
            ]
            # Left, under the numbers: the low-mass side of a Z peak is the emptiest part of the frame.
            failure = ax.text(0.03, 0.62, "", transform=ax.transAxes, va="top", ha="left", color=FAILED_COLOR, fontsize=12, zorder=5,
                              bbox={"facecolor": "white", "edgecolor": FAILED_COLOR, "alpha": 0.85})  # fmt: skip
            _, status, rlabel = cms_label(ax, weighted, "", fontsize=18)  # the right-hand label is set per figure
            _axis_labels(ax, rax)
        _FIGURES[key] = _FitFigure(fig, ax, rax, *curves, pulls, info, failure, rlabel, status, rlabel.get_fontsize())
    return _FIGURES[key]


def _curve_artists(ax: Any, weighted: bool, with_background: bool, model: str) -> tuple[Any, Any, Any, Any, Any]:
    """The main panel's empty artists and their legend: points, error bars, total, signal and background (None without one)."""
    from matplotlib.collections import LineCollection

    (points,) = ax.plot([], [], "o", color="black", ms=4, label="Simulation" if weighted else "Data", zorder=3)
    error_bars = ax.add_collection(LineCollection([], colors="black", linewidths=1, zorder=3))
    (total,) = ax.plot([], [], color=TOTAL_COLOR, lw=2.2, ls="-", label="Fit: total" if with_background else model, zorder=2)
    signal = background = None
    if with_background:
        (signal,) = ax.plot([], [], color=SIGNAL_COLOR, lw=1.8, ls="--", label=model, zorder=2.5)
        (background,) = ax.plot([], [], color=BACKGROUND_COLOR, lw=1.8, ls=":", label="Background", zorder=2.4)
    ax.legend(loc="upper right", fontsize=17)
    return points, error_bars, total, signal, background


def _pull_panel(rax: Any) -> Any:
    """The pull panel's band and lines; return its empty pull points."""
    rax.axhspan(-PULL_BAND, PULL_BAND, color="grey", alpha=0.15, lw=0)
    for level in (-PULL_BAND, PULL_BAND):
        rax.axhline(level, color="grey", ls="--", lw=1)
    rax.axhline(0.0, color="black", lw=1)
    (pulls,) = rax.plot([], [], "o", color="black", ms=3.5)
    return pulls


def _axis_labels(ax: Any, rax: Any) -> None:
    """The axis labels at fixed positions where the CMS style puts them: automatic ones measure every tick label on each draw."""
    rax.set_ylabel("Pull")
    rax.set_xlabel(r"$m_{\mu\mu}$ [GeV]")
    for axis in (ax.yaxis, rax.yaxis):
        axis.set_label_coords(-0.105, 1.0)
    rax.xaxis.set_label_coords(1.0, -0.2)


def plot_fit(figure: FitFigure, formats: tuple[str, ...] = PLOT_FORMATS) -> list[Path]:
    """Data, total/signal/background curves and a pull panel, written as ``<stem>.png`` and ``.pdf`` (``formats``).

    A failed fit is drawn from its best attempt with "FIT FAILED" and the reason in red; a category
    without any fitted attempt gets just the reason. Returns the written paths in ``formats`` order.
    """
    result, curves = figure.result, figure.result.curves
    radiating = any(p.name == "fsr_fraction" for p in result.chosen.params)
    drawn = _figure(result.weighted, curves is not None and curves.background is not None, result.peak, figure.acceptance, radiating)
    with cms_style():  # measured, drawn and saved in the style, as it was built: see cms_style
        drawn.rlabel.set_text(figure.header.right())
        fit_right_label(drawn.status, drawn.rlabel, drawn.rlabel_size, drawn.fig.canvas.get_renderer())
        drawn.failure.set_visible(not result.ok)
        if not result.ok:
            drawn.failure.set_text(f"FIT FAILED\n{textwrap.fill(result.reason, 36)}")
            drawn.failure.set_y(0.62 if curves is not None else 0.9)
        if curves is None:
            _clear(drawn)
        else:
            _fill(drawn, result, curves, figure.shared)
        return _save(drawn, figure.stem, formats)


def _clear(drawn: _FitFigure) -> None:
    """Nothing fitted: no points, curves or count scale, nor the previous category's axis ranges."""
    for line in (drawn.points, drawn.total, drawn.pulls):
        line.set_data([], [])
    drawn.error_bars.set_segments([])
    drawn.ax.set_ylabel("")
    drawn.ax.set_ylim(0.0, 1.0)
    drawn.rax.set_ylim(-4.0, 4.0)
    _fill_info(drawn, [])


def _fill(drawn: _FitFigure, result: FitResult, curves: FitCurves, shared: tuple[str, ...]) -> None:
    """The category's points, curves, pulls and numbers, and the axis ranges that show them."""
    ax, rax = drawn.ax, drawn.rax
    centres = 0.5 * (curves.edges[1:] + curves.edges[:-1])
    width = float(curves.edges[1] - curves.edges[0])
    drawn.points.set_data(centres, curves.counts)
    low, high = curves.counts - curves.err_low, curves.counts + curves.err_high
    drawn.error_bars.set_segments(np.stack([np.column_stack([centres, low]), np.column_stack([centres, high])], axis=1))
    drawn.total.set_data(curves.curve_x, curves.total)
    if drawn.signal is not None:
        drawn.signal.set_data(curves.curve_x, curves.signal)
        drawn.background.set_data(curves.curve_x, curves.background)
    top = np.nanmax(high) if np.any(np.isfinite(curves.counts)) else 1.0
    headroom = 1.45 if result.ok else 1.75  # room for the failure box
    ax.set_ylim(0.0, headroom * max(top, float(np.nanmax(curves.total))))
    ax.set_xlim(curves.edges[0], curves.edges[-1])
    ax.set_ylabel(f"{'Sum of weights' if result.weighted else 'Events'} / {width:.3g} GeV")
    pulls = curves.pulls
    limit = float(min(8.0, max(4.0, np.ceil(np.nanmax(np.abs(pulls)) if np.any(np.isfinite(pulls)) else 0.0))))
    drawn.pulls.set_data(centres, np.clip(pulls, -limit, limit))
    rax.set_ylim(-limit, limit)
    _fill_info(drawn, _info_rows(result, shared))


def _fill_info(drawn: _FitFigure, rows: list[tuple[str, str]]) -> None:
    """Write ``rows`` into the info block's texts; the rows left over are emptied."""
    for i, (label, value) in enumerate(drawn.info):
        shown = rows[i] if i < len(rows) else ("", "")
        label.set_text(shown[0])
        value.set_text(shown[1])


def _save(drawn: _FitFigure, path_stem: Path, formats: tuple[str, ...]) -> list[Path]:
    """Write ``<stem>.png`` from the backdrop plus the category's artists, and ``<stem>.pdf`` drawn whole (those in ``formats``)."""
    written = []
    for ext in formats:
        if ext == "png":
            png = Path(f"{path_stem}.png")
            with atomic_path(png) as tmp:
                _png_image(drawn).save(tmp, format="png", compress_level=1, dpi=(PNG_DPI, PNG_DPI))
            written.append(png)
        else:
            written += save_figure(drawn.fig, path_stem, tight=False, close=False, formats=(ext,))
    return written


def _png_image(drawn: _FitFigure) -> Any:
    """The figure as a PIL image: the backdrop (rendered again when an axis range changed), then the changing artists."""
    from PIL import Image

    canvas = drawn.fig.canvas
    limits = (drawn.ax.get_xlim(), drawn.rax.get_xlim(), drawn.rax.get_ylim())
    changing = drawn.changing()
    if drawn.backdrop is None or drawn.backdrop_limits != limits:
        for artist in changing:
            artist.set_animated(True)  # left out of a full draw
        try:
            canvas.draw()
        finally:
            for artist in changing:
                artist.set_animated(False)
        drawn.backdrop, drawn.backdrop_limits = canvas.copy_from_bbox(drawn.fig.bbox), limits
    else:
        canvas.restore_region(drawn.backdrop)
    renderer = canvas.get_renderer()
    for artist in changing:
        artist.draw(renderer)
    return Image.fromarray(np.asarray(canvas.buffer_rgba()))
