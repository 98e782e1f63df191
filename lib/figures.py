"""Figures beside the numbers: a queue of local processes at the lowest CPU priority, fed as each result arrives.

A figure never delays a result: queued as soon as its numbers exist, it gets only the cycles no
fit wants, and what is left is drawn after step 3. Every figure is written by the client.
"""

from __future__ import annotations

import importlib
import logging
import os
import time
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Sequence

import numpy as np

from lib.closure import ClosureBin
from lib.config import Config, Step2Config
from lib.console import os_error_line
from lib.executor import run_in_worker, stop_pool, worker_pool
from lib.fitting.result import FitResult
from lib.histograms import CategoryHistograms
from lib.medians import CategoryMedian, sigma_pred_histograms
from lib.outputs import SAMPLE_LABELS, OutputDir
from lib.plots.cms import Header
from lib.plots.save import PLOT_FORMATS, discard_other_formats
from lib.results import ClosureResult, Validation

log = logging.getLogger(__name__)

# The lowest CPU priority: a figure process competing with a fit gets a few percent of a core.
FIGURE_NICENESS = 19


@dataclass(frozen=True)
class FitFigure:
    """One fit's plot: the result's arrays, where to write it, its header, whether the drawn model has the acceptance A(m)
    and which radiation parameters the fit took from its group's pooled fit (``fit.fsr_parameters``)."""

    result: FitResult
    stem: Path
    header: Header
    acceptance: bool = False
    shared: tuple[str, ...] = ()

    def draw(self, formats: tuple[str, ...]) -> list[Path]:
        """The plot in ``formats``; the written paths."""
        from lib.plots.fits import plot_fit

        return plot_fit(self, formats)


@dataclass(frozen=True, eq=False)
class MedianFigure:
    """Step 2's grid of sigma_pred distributions in ``formats`` (of the run's): two figure processes draw its PNG and
    PDF as two figures side by side, halving the wait of ``--steps step2``."""

    edges: np.ndarray
    counts: np.ndarray
    medians: tuple[CategoryMedian, ...]
    stem: Path
    header: Header
    formats: tuple[str, ...] = PLOT_FORMATS
    simulation: bool = False

    def draw(self, formats: tuple[str, ...]) -> list[Path]:
        """The grid in those of its own formats that are among the run's ``formats``; the written paths."""
        from lib.plots.medians import plot_sigma_pred_histograms

        chosen = tuple(f for f in self.formats if f in formats)
        return plot_sigma_pred_histograms(self, chosen) if chosen else []


@dataclass(frozen=True)
class ClosureFigure:
    """A validation's summary figure: the judged bins of each pass (``before`` may be empty), the tolerance band and
    the minimum of events they were judged with."""

    before: tuple[ClosureBin, ...]
    after: tuple[ClosureBin, ...]
    stem: Path
    header: Header
    simulation: bool
    tolerance: float
    min_events: int

    def draw(self, formats: tuple[str, ...]) -> list[Path]:
        """The figure in ``formats``; the written paths."""
        from lib.plots.closure import plot_closure

        return plot_closure(self, formats)


Figure = FitFigure | MedianFigure | ClosureFigure


def draw_figure(figure: Figure, formats: tuple[str, ...]) -> list[Path]:
    """Draw one figure in the run's ``formats``, return the written paths; its files of other formats (older numbers) are removed."""
    discard_other_formats(figure.stem, formats)
    return figure.draw(formats)


def _start_figure_worker() -> None:
    """Figure process start: the lowest priority, then matplotlib imported. Never raises: a failing initializer
    breaks the whole pool, and a process without matplotlib imports it with its first figure."""
    try:
        os.nice(FIGURE_NICENESS)
    except OSError:  # pragma: no cover - a platform without nice: figures then share the cores evenly
        pass
    try:
        import matplotlib

        matplotlib.use("Agg")
        for module in ("matplotlib.pyplot", "mplhep"):  # imported now, at low priority, while the files are read and fitted
            importlib.import_module(module)
    except Exception:  # noqa: BLE001 - see the docstring
        pass


class FigureQueue:
    """Draws the figures handed to ``submit`` as ``formats`` files on ``workers`` local processes (0: in this process, at ``wait``).

    A run without figures starts no process. A figure never fails the run: one that raises is
    logged and skipped; after a figure process died the figures still to come are dropped with
    one warning (their numbers are on disk already).
    """

    def __init__(self, workers: int, formats: tuple[str, ...] = PLOT_FORMATS) -> None:
        self.workers = workers
        self.formats = formats
        self._pool: ProcessPoolExecutor | None = None
        self._pending: list[tuple[str, Future | Figure]] = []
        self._broken = False

    def start(self) -> None:
        """Start the figure processes now, to import matplotlib while the files are read.

        A second pool beside the fit workers': those are forked from a server that loads ROOT and
        fits once first, which a run drawing only the step-2 grid would wait for; these are spawned.
        """
        if self.workers == 0 or self._pool is not None or self._broken:
            return
        self._pool = worker_pool(self.workers, "spawn", initializer=_start_figure_worker)
        for _ in range(self.workers):
            self._pool.submit(os.getpid)  # a process per task until all are running

    def submit(self, figure: Figure) -> None:
        """Queue ``figure``; it is drawn as soon as a figure process has a free cycle."""
        if self.workers == 0:
            self._pending.append((figure.stem.name, figure))
            return
        self.start()
        if self._pool is None:
            return
        try:
            self._pending.append((figure.stem.name, self._pool.submit(run_in_worker, draw_figure, figure, self.formats)))
        except (BrokenProcessPool, RuntimeError) as err:
            log.warning("a figure process died (%s): the run's remaining figures are not drawn", type(err).__name__)
            self._broken = True
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def wait(self) -> float:
        """Block until every queued figure is drawn (or failed); return the seconds waited.

        Figures the file system refused (a full disk) are one warning, naming the first and the cause.
        """
        start = time.monotonic()
        refused: list[tuple[str, OSError]] = []
        for name, item in self._pending:
            try:
                if isinstance(item, Future):
                    item.result()
                else:
                    draw_figure(item, self.formats)
            except OSError as err:
                refused.append((name, err))
            except Exception as err:  # noqa: BLE001 - a figure never fails the run; see the class docstring
                log.warning("figure %s was not drawn: %s", name, f"{type(err).__name__}: {err}")
        if refused:
            others = f" (and {len(refused) - 1} more figures)" if len(refused) > 1 else ""
            log.warning("figure %s%s was not drawn: %s", refused[0][0], others, os_error_line(refused[0][1]))
        drawn = len(self._pending)
        self._pending = []
        seconds = time.monotonic() - start
        if drawn:
            log.info("figures: %d drawn, %.1f s waited for them after the numbers", drawn, seconds)
        return seconds

    def close(self, now: bool = False) -> None:
        """Stop the figure processes once their current figures are drawn (``now``: at once, their temp files removed); the rest are dropped."""
        if self._pool is not None:
            if now:
                stop_pool(self._pool)
            else:
                self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        self._pending = []

    def __enter__(self) -> "FigureQueue":
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None) -> None:
        """On an error in a later step, still draw what is queued (its numbers are written, and the error may point at
        a fit's plot); on Ctrl-C, SIGTERM or SIGHUP stop at once."""
        if isinstance(error, Exception):
            self.wait()
        self.close(now=error is not None and not isinstance(error, Exception))


def _header(out: OutputDir, prefix: str = "") -> Header:
    """The header of a summary figure of ``out``: its sample and year (after ``prefix``), with that year's energy."""
    return Header(f"{prefix}{out.sample} {out.year}", out.year)


def queue_median_figure(
    queue: FigureQueue, medians: Sequence[CategoryMedian], hists: CategoryHistograms, step2: Step2Config, out: OutputDir
) -> None:  # fmt: skip
    """Queue step 2's grid of ``out``; two figure processes draw its PNG and its PDF side by side, one draws both from one figure."""
    edges, counts = sigma_pred_histograms(hists, step2)
    simulation = out.sample == SAMPLE_LABELS[1]
    for formats in [(f,) for f in queue.formats] if queue.workers >= 2 else [queue.formats]:
        queue.submit(MedianFigure(edges, counts, tuple(medians), out.figure_stem("medians"), _header(out), formats, simulation))


def queue_validation_figures(queue: FigureQueue, closure: ClosureResult, higgs: Validation | None, config: Config, out: OutputDir) -> None:
    """Queue the closure's summary figure (before and after) and the Higgs check's, each with its own tolerance and minimum of events."""
    simulation = out.sample == SAMPLE_LABELS[1]
    queue.submit(ClosureFigure(closure.before.bins, closure.after.bins, out.figure_stem("closure"), _header(out), simulation,
                               config.closure.tolerance, config.closure.min_events))  # fmt: skip
    if higgs is not None:
        # The signal sample is simulation, whichever factors it tests.
        queue.submit(ClosureFigure((), higgs.bins, out.figure_stem("higgs"), _header(out, "H "), True, config.higgs.tolerance,
                                   config.higgs.min_events))  # fmt: skip
