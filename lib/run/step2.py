"""Step 2's figure: the sigma_pred distribution of every category with its median (queued: drawn while the fits run)."""

from __future__ import annotations

from lib.config import Config
from lib.figures import FigureQueue, MedianFigure
from lib.histograms import CategoryHistograms
from lib.medians import sigma_pred_histograms
from lib.outputs import SAMPLE_LABELS, OutputDir
from lib.request import Figures
from lib.results import Medians

__all__ = ["queue_median_figure"]


def queue_median_figure(
    medians: Medians, hists: CategoryHistograms, config: Config, out: OutputDir, figures: Figures, queue: FigureQueue
) -> None:  # fmt: skip
    """Queue the step-2 grid; two figure processes draw its PNG and its PDF side by side, one draws both from one figure."""
    edges, counts = sigma_pred_histograms(hists, config.step2)
    formats = [(f,) for f in figures.formats] if queue.workers >= 2 else [figures.formats]
    for extensions in formats:
        queue.submit(
            MedianFigure(edges, counts, medians.rows, out.figure_stem("medians"), f"{out.sample} {out.year}", extensions,
                         simulation=out.sample == SAMPLE_LABELS[1])
        )  # fmt: skip
