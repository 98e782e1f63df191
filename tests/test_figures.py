"""The figure queue: figures drawn by low-priority local processes (or in-process), failures logged, never fatal."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import numpy as np
import pytest

from lib.figures import FIGURE_NICENESS, FigureQueue, FitFigure, MedianFigure
from lib.medians import CategoryMedian
from lib.plots.cms import Header, centre_of_mass, cms_style
from tests.test_fitting import synthetic_result

pytest.importorskip("mplhep")


def _grid(stem: Path) -> MedianFigure:
    edges = np.linspace(0.5, 3.0, 26)
    counts = np.vstack([np.exp(-0.5 * ((0.5 * (edges[1:] + edges[:-1]) - 1.0 - 0.1 * i) / 0.2) ** 2) * 100 for i in range(4)])
    medians = tuple(CategoryMedian(f"30-45_B{r}", 100, 100.0, 1.0 + 0.1 * i, 0.01) for i, r in enumerate("BOEB"))
    return MedianFigure(edges, counts, medians, stem, Header("Data 2018", "2018"))


def _fit(stem: Path) -> FitFigure:
    return FitFigure(synthetic_result(), stem, Header(f"Data 2018 {stem.name.removeprefix('fit_')}", "2018"))


@pytest.mark.parametrize("workers", [0, 2])
def test_queued_figures_are_written_by_wait(tmp_path: Path, workers: int):
    with FigureQueue(workers) as queue:
        queue.submit(_grid(tmp_path / "grid"))
        queue.submit(_fit(tmp_path / "fits" / "fit_30-45_OB"))
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
        queue.submit(_fit(tmp_path / "fits" / "fit_30-45_OB"))
        queue.wait()
        written = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.*"))
    assert written == [f"fits/fit_30-45_OB.{formats[0]}", f"grid.{formats[0]}"]


def test_a_redrawn_figure_leaves_no_file_of_a_format_not_drawn(tmp_path: Path):
    """A --fixCat with --plot-formats png: the category's older PDF would show the replaced fit."""
    stem = tmp_path / "fits" / "fit_30-45_OB"
    with FigureQueue(0) as queue:
        queue.submit(_fit(stem))
        queue.wait()
    assert stem.with_suffix(".pdf").exists()
    with FigureQueue(0, ("png",)) as queue:
        queue.submit(_fit(stem))
        queue.submit(_fit(tmp_path / "fits" / "fit_30-45_OO"))
        queue.wait()
    assert sorted(p.name for p in stem.parent.iterdir()) == ["fit_30-45_OB.png", "fit_30-45_OO.png"]


def test_a_figure_that_fails_is_logged_and_the_others_drawn(tmp_path: Path, caplog):
    blocked = tmp_path / "not_a_directory"
    blocked.write_text("a file where the figure's directory should be")
    with FigureQueue(2) as queue, caplog.at_level(logging.WARNING, logger="lib.figures"):
        queue.submit(_fit(blocked / "fit_30-45_OB"))
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


# The figures' content, tested on their artists.


def _drawn_fit(
    monkeypatch, tmp_path: Path, result, acceptance: bool, header: Header = Header("Data 2018 30-45_EE", "2018"), shared: tuple[str, ...] = ()
):
    """The fit figure's artists after ``plot_fit``, kept instead of written."""
    import lib.plots.fits as fits

    kept = {}

    def keep(drawn, stem, formats):
        kept["drawn"] = drawn
        return []

    monkeypatch.setattr(fits, "_save", keep)
    fits.plot_fit(FitFigure(result, tmp_path / "fit", header, acceptance, shared), ("png",))
    return kept["drawn"]


def _legend(drawn) -> list[str]:
    return [t.get_text() for t in drawn.ax.get_legend().get_texts()]


@pytest.mark.parametrize(
    "peak,acceptance,model",
    [("z", True, r"BW $\otimes$ DCB $\times$ A(m)"), ("z", False, r"BW $\otimes$ DCB"), ("higgs", True, "DCB")],
)
def test_the_fit_legend_names_the_model_with_its_acceptance(tmp_path: Path, monkeypatch, peak: str, acceptance: bool, model: str):
    """A Z fit whose peak is multiplied by the window acceptance says so: a hard edge in the curve is A(m), not the data."""
    result = dataclasses.replace(synthetic_result(), peak=peak)
    assert _legend(_drawn_fit(monkeypatch, tmp_path, result, acceptance)) == ["Data", "Fit: total", model, "Background"]
    no_background = dataclasses.replace(result, curves=dataclasses.replace(result.curves, background=None))
    drawn = _drawn_fit(monkeypatch, tmp_path, no_background, acceptance)
    assert _legend(drawn) == ["Data", model] and drawn.signal is None  # one curve, named after the model


def test_a_radiating_fit_names_its_fsr_component(tmp_path: Path, monkeypatch):
    """With fit.fsr the BW radiates: the legend says so, and the info box gives the radiation's fraction and mean loss."""
    from lib.fitting.result import ParamResult

    base = synthetic_result()
    radiation = (ParamResult("fsr_fraction", 0.137, 0.012, 0.0, 0.5, False, False), ParamResult("fsr_scale", 1.83, 0.21, 0.5, 10.0, False, False))
    chosen = dataclasses.replace(base.chosen, params=(*base.chosen.params, *radiation))
    drawn = _drawn_fit(monkeypatch, tmp_path, dataclasses.replace(base, chosen=chosen, attempts=(chosen,)), True)
    assert r"BW$_{\mathrm{FSR}}$ $\otimes$ DCB $\times$ A(m)" in _legend(drawn)
    assert any("13.7% \u00b1 1.2%" in text.get_text() and "1.83 \u00b1 0.21 GeV" in text.get_text() for row in drawn.info for text in row)


@pytest.mark.parametrize("shared,shown", [(("fsr_scale",), "mean loss 1.83 GeV (shared)"), ((), "mean loss 1.83 GeV (fixed)")])
def test_a_constant_radiation_parameter_says_where_its_value_came_from(tmp_path: Path, monkeypatch, shared, shown):
    """A scale taken from the group's pooled fit reads '(shared)'; one fixed otherwise (fit.params, undetermined) '(fixed)'."""
    from lib.fitting.result import ParamResult

    base = synthetic_result()
    radiation = (ParamResult("fsr_fraction", 0.137, 0.012, 0.0, 0.5, False, False), ParamResult("fsr_scale", 1.83, 0.0, 0.5, 10.0, True, False))
    chosen = dataclasses.replace(base.chosen, params=(*base.chosen.params, *radiation))
    drawn = _drawn_fit(monkeypatch, tmp_path, dataclasses.replace(base, chosen=chosen, attempts=(chosen,)), True, shared=shared)
    texts = [text.get_text() for row in drawn.info for text in row]
    assert any(f"13.7% \u00b1 1.2%, {shown}" in text for text in texts), texts


@pytest.mark.parametrize("with_background", [True, False])
def test_the_legend_leaves_the_numbers_readable(tmp_path: Path, monkeypatch, with_background: bool):
    """The longest legend (the model with A(m)) beside the widest rows of the info block: an effective width with its core."""
    base = synthetic_result()
    effective = dataclasses.replace(base.chosen, width=2.4759, width_err=0.4928)
    result = dataclasses.replace(base, width_definition="effective", chosen=effective, attempts=(effective,))
    if not with_background:
        result = dataclasses.replace(result, curves=dataclasses.replace(result.curves, background=None))
    drawn = _drawn_fit(monkeypatch, tmp_path, result, True)
    with cms_style():  # measured in the fonts the figure is drawn with
        renderer = drawn.fig.canvas.get_renderer()
        legend = drawn.ax.get_legend().get_window_extent(renderer)
        numbers = [text.get_window_extent(renderer) for row in drawn.info for text in row if text.get_text()]
    assert "core" in drawn.info[0][1].get_text() and not [box for box in numbers if box.overlaps(legend)]


def test_the_total_and_signal_curves_can_be_told_apart(tmp_path: Path, monkeypatch):
    """Under a small background the two curves coincide: another colour and a dashed line drawn on top keep both visible."""
    result = synthetic_result()
    drawn = _drawn_fit(monkeypatch, tmp_path, result, True)
    total, signal = drawn.total, drawn.signal
    assert np.array_equal(total.get_ydata(), result.curves.total) and np.array_equal(signal.get_ydata(), result.curves.signal)
    assert total.get_color() != signal.get_color()
    assert (total.get_linestyle(), signal.get_linestyle()) == ("-", "--")
    assert signal.get_zorder() > total.get_zorder()
    assert drawn.changing().index(signal) > drawn.changing().index(total)  # the PNG draws it after the total, too


def test_a_fit_figure_drawn_again_has_the_same_pixels_whatever_the_process_drew_between(tmp_path: Path):
    """A figure's pixels depend only on its content. The legend's model is mathtext, whose parsed form matplotlib caches
    per text and size but not per font setting: a process forgets the entries no figure used lately (a dozen figures
    later), and a backdrop drawn anew for another pull range parses them again, which outside the CMS style gave
    its glyphs ("(x)", "x") in another font."""
    from matplotlib.mathtext import MathTextParser
    from PIL import Image

    import lib.plots.fits as fits

    fits._FIGURES.clear()  # the figure built here, as in a fresh figure process
    figure = FitFigure(synthetic_result(), tmp_path / "first", Header("Data 2018 62-200_BB", "2018"), acceptance=True)
    (first,) = fits.plot_fit(figure, ("png",))
    base = figure.result
    pulls = np.linspace(-6.0, 6.0, base.curves.pulls.size)
    wide_pulls = dataclasses.replace(base, curves=dataclasses.replace(base.curves, pulls=pulls))
    fits.plot_fit(dataclasses.replace(figure, result=wide_pulls, stem=tmp_path / "other"), ("png",))
    MathTextParser._parse_cached.cache_clear()  # what the figures drawn in between leave of the cache
    (again,) = fits.plot_fit(dataclasses.replace(figure, stem=tmp_path / "again"), ("png",))
    assert np.array_equal(np.asarray(Image.open(first)), np.asarray(Image.open(again)))


def _header_texts(texts) -> tuple[str, str, str]:
    """The CMS header's texts among ``texts``: "CMS", the status, the right-hand label."""
    from mplhep.label import ExpLabel, ExpText, LumiText

    (cms,), (text,), (right,) = ([t for t in texts if isinstance(t, kind)] for kind in (ExpLabel, ExpText, LumiText))
    return cms, text, right


@pytest.mark.parametrize("weighted,status", [(False, " Preliminary"), (True, " Simulation Preliminary")])
def test_the_fit_header_reads_cms_status_and_the_energy(tmp_path: Path, monkeypatch, weighted: bool, status: str):
    """A long title (an uncalibrated closure bin of simulation) is set smaller rather than over the status; the next
    figure's short one has the full size again."""
    result = dataclasses.replace(synthetic_result(), weighted=weighted)
    sizes = []
    for title in ("MC 2018 uncalibrated closure_2.5-3.5", "Data 2018 30-45_EE"):
        drawn = _drawn_fit(monkeypatch, tmp_path, result, False, Header(title, "2018"))
        cms, text, right = _header_texts(drawn.ax.texts)
        assert (cms.get_text(), text.get_text(), right.get_text()) == ("CMS", status, f"{title} (13 TeV)")
        with cms_style():
            renderer = drawn.fig.canvas.get_renderer()
            assert text.get_window_extent(renderer).x0 >= cms.get_window_extent(renderer).x1
            assert right.get_window_extent(renderer).x0 > text.get_window_extent(renderer).x1
        sizes.append(right.get_fontsize())
    assert sizes[1] == pytest.approx(18 / 1.1) and (sizes[0] < sizes[1]) == weighted


@pytest.mark.parametrize(
    "year,energy",
    [("2022", "(13.6 TeV)"), ("2022postEE", "(13.6 TeV)"), ("2023BPix", "(13.6 TeV)"), ("2024", "(13.6 TeV)"),
     ("2018", "(13 TeV)"), ("2016preVFP", "(13 TeV)"), ("2018_RERECO", "(13 TeV)"), ("2012", ""), ("demo", ""), ("20221", "")],
)  # fmt: skip
def test_the_header_gives_the_energy_of_the_output_directory_s_year(year: str, energy: str):
    """Run 3 at 13.6 TeV, Run 2 at 13 TeV, whatever era follows the calendar year; a year the table lacks gets no energy."""
    assert centre_of_mass(year) == energy
    assert Header("Data 2018", year).right() == f"Data 2018 {energy}".strip()  # the year key decides, not the text


@pytest.mark.parametrize("year,energy", [("2022", "13.6"), ("2018", "13")])
def test_a_fit_figure_queued_for_a_year_is_drawn_with_that_year_s_energy(tmp_path: Path, monkeypatch, config, year: str, energy: str):
    """The fit stage hands its output directory's year to the figure: a 2022 fit's header says 13.6 TeV, a 2018 one 13 TeV."""
    from types import SimpleNamespace

    from lib.config import resolve_fit_spec
    from lib.peak_fits import FitJob, _queue_figure

    nominal = resolve_fit_spec(config, "30-45_EE", binned=True)
    job = FitJob(SimpleNamespace(nominal=nominal, retries=()), tmp_path / "fit_30-45_EE", f"Data {year} 30-45_EE")
    queued = []
    group = SimpleNamespace(figures=SimpleNamespace(submit=queued.append), out=SimpleNamespace(year=year))
    _queue_figure(group, job, synthetic_result())  # type: ignore[arg-type]
    (figure,) = queued
    drawn = _drawn_fit(monkeypatch, tmp_path, figure.result, figure.acceptance, figure.header)
    assert _header_texts(drawn.ax.texts)[2].get_text() == f"Data {year} 30-45_EE ({energy} TeV)"


def test_a_fit_figure_knows_whether_the_drawn_attempt_has_the_acceptance(tmp_path: Path, monkeypatch, config):
    """The legend follows the attempt the result reports (a retry may use another line shape), through the queue to the plot."""
    from types import SimpleNamespace

    import lib.plots.fits as fits
    from lib.config import resolve_fit_spec
    from lib.peak_fits import FitJob, _queue_figure

    nominal = resolve_fit_spec(config, "30-45_EE", binned=True)
    assert nominal.line_shape == "acceptance"
    plain = nominal.model_copy(update={"line_shape": "breit_wigner", "label": "plain BW (x) DCB"})
    job = FitJob(SimpleNamespace(nominal=nominal, retries=(plain,)), tmp_path / "fit_30-45_EE", "Data 2018 30-45_EE")
    queued = []
    group = SimpleNamespace(figures=SimpleNamespace(submit=queued.append), out=SimpleNamespace(year="2018"))
    base = synthetic_result()
    for label in ("nominal", "plain BW (x) DCB"):
        chosen = dataclasses.replace(base.chosen, label=label)
        _queue_figure(group, job, dataclasses.replace(base, chosen=chosen, attempts=(chosen,)))  # type: ignore[arg-type]
    assert [f.acceptance for f in queued] == [True, False]
    drawn = []
    monkeypatch.setattr(fits, "plot_fit", lambda figure, formats: drawn.append(figure.acceptance) or [])
    with FigureQueue(0, ("png",)) as figures:
        for figure in queued:
            figures.submit(figure)
        figures.wait()
    assert drawn == [True, False]


def _column_grid(nrows: int = 4) -> tuple[np.ndarray, np.ndarray, tuple[CategoryMedian, ...]]:
    """Nine |eta| pairs per pT row: barrel-barrel narrow at 0.8 GeV, endcap-endcap wide at 1.7 GeV, as in data."""
    edges = np.linspace(0.5, 3.0, 51)
    centres = 0.5 * (edges[1:] + edges[:-1])
    centres_of = np.linspace(0.8, 1.7, 9)
    widths = np.linspace(0.07, 0.25, 9)
    counts, medians = [], []
    for row in range(nrows):
        for column, pair in enumerate(("BB", "BO", "BE", "OB", "OO", "OE", "EB", "EO", "EE")):
            size = 20_000 // (row + 1)
            pull = (centres - centres_of[column]) / widths[column]
            counts.append(size * 0.05 / (widths[column] * np.sqrt(2 * np.pi)) * np.exp(-0.5 * pull**2))
            medians.append(CategoryMedian(f"{row}_{pair}", size, float(size), float(centres_of[column]), 0.001))
    return edges, np.vstack(counts), tuple(medians)


def _drawn_grid(monkeypatch, tmp_path: Path, edges, counts, medians, simulation: bool = False, year: str = "2018"):
    import lib.plots.medians as grid

    kept = {}

    def keep(fig, stem, **kwargs):
        import matplotlib.pyplot as plt
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        plt.close(fig)  # as save_figure does
        FigureCanvasAgg(fig)  # a canvas of its own, whose renderer measures the texts
        kept["fig"] = fig
        return []

    monkeypatch.setattr(grid, "save_figure", keep)
    figure = MedianFigure(edges, counts, medians, tmp_path / "grid", Header(f"MC {year}", year), ("png",), simulation)
    grid.plot_sigma_pred_histograms(figure, ("png",))
    return kept["fig"]


@pytest.fixture(scope="module")
def grid_figure(tmp_path_factory):
    """The grid of ``_column_grid``, drawn once for the tests that only look at it."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        return _drawn_grid(monkeypatch, tmp_path_factory.mktemp("grid"), *_column_grid(), simulation=True)


def test_the_step2_grid_has_a_cms_header_clear_of_the_panels(grid_figure):
    fig = grid_figure
    cms, text, right = _header_texts([t for ax in fig.axes for t in ax.texts])
    assert (cms.get_text(), text.get_text(), right.get_text()) == ("CMS", " Simulation Preliminary", "MC 2018 (13 TeV)")
    panels = [ax for ax in fig.axes if ax.get_visible() and ax.axison]
    with cms_style():
        renderer = fig.canvas.get_renderer()
        header = [t.get_window_extent(renderer) for t in (cms, text, right)]
        titles = [ax.title.get_window_extent(renderer) for ax in panels]
    assert not [(h, t) for h in header for t in titles if h.overlaps(t)]
    assert all(h.y1 <= fig.bbox.y1 for h in header)  # inside the figure


def test_each_grid_column_has_the_range_its_panels_fill(grid_figure):
    """The narrow barrel columns are not squeezed into the range the endcaps need; a column shares one range, labelled once."""
    edges, counts, medians = _column_grid()
    fig = grid_figure
    panels = np.array([ax for ax in fig.axes if ax.axison][:36]).reshape(4, 9)
    spans = [panels[0, c].get_xlim() for c in range(9)]
    assert all(panels[r, c].get_xlim() == spans[c] for r in range(4) for c in range(9))
    widths = [high - low for low, high in spans]
    assert widths[0] < 0.4 * widths[8] and widths[8] < edges[-1] - edges[0]
    centres = 0.5 * (edges[1:] + edges[:-1])
    for ax, hist, med in zip(panels.flat, counts, medians):
        low, high = ax.get_xlim()
        assert low < med.median_val_NonCal < high
        assert hist[(centres > low) & (centres < high)].sum() >= 0.995 * hist.sum()
    labelled = [[any(t.label1.get_visible() for t in ax.xaxis.get_major_ticks()) for ax in row] for row in panels]
    assert labelled == [[False] * 9] * 3 + [[True] * 9]


def test_an_incomplete_last_grid_row_leaves_no_column_unlabelled(tmp_path: Path, monkeypatch):
    edges, counts, medians = _column_grid(1)
    extra = dataclasses.replace(medians[0], cat_name="extra")
    fig = _drawn_grid(monkeypatch, tmp_path, edges, np.vstack([counts, counts[:1]]), (*medians, extra))
    panels = [ax for ax in fig.axes if ax.axison and ax.get_visible()]
    assert len(panels) == 10  # 6 columns: a full row and four panels under the first four
    assert [ax.get_xlabel() != "" for ax in panels] == [False] * 4 + [True] * 6
