"""Closure figure: fitted width against median predicted width, before and after calibration."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from lib.plots.save import PLOT_FORMATS, discard_other_formats, save_figure

__all__ = ["plot_closure"]

RATIO_LIMIT = 0.3


def _off_scale(rax: object, x: np.ndarray, deviation: np.ndarray, color: str) -> None:
    """Points beyond the ratio panel: an arrow at its edge, pointing their way, labelled with the value."""
    for xi, dev in zip(x, deviation):
        edge = np.sign(dev) * RATIO_LIMIT * 0.92
        rax.annotate(
            f"{dev:+.0%}", xy=(xi, edge), xytext=(xi, edge - np.sign(dev) * 0.12 * RATIO_LIMIT * 2),
            ha="center", va="center", fontsize=11, color=color,
            arrowprops={"arrowstyle": "-|>", "color": color, "lw": 1.5},
        )  # fmt: skip


def plot_closure(
    before: Sequence, after: Sequence, path_stem: Path, label: str, formats: tuple[str, ...] = PLOT_FORMATS
) -> list[Path]:  # fmt: skip
    """y = x with a +-10 % band, both passes as points, and a ratio panel (fit / median - 1), written in ``formats``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import mplhep

    def arrays(rows: Sequence) -> tuple[np.ndarray, ...]:
        ok = [r for r in rows if r.fit_quality == "ok"]
        return tuple(np.array([getattr(r, k) for r in ok]) for k in ("median_val", "fit_val", "fit_err", "ratio", "ratio_err", "low", "high"))

    with plt.style.context(mplhep.style.CMS):
        fig, (ax, rax) = plt.subplots(2, 1, figsize=(10, 10), sharex=True, gridspec_kw={"height_ratios": [3, 1], "hspace": 0.05})
        edges = [r.low for r in after] + [after[-1].high] if after else [0.5, 3.5]
        x = np.linspace(min(edges), max(edges), 50)
        ax.plot(x, x, color="black", lw=1, label="y = x")
        ax.fill_between(x, 0.9 * x, 1.1 * x, color="grey", alpha=0.25, label=r"$\pm$10 %")
        rax.axhline(0.0, color="black", lw=1)
        rax.axhspan(-0.1, 0.1, color="grey", alpha=0.25)
        for rows, color, marker, name in ((before, "#e42536", "s", "before calibration"), (after, "#3f90da", "o", "after calibration")):
            med, fit, fit_err, ratio, ratio_err, lo, hi = arrays(rows)
            if med.size == 0:
                continue
            ax.errorbar(med, fit, yerr=fit_err, fmt=marker, color=color, label=name, ms=7)
            deviation = ratio - 1.0
            inside = np.abs(deviation) <= RATIO_LIMIT
            rax.errorbar(med[inside], deviation[inside], yerr=ratio_err[inside], fmt=marker, color=color, ms=7)
            _off_scale(rax, med[~inside], deviation[~inside], color)
        ax.set_ylabel(r"fitted $\sigma$ [GeV]")
        ax.legend(loc="upper left", fontsize=16)
        mplhep.cms.label(ax=ax, data="Data" in label, text="Preliminary", rlabel=label, fontsize=18)
        rax.set_xlabel(r"median predicted $\sigma_{m_{\mu\mu}}$ in bin [GeV]")
        rax.set_ylabel("fit/pred - 1")
        rax.set_ylim(-RATIO_LIMIT, RATIO_LIMIT)
    discard_other_formats(path_stem, formats)
    return save_figure(fig, path_stem, formats=formats)
