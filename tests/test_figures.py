"""The figure queue: figures drawn by low-priority local processes (or in-process), failures logged, never fatal."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import numpy as np
import pytest

from lib.figures import FIGURE_NICENESS, FigureQueue, FitFigure, MedianFigure
from lib.medians import CategoryMedian
from tests.test_fitting import synthetic_result

pytest.importorskip("mplhep")


def _grid(stem: Path) -> MedianFigure:
    edges = np.linspace(0.5, 3.0, 26)
    counts = np.vstack([np.exp(-0.5 * ((0.5 * (edges[1:] + edges[:-1]) - 1.0 - 0.1 * i) / 0.2) ** 2) * 100 for i in range(4)])
    medians = tuple(CategoryMedian(f"30-45_B{r}", 100, 100.0, 1.0 + 0.1 * i, 0.01) for i, r in enumerate("BOEB"))
    return MedianFigure(edges, counts, medians, stem, "Data 2018")


@pytest.mark.parametrize("workers", [0, 2])
def test_queued_figures_are_written_by_wait(tmp_path: Path, workers: int):
    with FigureQueue(workers) as queue:
        queue.submit(_grid(tmp_path / "grid"))
        queue.submit(FitFigure(synthetic_result(), tmp_path / "fits" / "fit_30-45_OB", "2018 Data 30-45_OB"))
        queue.wait()
        written = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.*"))
    assert written == ["fits/fit_30-45_OB.pdf", "fits/fit_30-45_OB.png", "grid.pdf", "grid.png"]


@pytest.mark.parametrize("workers", [0, 2])
@pytest.mark.parametrize("formats", [("png",), ("pdf",)])
def test_a_run_writes_only_its_plot_formats(tmp_path: Path, workers: int, formats: tuple[str, ...]):
    """--plot-formats png (a quick look, the report's images) or pdf: the other kind is not drawn at all."""
    with FigureQueue(workers, formats) as queue:
        for kind in ("png", "pdf"):  # the step-2 grid is queued once per format when two processes draw
            queue.submit(dataclasses.replace(_grid(tmp_path / "grid"), formats=(kind,)))
        queue.submit(FitFigure(synthetic_result(), tmp_path / "fits" / "fit_30-45_OB", "2018 Data 30-45_OB"))
        queue.wait()
        written = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.*"))
    assert written == [f"fits/fit_30-45_OB.{formats[0]}", f"grid.{formats[0]}"]


def test_a_redrawn_figure_leaves_no_file_of_a_format_not_drawn(tmp_path: Path):
    """A --fixCat with --plot-formats png: the category's older PDF would show the replaced fit."""
    stem = tmp_path / "fits" / "fit_30-45_OB"
    with FigureQueue(0) as queue:
        queue.submit(FitFigure(synthetic_result(), stem, "2018 Data 30-45_OB"))
        queue.wait()
    assert stem.with_suffix(".pdf").exists()
    with FigureQueue(0, ("png",)) as queue:
        queue.submit(FitFigure(synthetic_result(), stem, "2018 Data 30-45_OB"))
        queue.submit(FitFigure(synthetic_result(), tmp_path / "fits" / "fit_30-45_OO", "2018 Data 30-45_OO"))
        queue.wait()
    assert sorted(p.name for p in stem.parent.iterdir()) == ["fit_30-45_OB.png", "fit_30-45_OO.png"]


def test_a_figure_that_fails_is_logged_and_the_others_drawn(tmp_path: Path, caplog):
    blocked = tmp_path / "not_a_directory"
    blocked.write_text("a file where the figure's directory should be")
    with FigureQueue(2) as queue, caplog.at_level(logging.WARNING, logger="lib.figures"):
        queue.submit(FitFigure(synthetic_result(), blocked / "fit_30-45_OB", "2018 Data 30-45_OB"))
        queue.submit(_grid(tmp_path / "grid"))
        queue.wait()
    assert (tmp_path / "grid.png").exists() and (tmp_path / "grid.pdf").exists()
    assert [r.getMessage().split(":")[0] for r in caplog.records] == ["figure fit_30-45_OB was not drawn"]


def test_figure_processes_run_at_the_lowest_priority(tmp_path: Path):
    """A figure competing with a fit must only take the cycles no fit wants."""
    import os
    from concurrent.futures import ProcessPoolExecutor

    import lib.figures as figures

    with FigureQueue(1) as queue:
        queue.submit(_grid(tmp_path / "grid"))  # starts the pool
        pool: ProcessPoolExecutor = queue._pool  # type: ignore[assignment]
        niceness = pool.submit(os.nice, 0).result()
        queue.wait()
    assert niceness == min(19, os.nice(0) + figures.FIGURE_NICENESS) and FIGURE_NICENESS > 0


def test_a_dead_figure_process_drops_the_remaining_figures_with_one_warning(tmp_path: Path, caplog):
    import os
    import signal
    import time

    with FigureQueue(1) as queue, caplog.at_level(logging.WARNING, logger="lib.figures"):
        queue.start()
        pid = queue._pool.submit(os.getpid).result()  # type: ignore[union-attr]
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while not queue._pool._broken and time.monotonic() < deadline:  # type: ignore[union-attr]
            time.sleep(0.05)
        for i in range(2):
            queue.submit(_grid(tmp_path / f"grid{i}"))  # must not raise: the numbers are written already
        queue.wait()
    assert [r.getMessage() for r in caplog.records if "figure process died" in r.getMessage()]
    assert len([r for r in caplog.records if "figure process died" in r.getMessage()]) == 1


def test_an_error_in_a_later_step_still_draws_the_queued_figures(tmp_path: Path):
    with pytest.raises(ValueError, match="step 3"):
        with FigureQueue(1) as queue:
            queue.submit(_grid(tmp_path / "grid"))
            raise ValueError("step 3 failed")
    assert (tmp_path / "grid.png").exists() and (tmp_path / "grid.pdf").exists()
