"""Per-category fit figure, drawn from a ``FitResult``'s arrays (no ROOT, no canvases, no sleeps).

The original drew with ROOT canvases and needed unique canvas names, ``time.sleep`` and one
subprocess per category to survive ROOT's PDF writer. Here RooFit only supplies numbers; the
figure is matplotlib, written atomically so an interrupted run never leaves a broken file.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np

from lib.fitting.result import FitResult
from lib.plots.save import save_figure

__all__ = ["plot_fit"]

TOTAL_COLOR = "#3f90da"
SIGNAL_COLOR = "#e42536"
BACKGROUND_COLOR = "#964a8b"
FAILED_COLOR = "#c00000"
PULL_BAND = 2.0


def _info_lines(result: FitResult) -> list[str]:
    """The numbers a reader checks first: sigma, chi2/NDF, minimiser status, accepted attempt."""
    lines = [
        rf"$\sigma_{{DCB}}$ = {result.fit_val:.4f} $\pm$ {result.fit_err:.4f} GeV",
        rf"$\chi^2$/NDF = {result.chi2_ndf:.2f}  ({result.n_float} free par.)",
        f"status {result.status}, covQual {result.cov_qual}",
        f"events {result.n_events:,}" + ("" if not result.weighted else f", $\\Sigma w$ = {result.sum_weights:,.0f}"),
    ]
    if len(result.attempts) > 1:
        shown = next((i for i, a in enumerate(result.attempts, 1) if a.label == result.label), 0)
        lines.append(f"attempt {shown} of {len(result.attempts)}: {result.label}")
    return lines


def plot_fit(result: FitResult, path_stem: Path, title: str) -> list[Path]:
    """Data, total/signal/background curves and a pull panel, written as ``<stem>.png`` and ``.pdf``.

    A failed fit is still drawn (the curves of its best attempt) with "FIT FAILED" and the reason
    in red, so the plot explains the row of the results table; a category without any fitted
    attempt gets a figure with just the reason.

    Args:
        result: the category's fit result.
        path_stem: output path without suffix; the directory is created if needed.
        title: right-hand header, e.g. "2018 Data 30-45_OB".

    Returns:
        The written paths (PNG, PDF).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import mplhep

    curves = result.curves
    with plt.style.context(mplhep.style.CMS):
        fig, (ax, rax) = plt.subplots(
            2, 1, figsize=(10, 10), sharex=True, gridspec_kw={"height_ratios": [3, 1], "hspace": 0.06}
        )
        if curves is not None:
            centres = 0.5 * (curves.edges[1:] + curves.edges[:-1])
            width = float(curves.edges[1] - curves.edges[0])
            ax.errorbar(
                centres, curves.counts, yerr=[curves.err_low, curves.err_high], fmt="o", color="black",
                ms=4, elinewidth=1, capsize=0, label="Simulation" if result.weighted else "Data", zorder=3,
            )  # fmt: skip
            ax.plot(curves.curve_x, curves.total, color=TOTAL_COLOR, lw=2.2, label="Fit: total", zorder=2)
            if curves.background is not None:
                peak = r"BW $\otimes$ DCB" if result.peak == "z" else "DCB"
                ax.plot(curves.curve_x, curves.signal, color=SIGNAL_COLOR, lw=1.8, ls="--", label=peak)
                ax.plot(curves.curve_x, curves.background, color=BACKGROUND_COLOR, lw=1.8, ls=":", label="Background")
            top = np.nanmax(curves.counts + curves.err_high) if np.any(np.isfinite(curves.counts)) else 1.0
            headroom = 1.45 if result.ok else 1.75  # room for the failure box
            ax.set_ylim(0.0, headroom * max(top, float(np.nanmax(curves.total))))
            ax.set_xlim(curves.edges[0], curves.edges[-1])
            ylabel = "Sum of weights" if result.weighted else "Events"
            ax.set_ylabel(f"{ylabel} / {width:.3g} GeV")
            pulls = curves.pulls
            limit = float(min(8.0, max(4.0, np.ceil(np.nanmax(np.abs(pulls)) if np.any(np.isfinite(pulls)) else 0.0))))
            rax.axhspan(-PULL_BAND, PULL_BAND, color="grey", alpha=0.15, lw=0)
            for level in (-PULL_BAND, PULL_BAND):
                rax.axhline(level, color="grey", ls="--", lw=1)
            rax.axhline(0.0, color="black", lw=1)
            rax.plot(centres, np.clip(pulls, -limit, limit), "o", color="black", ms=3.5)
            rax.set_ylim(-limit, limit)
            ax.legend(loc="upper right", fontsize=17)
            text = "\n".join(_info_lines(result))
        else:
            text = ""
        if not result.ok:
            wrapped = textwrap.fill(result.reason, 36)
            # Left, under the numbers: the low-mass side of a Z peak is the emptiest part of the frame.
            ax.text(0.03, 0.62 if curves is not None else 0.9, f"FIT FAILED\n{wrapped}", transform=ax.transAxes,
                    va="top", ha="left", color=FAILED_COLOR, fontsize=12, zorder=5,
                    bbox={"facecolor": "white", "edgecolor": FAILED_COLOR, "alpha": 0.85})  # fmt: skip
        ax.text(0.03, 0.95, text, transform=ax.transAxes, va="top", ha="left", fontsize=16, linespacing=1.4)
        # data=False makes mplhep write "Simulation" itself.
        mplhep.cms.label(ax=ax, data=not result.weighted, text="Preliminary", rlabel=title, fontsize=18)
        rax.set_ylabel("Pull")
        rax.set_xlabel(r"$m_{\mu\mu}$ [GeV]")
        fig.align_ylabels([ax, rax])
        fig.subplots_adjust(left=0.13, right=0.95, top=0.95, bottom=0.08)
    return save_figure(fig, path_stem, tight=False)
