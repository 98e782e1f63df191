"""Step 2: the medians table of sigma_pred per category, and its figure (queued: drawn while the fits run)."""

from __future__ import annotations

from pathlib import Path

from lib.config import Config
from lib.figures import FigureQueue, MedianFigure
from lib.histograms import CategoryHistograms
from lib.io.tables import write_csv
from lib.medians import CategoryMedian, sigma_pred_histograms
from lib.options import RunOptions

__all__ = ["MEDIAN_CSV", "write_step2"]

MEDIAN_CSV = "median_for_cats.csv"


def write_step2(
    out_dir: Path, medians: list[CategoryMedian], hists: CategoryHistograms, config: Config, options: RunOptions, year: str,
    figures: FigureQueue,
) -> None:  # fmt: skip
    """Write the medians table and queue its figure."""
    write_csv(out_dir / MEDIAN_CSV, [m.row() for m in medians])
    if options.plots:
        edges, counts = sigma_pred_histograms(hists, config.step2)
        # Two figure processes draw its PNG and its PDF side by side; one draws both from one figure.
        formats = [(f,) for f in options.plot_formats] if figures.workers >= 2 else [options.plot_formats]
        for extensions in formats:
            figures.submit(
                MedianFigure(edges, counts, tuple(medians), out_dir / "sigma_pred_per_category", f"{options.sample_label} {year}", extensions)
            )
