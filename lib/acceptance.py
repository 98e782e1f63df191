"""How a leading-muon pT window truncates the Z line shape: the acceptance ``A(m)`` of a category.

A category keeps events whose leading-muon pT lies in ``[a, b)``. The mass ``mZ/2 ~ 45.6 GeV`` of
the Jacobian peak of the muon pT sits between the 45 and 52 GeV edges, so the share of events of
mass ``m`` a category keeps changes steeply with ``m``, and a Breit-Wigner convolved with a
Crystal Ball alone cannot describe the category's line shape: the fit then moves sigma to absorb
the truncation. The fit model is the convolution times ``A``.

``A`` comes from the events of the same |eta|-region pair in every pT bin, so the window's own
cut is not built into them: at each knot mass ``m'`` each event is moved to ``m'`` keeping its
dimuon pT, rapidity and decay direction (``lib.dimuon_kinematics``), and counted in the window
its leading pT then falls in (``lib.histograms.AcceptanceGrid``, filled while reading). That the
muon pT do not simply scale with the mass matters: with ``pT / m`` taken as independent of ``m``,
``A`` of the 62-200 GeV window rose twice as steeply over 75-105 GeV as the events' own share of
that window does, and those categories' sigma came out 5-15 % low.

Those events were themselves selected by the input's pT thresholds at their own mass: an event
that passes them only above some mass is under-represented among the events, by the share of the
sample's mass distribution above that mass (its reach). Each event is weighted by the inverse
of its reach, and events that almost no mass reaches are left out. Pure numpy: no fitting, no I/O.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from lib.histograms import CategoryHistograms

__all__ = ["window_acceptance", "group_acceptance", "threshold_mismatch", "MIN_REACH"]

# An input's smallest pT this far above the configured threshold says it was selected with a harder cut.
THRESHOLD_TOLERANCE_GEV = 0.5

# Events that less than this share of the sample's mass distribution would keep are not used:
# their weight would be large and they are a handful.
MIN_REACH = 0.02


def _reach(knots: np.ndarray, mass_edges: np.ndarray, mass_contents: np.ndarray) -> np.ndarray:
    """Share of the sample's mass distribution above the crossing of each first-passing knot.

    An event that first passes at knot ``r > 0`` crosses the thresholds between knots ``r - 1``
    and ``r``: the survival function at their midpoint. At the first knot it passes everywhere.
    """
    total = float(mass_contents.sum())
    if not total > 0:
        return np.ones(len(knots))
    above = np.concatenate([np.cumsum(mass_contents[::-1])[::-1], [0.0]]) / total
    crossing = np.concatenate([[knots[0]], 0.5 * (knots[1:] + knots[:-1])])
    return np.interp(crossing, mass_edges, above, left=1.0, right=0.0)


def window_acceptance(counts: np.ndarray, knots: np.ndarray, mass_edges: np.ndarray, mass_contents: np.ndarray) -> np.ndarray:
    """``A`` at each knot, normalised to a maximum of 1, from one window's ``(knots, first passing knot)`` counts.

    ``mass_edges``/``mass_contents`` are the mass distribution of the events counted (for their
    reach). All ones when nothing was counted: no information, no correction.
    """
    reach = _reach(knots, mass_edges, mass_contents)
    weights = np.where(reach > MIN_REACH, 1.0 / np.maximum(reach, MIN_REACH), 0.0)
    values = np.asarray(counts, dtype=np.float64) @ weights
    peak = values.max() if values.size else 0.0
    return values / peak if peak > 0 else np.ones(len(knots))


def group_acceptance(
    hists: CategoryHistograms, group: int, mass_groups: Sequence[int], window: int | None
) -> tuple[tuple[float, ...], tuple[float, float]]:
    """The table of ``A(m)`` of ``window`` (None: all windows together) in acceptance group ``group``: ``(values, (first, last knot))``.

    ``mass_groups`` are the histogram groups whose mass histograms make up the acceptance group's
    mass distribution (the categories of one |eta|-region pair, or the closure bin itself).
    """
    if hists.acceptance is None:
        raise ValueError("no acceptance histograms were filled (fit.line_shape is not 'acceptance')")
    contents = hists.x_contents(group)
    counts = contents.sum(axis=0) if window is None else contents[window]
    mass = np.sum([hists.mass_contents(i) for i in mass_groups], axis=0)
    knots = hists.acceptance.knots
    values = window_acceptance(counts, knots, hists.grids.mass_edges, mass)
    return tuple(values.tolist()), (float(knots[0]), float(knots[-1]))


def threshold_mismatch(hists: CategoryHistograms) -> str | None:
    """A one-line warning when the input's smallest leading or subleading pT disagree with the thresholds ``A`` assumes.

    ``A`` counts where each event would pass the configured thresholds; an input selected with a
    harder cut (its smallest pT well above them) or with none (pT below them) has another
    truncation, which only the right thresholds in ``fit.acceptance`` describe.
    """
    grid = hists.acceptance
    if grid is None or hists.pt_min is None or not np.all(np.isfinite(hists.pt_min)):
        return None
    expected = (grid.lead_threshold_gev, grid.sublead_min_gev)
    names = ("lead_pt_min_gev", "sublead_pt_min_gev")
    for seen, want, name, which in zip(hists.pt_min, expected, names, ("leading", "subleading")):
        if seen < want - 1e-3 or seen > want + THRESHOLD_TOLERANCE_GEV:
            return (
                f"the input's smallest {which} muon pT is {seen:.2f} GeV, but the window acceptance assumes a cut at "
                f"{want:g} GeV: set fit.acceptance.{name} to the cut the input was selected with"
            )
    return None
