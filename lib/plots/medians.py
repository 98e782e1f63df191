"""Step-2 figure: the sigma_pred distribution of every category, with its median marked.

One panel per category, rows the pT bins, each with its own y axis (the categories differ by a
factor of 500 in size). Each column has the sigma_pred range its panels fill, so the narrow
barrel distributions are not squeezed into the endcaps' range. Fixed margins and no minor ticks:
``tight_layout`` and minor ticks on 36 panels would cost most of step 2's time.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from lib.medians import CategoryMedian
from lib.plots.cms import cms_label, cms_style
from lib.plots.save import PLOT_FORMATS, save_figure

if TYPE_CHECKING:
    from lib.figures import MedianFigure

FILL_COLOR = "#5790fc"
MEDIAN_COLOR = "#e42536"
# A column's range leaves out this share of each panel's entries on either side (single outliers).
TAIL_SHARE = 0.002
# Inches above the grid: the CMS header, the panels' titles below it.
HEADER_INCHES = 0.9


def column_ranges(edges: np.ndarray, counts: np.ndarray, ncols: int) -> list[tuple[float, float]]:
    """The sigma_pred range of each column of the grid: the bins between each panel's ``TAIL_SHARE`` and
    ``1 - TAIL_SHARE`` quantiles and a bin of margin each side; the whole range for a column without entries."""
    ranges = []
    last = len(edges) - 1
    for column in range(ncols):
        low, high = last, 0
        for hist in counts[column::ncols]:
            total = float(np.sum(hist))
            if total <= 0:
                continue
            cumulative = np.cumsum(hist) / total
            low = min(low, int(np.searchsorted(cumulative, TAIL_SHARE, side="right")))
            high = max(high, int(np.searchsorted(cumulative, 1.0 - TAIL_SHARE, side="left")) + 1)
        if high <= low:
            ranges.append((float(edges[0]), float(edges[-1])))
        else:
            ranges.append((float(edges[max(low - 1, 0)]), float(edges[min(high + 1, last)])))
    return ranges


def plot_sigma_pred_histograms(figure: MedianFigure, formats: tuple[str, ...] = PLOT_FORMATS) -> list[Path]:
    """One panel per category in a grid (rows: pT bins) under the CMS header, written in ``formats`` (PNG and PDF)."""
    edges, counts, medians = figure.edges, figure.counts, figure.medians
    n = len(medians)
    ncols = 9 if n % 9 == 0 else min(n, 6)
    nrows = math.ceil(n / ncols)
    height = 2.5 * nrows + HEADER_INCHES - 0.1
    ranges = column_ranges(edges, counts, ncols)
    with cms_style() as plt:
        fig = plt.figure(figsize=(2.7 * ncols, height))
        top = 1.0 - HEADER_INCHES / height
        _header_strip(fig, figure, top, height)
        # No sharex: a shared axis places its label from every sibling's tick boxes, 36 x 36 of them.
        axes = fig.subplots(nrows, ncols, squeeze=False)
        fig.subplots_adjust(left=0.045, right=0.99, bottom=0.09, top=top, wspace=0.28, hspace=0.42)
        for i, (ax, hist, med) in enumerate(zip(axes.flat, counts, medians)):
            _panel(ax, edges, hist, med)
            ax.set_xlim(*ranges[i % ncols])
        for ax in list(axes.flat)[n:]:
            ax.set_visible(False)
        _label_axes(axes, f"Events / {edges[1] - edges[0]:.2g} GeV")
        return save_figure(fig, figure.stem, tight=False, formats=formats)


def _header_strip(fig: Any, figure: MedianFigure, top: float, height: float) -> None:
    """The header first, on a frameless strip above the grid (``top``, of a figure ``height`` inches tall), clear of the
    first row's titles: mplhep draws the figure to measure "CMS", which costs nothing before the panels exist."""
    strip = fig.add_axes((0.045, top + 0.37 / height, 0.99 - 0.045, 0.05 / height))
    strip.set_axis_off()
    cms_label(strip, figure.simulation, figure.header.right(), fontsize=18)
    strip.text(0.5, 1.0, "Predicted mass resolution per category; red line: median", transform=strip.transAxes,
               ha="center", va="bottom", fontsize=16)  # fmt: skip


def _panel(ax: Any, edges: np.ndarray, hist: np.ndarray, med: CategoryMedian) -> None:
    """One category's distribution, its median as a red line with its value, its name and size as the title."""
    from matplotlib.ticker import MaxNLocator

    ax.stairs(hist, edges, fill=True, color=FILL_COLOR, alpha=0.8)
    if math.isfinite(med.median_val_NonCal):
        ax.axvline(med.median_val_NonCal, color=MEDIAN_COLOR, lw=1.5)
        ax.text(0.97, 0.93, f"median {med.median_val_NonCal:.3f}", transform=ax.transAxes, ha="right", va="top",
                fontsize=10, color=MEDIAN_COLOR)  # fmt: skip
    # An explicit y: matplotlib otherwise places each title above the axis's tick labels
    # by measuring them (a third of the figure's cost); this style has none on top.
    ax.set_title(f"{med.cat_name}   N = {med.n_events:,}", fontsize=12, y=1.0)
    ax.minorticks_off()
    ax.tick_params(which="both", top=False, right=False, labelsize=10, length=4)
    ax.yaxis.set_major_locator(MaxNLocator(3, integer=True))
    ax.xaxis.set_major_locator(MaxNLocator(5))
    ax.set_ylim(0.0, 1.25 * max(float(np.max(hist)) if hist.size else 0.0, 1.0))


def _label_axes(axes: np.ndarray, ylabel: str) -> None:
    """Each column's x axis labelled once, under its lowest shown panel (one range per column); ``ylabel`` on the first column."""
    for column in range(axes.shape[1]):
        shown = [ax for ax in axes[:, column] if ax.get_visible()]
        for ax in shown[:-1]:
            ax.tick_params(labelbottom=False)
        if shown:
            shown[-1].set_xlabel(r"$\sigma_{pred}$ [GeV]", fontsize=12)
    for ax in axes[:, 0]:
        ax.set_ylabel(ylabel, fontsize=11)
