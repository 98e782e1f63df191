"""Figures as tasks: drawn after the numbers are written, in parallel on the fits' executor.

A figure never delays a result. Step 1 used to draw each category's plot in the fit worker
right after its fit, so the 36 figures (PNG + PDF) sat on the path to the correction JSON and
doubled its wall time; here the fits, the tables and the JSON come first, then every figure of
the run is one task on the same workers (each worker re-uses its figure, ``lib.plots.fits``).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from lib.executor import TaskCrash, TaskExecutor
from lib.fitting.result import FitResult
from lib.medians import CategoryMedian

__all__ = ["FitFigure", "MedianFigure", "draw_figure", "draw_figures"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FitFigure:
    """One fit's plot: the result's arrays, where to write it and its right-hand title."""

    result: FitResult
    stem: Path
    title: str


@dataclass(frozen=True, eq=False)
class MedianFigure:
    """Step 2's grid of sigma_pred distributions, one panel per category."""

    edges: np.ndarray
    counts: np.ndarray
    medians: tuple[CategoryMedian, ...]
    stem: Path
    label: str


def draw_figure(figure: FitFigure | MedianFigure) -> list[Path]:
    """Worker entry: draw one figure (PNG and PDF), return the written paths."""
    if isinstance(figure, FitFigure):
        from lib.plots.fits import plot_fit

        return plot_fit(figure.result, figure.stem, figure.title)
    from lib.plots.medians import plot_sigma_pred_histograms

    return plot_sigma_pred_histograms(figure.edges, figure.counts, figure.medians, figure.stem, figure.label)


def draw_figures(executor: TaskExecutor, figures: Sequence[FitFigure | MedianFigure]) -> float:
    """Draw ``figures`` on ``executor`` (the step-2 grid first: it is the longest); return the wall seconds.

    A figure whose worker died is logged and skipped: the numbers it shows are already on disk.
    """
    if not figures:
        return 0.0
    start = time.monotonic()
    ordered = sorted(figures, key=lambda f: not isinstance(f, MedianFigure))
    names = [f.stem.name for f in ordered]
    for name, drawn in zip(names, executor.map(draw_figure, ordered, names, progress="figures")):
        if isinstance(drawn, TaskCrash):
            log.warning("figure %s was not drawn: %s", name, drawn.reason)
    return time.monotonic() - start
