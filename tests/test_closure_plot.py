"""The closure figure shows every bin: points beyond the ratio panel get an arrow with their value."""

from __future__ import annotations

from types import SimpleNamespace

import lib.plots.closure as closure_plot


def _row(low: float, ratio: float) -> SimpleNamespace:
    median = low + 0.05
    return SimpleNamespace(low=low, high=low + 0.1, median_val=median, fit_val=ratio * median, fit_err=0.01,
                           ratio=ratio, ratio_err=0.01, fit_quality="ok")  # fmt: skip


def test_points_beyond_the_ratio_panel_are_marked_with_their_value(tmp_path, monkeypatch):
    drawn = {}

    def keep(fig, stem, **kwargs):
        drawn["fig"] = fig
        return []

    monkeypatch.setattr(closure_plot, "save_figure", keep)
    after = [_row(0.6, 1.02), _row(0.7, 1.58), _row(0.8, 0.98), _row(0.9, 0.55)]
    closure_plot.plot_closure([], after, tmp_path / "closure", "Data 2018")
    ratio_axes = drawn["fig"].axes[1]
    labels = sorted(t.get_text() for t in ratio_axes.texts)
    assert labels == ["+58%", "-45%"]
    lo, hi = ratio_axes.get_ylim()
    assert all(lo <= t.xy[1] <= hi for t in ratio_axes.texts)
