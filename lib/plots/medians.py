"""Step-2 figure: the sigma_pred distribution of every category, with its median marked."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np

from lib.plots.save import save_figure
from lib.medians import CategoryMedian

__all__ = ["plot_sigma_pred_histograms"]


def plot_sigma_pred_histograms(
    edges: np.ndarray, counts: np.ndarray, medians: Sequence[CategoryMedian], path_stem: Path, label: str
) -> list[Path]:
    """One small panel per category in a grid (rows: pT bins), written as PNG and PDF."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import mplhep

    n = len(medians)
    ncols = 9 if n % 9 == 0 else min(n, 6)
    nrows = math.ceil(n / ncols)
    with plt.style.context(mplhep.style.CMS):
        fig, axes = plt.subplots(nrows, ncols, figsize=(2.6 * ncols, 2.2 * nrows), sharex=True, squeeze=False)
        for ax, hist, med in zip(axes.flat, counts, medians):
            mplhep.histplot(hist, edges, ax=ax, histtype="fill", color="#5790fc", alpha=0.8)
            if math.isfinite(med.median_val_NonCal):
                ax.axvline(med.median_val_NonCal, color="#e42536", lw=1.5)
            ax.set_title(f"{med.cat_name}  N={med.n_events}", fontsize=10)
            ax.tick_params(labelsize=8)
            ax.set_yticks([])
        for ax in list(axes.flat)[n:]:
            ax.set_visible(False)
        for ax in axes[-1]:
            ax.set_xlabel(r"$\sigma_{pred}$ [GeV]", fontsize=10)
        fig.suptitle(f"Predicted mass resolution per category ({label}); red: median", fontsize=14)
        fig.tight_layout()
    return save_figure(fig, path_stem, dpi=110)
