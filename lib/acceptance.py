"""How a leading-muon pT window truncates the Z line shape: the acceptance ``A(m)`` of a category.

A category keeps events whose leading-muon pT lies in ``[a, b)``. At fixed decay kinematics the
muon pT scale with the dimuon mass, so with ``x1 = pT_lead / m`` and ``x2 = pT_sublead / m``
distributed independently of ``m``, the share of events of mass ``m`` that the category keeps is

    A(m) = P(a <= x1 * m < b  and  x2 * m >= s),

``s`` the subleading-pT threshold of the input. The mass ``mZ/2 ~ 45.6 GeV`` of the Jacobian peak
of ``x1 * m`` sits between the 45 and 52 GeV edges, so ``A`` changes steeply across the peak and a
Breit-Wigner convolved with a Crystal Ball alone cannot describe a category's line shape: the fit
then moves sigma to absorb the truncation. The fit model is the convolution times ``A``.

``(x1, x2)`` come from the 2-D histograms filled while reading (``lib.histograms.AcceptanceGrid``)
with the events of the same |eta|-region pair in every pT bin, so the window's own cut is not
built into them. Those events were themselves selected by pT thresholds (the category edges, the
input's own cuts), which removes low ``x`` at low mass: an event of ``(x1, x2)`` is in the sample
only if its mass lies where ``x1 * m`` and ``x2 * m`` pass them. Each cell is therefore weighted by
the inverse of the share of the sample's mass distribution where it would pass, and cells that
almost no mass can reach are left out. Pure numpy: no fitting, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from lib.histograms import AcceptanceGrid, CategoryHistograms

__all__ = ["PtThresholds", "window_acceptance", "group_acceptance", "acceptance_knots", "MIN_REACH"]

# Cells that less than this share of the sample's mass distribution can reach are not used: their
# weight would be large and their content a handful of events.
MIN_REACH = 0.02


@dataclass(frozen=True)
class PtThresholds:
    """The pT cuts the histogrammed events passed: leading in ``[lead_min, lead_max)``, subleading above ``sublead_min``."""

    lead_min: float
    lead_max: float
    sublead_min: float


def _survival(mass_edges: np.ndarray, mass_contents: np.ndarray) -> "np.ndarray":
    """``S`` at each mass edge: the share of the sample's events above it (1 at the window's low edge)."""
    total = float(mass_contents.sum())
    above = np.concatenate([np.cumsum(mass_contents[::-1])[::-1], [0.0]])
    return above / total if total > 0 else np.zeros_like(above)


def _reach(x: np.ndarray, threshold: float, mass_edges: np.ndarray, survival: np.ndarray) -> np.ndarray:
    """Share of the sample's mass distribution with ``x * m >= threshold``."""
    with np.errstate(divide="ignore"):
        cut_mass = np.where(x > 0, threshold / np.maximum(x, 1e-12), np.inf)
    return np.interp(cut_mass, mass_edges, survival, left=1.0, right=0.0)


def _cell_centres(edges: np.ndarray) -> np.ndarray:
    """A representative x per bin, under- and overflow included (placed at the grid's edges)."""
    return np.concatenate([[edges[0]], 0.5 * (edges[1:] + edges[:-1]), [edges[-1]]])


def _overlap(edges: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Fraction of each bin of ``x`` (under- and overflow as points at the grid's edges) inside ``[lo, hi)``.

    Uniform density inside a bin: the cumulative distribution is linear between edges, so ``A(m)``
    is continuous in ``m`` rather than a staircase of the grid.
    """
    inner = np.clip((np.minimum(edges[1:], hi) - np.maximum(edges[:-1], lo)) / np.diff(edges), 0.0, 1.0)
    under = 1.0 if lo <= edges[0] < hi else 0.0
    over = 1.0 if lo <= edges[-1] < hi else 0.0
    return np.concatenate([[under], inner, [over]])


def window_acceptance(
    x_contents: np.ndarray, grid: AcceptanceGrid, mass_edges: np.ndarray, mass_contents: np.ndarray,
    sample_cuts: PtThresholds, window_gev: tuple[float, float], masses_gev: np.ndarray,
) -> np.ndarray:  # fmt: skip
    """``A(m)`` of the leading-pT window ``window_gev`` at each of ``masses_gev``, normalised to a maximum of 1.

    Args:
        x_contents: ``(x1 bins + 2, x2 bins + 2)`` sums of weights of the histogrammed events.
        grid: the binning of ``x_contents``.
        mass_edges, mass_contents: mass histogram of the same events (their mass distribution).
        sample_cuts: the pT cuts those events passed (for the truncation weights).
        window_gev: the category's leading-pT window ``[a, b)``; the subleading cut is
            ``sample_cuts.sublead_min``.
        masses_gev: where to evaluate ``A``.

    Returns:
        ``A`` at each mass (all ones when the histograms are empty: no information, no correction).
    """
    x1 = _cell_centres(grid.x1_edges)
    x2 = _cell_centres(grid.x2_edges)
    survival = _survival(mass_edges, mass_contents)
    lead_reach = _reach(x1, sample_cuts.lead_min, mass_edges, survival) - _reach(x1, sample_cuts.lead_max, mass_edges, survival)
    sub_reach = _reach(x2, sample_cuts.sublead_min, mass_edges, survival)
    # Both cuts hold in the mass range above the larger of the two cut masses: the smaller reach.
    reach = np.minimum(lead_reach[:, None], sub_reach[None, :])
    weights = np.where(reach > MIN_REACH, 1.0 / np.maximum(reach, MIN_REACH), 0.0)
    density = x_contents * weights
    if not density.sum() > 0:
        return np.ones(len(masses_gev))
    a = max(window_gev[0], sample_cuts.lead_min)
    b = min(window_gev[1], sample_cuts.lead_max)
    values = np.empty(len(masses_gev))
    for i, m in enumerate(np.asarray(masses_gev, dtype=np.float64)):
        lead = _overlap(grid.x1_edges, a / m, b / m)
        sub = _overlap(grid.x2_edges, sample_cuts.sublead_min / m, np.inf)
        values[i] = lead @ density @ sub
    peak = values.max()
    return values / peak if peak > 0 else np.ones(len(masses_gev))


def group_acceptance(
    hists: CategoryHistograms, group: int, mass_groups: Sequence[int], pt_edges: Sequence[float],
    window_gev: tuple[float, float], mass_range_gev: tuple[float, float], spacing_gev: float,
) -> tuple[tuple[float, ...], tuple[float, float]]:  # fmt: skip
    """The table of ``A(m)`` of ``window_gev`` from acceptance group ``group`` of ``hists``: ``(values, (first, last mass))``.

    ``A`` is tabulated at the ``acceptance_knots`` of ``mass_range_gev`` (a fit spec's
    ``acceptance`` and ``acceptance_range_gev``). ``mass_groups`` are the histogram groups whose
    mass histograms make up the acceptance group's mass distribution (the categories of one
    |eta|-region pair, or the closure bin itself); the histogrammed events passed the category pT
    edges and the input's own thresholds, which the smallest leading and subleading pT seen tell.
    """
    if hists.acceptance is None or hists.pt_min is None:
        raise ValueError("no acceptance histograms were filled (fit.line_shape is not 'acceptance')")
    mass = np.sum([hists.mass_contents(i) for i in mass_groups], axis=0)
    lead_min, sublead_min = (float(v) if np.isfinite(v) else 0.0 for v in hists.pt_min)
    cuts = PtThresholds(max(float(pt_edges[0]), lead_min), float(pt_edges[-1]), sublead_min)
    knots = acceptance_knots(mass_range_gev, spacing_gev)
    values = window_acceptance(hists.x_contents(group), hists.acceptance, hists.grids.mass_edges, mass, cuts, window_gev, knots)
    return tuple(values.tolist()), (float(knots[0]), float(knots[-1]))


def acceptance_knots(range_gev: tuple[float, float], spacing_gev: float) -> np.ndarray:
    """Evenly spaced masses over ``range_gev`` at about ``spacing_gev`` where ``A`` is tabulated (linear in between)."""
    n = max(2, int(round((range_gev[1] - range_gev[0]) / spacing_gev)) + 1)
    return np.linspace(range_gev[0], range_gev[1], n)
