"""The closure figure, tested on its artists: every tested point shown, off-scale ones as labelled arrows whose labels
never overlap, untested bins apart, and the CMS header."""

from __future__ import annotations

from itertools import combinations
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

import lib.plots.closure as closure_plot
from lib.closure import bin_state
from lib.figures import ClosureFigure, queue_validation_figures
from lib.outputs import OutputDir
from lib.plots.cms import Header, cms_style

pytest.importorskip("mplhep")

TESTED = "pass"
UNTESTED = "not tested: 108 < 300 events"


def _row(low: float, ratio: float, verdict: str = TESTED, width: float = 0.1, quality: str = "ok") -> SimpleNamespace:
    median = low + width / 2
    return SimpleNamespace(low=low, high=low + width, median_val=median, fit_val=ratio * median, fit_err=0.01, ratio=ratio,
                           ratio_err=0.01, fit_quality=quality, verdict=verdict,
                           state=bin_state(quality, verdict, ratio))  # fmt: skip


def _draw(monkeypatch, tmp_path, before, after, tolerance: float = 0.1, min_events: int = 300, simulation: bool = False) -> Any:
    """The closure figure of Data 2018, kept open instead of written."""
    header = Header("Data 2018", "2018")
    return _drawn(monkeypatch, ClosureFigure(tuple(before), tuple(after), tmp_path / "closure", header, simulation, tolerance, min_events))


def _drawn(monkeypatch, figure: ClosureFigure) -> Any:
    """``figure`` drawn, kept open instead of written."""
    drawn = {}

    def keep(fig, stem, **_):
        import matplotlib.pyplot as plt
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        plt.close(fig)  # as save_figure does
        FigureCanvasAgg(fig)  # a canvas of its own, whose renderer measures the texts
        drawn["fig"] = fig
        return []

    monkeypatch.setattr(closure_plot, "save_figure", keep)
    closure_plot.plot_closure(figure)
    return drawn["fig"]


def _arrows(ax) -> list[Any]:
    from matplotlib.text import Annotation

    return [t for t in ax.texts if isinstance(t, Annotation) and t.arrow_patch is not None]


def _labels(ax) -> list[Any]:
    from matplotlib.text import Annotation

    return [t for t in ax.texts if not isinstance(t, Annotation)]


def _calibrated(n: int, start: float = 0.6, width: float = 0.1) -> list[SimpleNamespace]:
    return [_row(start + width * i, 1.0 + 0.03 * (-1) ** i, width=width) for i in range(n)]


def test_the_ratio_panel_fits_the_calibrated_points_and_shows_the_others_as_labelled_arrows(tmp_path, monkeypatch):
    after = _calibrated(4)
    before = [_row(0.6, 1.34), _row(0.7, 1.36), _row(0.8, 1.05), _row(0.9, 0.55, "fail")]
    fig = _draw(monkeypatch, tmp_path, before, after)
    rax = fig.axes[1]
    low, high = rax.get_ylim()
    assert (low, high) == (-0.2, 0.2)  # the calibrated +-3 % fill its inner part; +-30 % would squeeze them
    # Every tested point inside the range is a point with its error: 4 calibrated, 1 uncalibrated.
    shown = sorted(round(float(y), 3) for c in rax.containers for y in c.lines[0].get_ydata())
    assert shown == [-0.03, -0.03, 0.03, 0.03, 0.05]
    # The three beyond it are arrows at the edge their way, inside the panel, and their values are written.
    tips = sorted((float(a.xy[0]), float(a.xy[1])) for a in _arrows(rax))
    assert [x for x, _ in tips] == pytest.approx([0.65, 0.75, 0.95])
    assert [tip > 0.5 for _, tip in tips] == [True, True, False] and all(0.0 < tip < 1.0 for _, tip in tips)
    assert sorted(t.get_text() for t in _labels(rax)) == ["+34 to +36 %", "-45 %"]


def test_the_ratio_range_grows_with_the_calibrated_points():
    assert closure_plot.ratio_half_range(_calibrated(3)) == 0.2
    # A calibrated bin at +17 % fits a +-20 % panel, unless uncalibrated ones beyond it need their labels' room.
    wide = [_row(0.6, 1.17), *_calibrated(2, 0.7)]
    assert closure_plot.ratio_half_range(wide) == 0.2
    assert closure_plot.ratio_half_range(wide, [_row(0.6, 1.19), _row(0.7, 1.25)]) == 0.3  # all shown
    assert closure_plot.ratio_half_range(wide, [_row(0.6, 1.19), _row(0.7, 1.34)]) == 0.5
    assert closure_plot.ratio_half_range(wide, [_row(0.6, 1.19), _row(0.7, 1.25, UNTESTED)]) == 0.2  # an untested bin has no label
    far = [_row(0.6, 1.58, "fail"), *_calibrated(2, 0.7)]
    assert closure_plot.ratio_half_range(far) == closure_plot.ratio_half_range(far, [_row(0.6, 2.6)]) == 1.0  # the largest
    # An untested or unfitted calibrated bin does not set the range.
    unfitted = _row(0.7, float("nan"), "fail", quality="failed")
    assert closure_plot.ratio_half_range([_row(0.6, 1.41, UNTESTED), unfitted, *_calibrated(2, 0.8)]) == 0.2


def _pattern(name: str, n: int) -> list[float]:
    """Uncalibrated ratios of ``n`` neighbouring bins: all off-scale, or every other one, on one edge or both."""
    if name == "all above":
        return [1.30 + 0.01 * i for i in range(n)]
    if name == "every other":
        return [1.34 + 0.002 * i if i % 2 else 1.05 for i in range(n)]
    if name == "every third":
        return [1.34 + 0.01 * i if i % 3 else 1.0 for i in range(n)]
    return [(1.34 if i % 4 < 2 else 0.62) + 0.003 * i if i % 2 else 1.0 for i in range(n)]


@pytest.mark.parametrize("width", [0.1, 0.04])
@pytest.mark.parametrize("pattern", ["all above", "every other", "every third", "both edges", "both passes"])
def test_labels_of_neighbouring_off_scale_points_never_overlap(tmp_path, monkeypatch, pattern: str, width: float):
    n = 30
    ratios = _pattern(pattern, n)
    before = [_row(0.6 + width * i, ratio, "fail", width=width) for i, ratio in enumerate(ratios)]
    after = _calibrated(n, 0.6, width)
    if pattern == "both passes":  # calibrated points far off too: the panel spans +-100 %, the rest beyond it
        ratios = [2.2 + 0.01 * i if i % 2 else 1.0 for i in range(n)]
        before = [_row(0.6 + width * i, ratio, "fail", width=width) for i, ratio in enumerate(ratios)]
        after[3::4] = [_row(0.6 + width * i, 2.5 + 0.01 * i, "fail", width=width) for i in range(3, n, 4)]
    fig = _draw(monkeypatch, tmp_path, before, after)
    rax = fig.axes[1]
    with cms_style():  # measured in the fonts the figure is drawn in
        renderer = fig.canvas.get_renderer()
        boxes = [t.get_window_extent(renderer) for t in _labels(rax)]
    assert boxes
    assert not [(a, b) for a, b in combinations(boxes, 2) if a.overlaps(b)]
    frame = rax.get_window_extent(renderer)
    assert all(frame.x0 <= b.x0 and b.x1 <= frame.x1 and frame.y0 <= b.y0 and b.y1 <= frame.y1 for b in boxes)
    # Every off-scale value is in a label of its pass's colour, and each point has its arrow.
    half = rax.get_ylim()[1]
    for style, rows in ((closure_plot.BEFORE, before), (closure_plot.AFTER, after)):
        expected = {round(100 * (r.ratio - 1)) for r in rows if abs(r.ratio - 1) > half}
        written = set()
        for text in (t.get_text() for t in _labels(rax) if t.get_color() == style.color):
            numbers = [int(s) for s in text.replace("%", "").replace("to", "").split()]
            written |= {v for v in expected if min(numbers) <= v <= max(numbers)}
        assert written == expected
    assert len(_arrows(rax)) == sum(abs(r.ratio - 1) > half for r in (*before, *after))


def test_untested_bins_are_drawn_apart(tmp_path, monkeypatch):
    """A bin with too few events for the closure (108 events, +41 % before calibration) is a hollow grey marker, named in
    the legend, never judged."""
    after = [_row(0.5, 1.08, UNTESTED), *_calibrated(4)]
    before = [_row(0.5, 1.41, UNTESTED), *(_row(0.6 + 0.1 * i, 1.34) for i in range(4))]
    fig = _draw(monkeypatch, tmp_path, before, after, min_events=300)
    ax, rax = fig.axes
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend.count("not tested (< 300 events)") == 1 and "after calibration" in legend
    untested = [c.lines[0] for c in ax.containers if 0.55 in np.round(c.lines[0].get_xdata(), 3)]
    assert len(untested) == 2  # one per pass
    for line in untested:
        assert list(line.get_xdata()) == pytest.approx([0.55])
        assert line.get_markerfacecolor() == "none" and line.get_markeredgecolor() == closure_plot.UNTESTED_COLOR
    tested = [c.lines[0] for c in ax.containers if c.lines[0] not in untested]
    assert all(line.get_markerfacecolor() != "none" and 0.55 not in np.round(line.get_xdata(), 3) for line in tested)
    # In the ratio panel: the calibrated one a hollow point, the uncalibrated one a grey arrow without a value.
    hollow = [c.lines[0] for c in rax.containers if c.lines[0].get_markerfacecolor() == "none" and len(c.lines[0].get_xdata())]
    assert [list(h.get_xdata()) for h in hollow] == [pytest.approx([0.55])]
    grey = [a for a in _arrows(rax) if a.arrow_patch.get_edgecolor() == pytest.approx((0x94 / 255, 0x94 / 255, 0x94 / 255, 1.0))]
    assert [float(a.xy[0]) for a in grey] == pytest.approx([0.55])
    assert [t.get_text() for t in _labels(rax)] == ["+34 %"]


def _header_texts(ax) -> tuple[Any, Any, Any]:
    from mplhep.label import ExpLabel, ExpText, LumiText

    (cms,), (text,), (right,) = ([t for t in ax.texts if isinstance(t, kind)] for kind in (ExpLabel, ExpText, LumiText))
    return cms, text, right


@pytest.mark.parametrize("simulation,status", [(False, " Preliminary"), (True, " Simulation Preliminary")])
def test_the_header_reads_cms_status_and_the_energy(tmp_path, monkeypatch, simulation: bool, status: str):
    """ "CMS", a word's space, the status; the sample and "(13 TeV)" on the right."""
    fig = _draw(monkeypatch, tmp_path, [], _calibrated(3), simulation=simulation)
    cms, text, right = _header_texts(fig.axes[0])
    assert (cms.get_text(), text.get_text(), right.get_text()) == ("CMS", status, "Data 2018 (13 TeV)")
    with cms_style():  # measured in the fonts the figure is drawn in
        renderer = fig.canvas.get_renderer()
        assert text.get_window_extent(renderer).x0 >= cms.get_window_extent(renderer).x1


@pytest.mark.parametrize("year,energy", [("2022", "13.6"), ("2018", "13")])
def test_the_validation_figures_carry_their_output_directory_s_year_and_judgement(tmp_path, monkeypatch, config, year: str, energy: str):
    """The closure of MC 2022 reads 13.6 TeV, of 2018 13 TeV; the Higgs check's figure is simulation with its own band."""
    closure = SimpleNamespace(before=SimpleNamespace(bins=tuple(_calibrated(3))), after=SimpleNamespace(bins=tuple(_calibrated(3))))
    higgs = SimpleNamespace(bins=tuple(_calibrated(2)))
    queued: list[ClosureFigure] = []
    out = OutputDir.of(tmp_path, True, year, "MC")
    queue_validation_figures(SimpleNamespace(submit=queued.append), closure, higgs, config, out)  # type: ignore[arg-type]
    assert [(f.stem, f.header.right(), f.simulation) for f in queued] == [
        (out.figure_stem("closure"), f"MC {year} ({energy} TeV)", True), (out.figure_stem("higgs"), f"H MC {year} ({energy} TeV)", True)
    ]  # fmt: skip
    assert [(f.tolerance, f.min_events) for f in queued] == [
        (config.closure.tolerance, config.closure.min_events), (config.higgs.tolerance, config.higgs.min_events)
    ]  # fmt: skip
    assert _header_texts(_drawn(monkeypatch, queued[0]).axes[0])[2].get_text() == f"MC {year} ({energy} TeV)"


def test_the_band_is_the_tolerance_the_bins_are_judged_with(tmp_path, monkeypatch):
    """The Higgs check passes a bin within 3 %, the Z closure within 10 %: each figure shows its own."""
    fig = _draw(monkeypatch, tmp_path, [], _calibrated(3), tolerance=0.03)
    ax, rax = fig.axes
    assert r"$\pm$3 %" in [t.get_text() for t in ax.get_legend().get_texts()]
    (band,) = rax.patches
    assert sorted({round(float(y), 6) for y in band.get_path().transformed(band.get_patch_transform()).vertices[:, 1]}) == [-0.03, 0.03]
