"""Step-2 figure: the sigma_pred distribution of every category, with its median marked.

One panel per category, rows the pT bins. Every panel keeps a y axis with a few labelled ticks
(events per bin), since the categories differ by a factor of 500 in size. It is drawn with
fixed margins and no minor ticks: ``tight_layout`` and the CMS style's minor ticks on four sides
of 36 panels cost 10 s of a 13 s step 2 before.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np

from lib.medians import CategoryMedian
from lib.plots.save import PLOT_FORMATS, save_figure

__all__ = ["plot_sigma_pred_histograms"]

FILL_COLOR = "#5790fc"
MEDIAN_COLOR = "#e42536"


def plot_sigma_pred_histograms(
    edges: np.ndarray, counts: np.ndarray, medians: Sequence[CategoryMedian], path_stem: Path, label: str,
    formats: tuple[str, ...] = PLOT_FORMATS,
) -> list[Path]:  # fmt: skip
    """One panel per category in a grid (rows: pT bins), written in ``formats`` (PNG and PDF)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import mplhep
    from matplotlib.ticker import MaxNLocator

    n = len(medians)
    ncols = 9 if n % 9 == 0 else min(n, 6)
    nrows = math.ceil(n / ncols)
    with plt.style.context(mplhep.style.CMS):
        # No sharex: a shared axis places its label from every sibling's tick boxes, 36 x 36 of them.
        fig, axes = plt.subplots(nrows, ncols, figsize=(2.7 * ncols, 2.5 * nrows + 0.8), squeeze=False)
        for ax, hist, med in zip(axes.flat, counts, medians):
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
            ax.set_xlim(edges[0], edges[-1])
        for ax in list(axes.flat)[n:]:
            ax.set_visible(False)
        for ax in axes[:-1].flat:
            ax.tick_params(labelbottom=False)  # same x range in every row: labelled once, at the bottom
        for ax in axes[-1]:
            ax.set_xlabel(r"$\sigma_{pred}$ [GeV]", fontsize=12)
        for ax in axes[:, 0]:
            ax.set_ylabel(f"Events / {edges[1] - edges[0]:.2g} GeV", fontsize=11)
        fig.suptitle(f"Predicted mass resolution per category ({label}); red line: median", fontsize=16)
        fig.subplots_adjust(left=0.045, right=0.99, bottom=0.09, top=1.0 - 0.9 / (2.5 * nrows + 0.8), wspace=0.28, hspace=0.42)
    return save_figure(fig, path_stem, dpi=100, tight=False, formats=formats)
