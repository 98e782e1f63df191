"""How a leading-muon pT window truncates the Z line shape: the acceptance ``A(m)`` of a category.

A category keeps events whose leading-muon pT lies in ``[a, b)``. The mass ``mZ/2 ~ 45.6 GeV`` of
the Jacobian peak of the muon pT sits between the 45 and 52 GeV edges, so the share of events of
mass ``m`` a category keeps changes steeply with ``m``, and a Breit-Wigner convolved with a
Crystal Ball alone cannot describe the category's line shape: the fit then moves sigma to absorb
the truncation. The fit model is the convolution times ``A``.

``A`` comes from the events of the same |eta|-region pair in every pT bin, so the window's own
cut is not built into them: at each knot mass ``m'`` each event is moved to ``m'`` keeping its
dimuon pT, rapidity and decay direction (``lib.dimuon_kinematics``), and counted in the window
its leading pT then falls in (``AcceptanceGrid``, counted while reading). The muon pT do not
simply scale with the mass: taking ``pT / m`` as independent of ``m`` makes ``A`` of the highest
window too steep and those categories' sigma low (docs/validation.md).

Those events were themselves selected by the input's pT thresholds at their own mass: an event
that passes them only above some mass is under-represented by the share of the sample's mass
distribution above that mass (its reach), so each is weighted by the inverse of its reach, and
events that almost no mass reaches are left out. Both halves live here: where each event falls
(``AcceptanceGrid.keys``, while reading) and ``A(m)`` from the counts (``group_acceptance``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Mapping, Sequence

import numpy as np

from lib.dimuon_kinematics import four_pt_squared_at_masses

if TYPE_CHECKING:
    from lib.config import Config
    from lib.histograms import CategoryHistograms

# Events per batch of the acceptance keys: their (knots x events) temporaries stay near 10 MB.
_ACCEPTANCE_BATCH = 1 << 16

# An input's smallest pT this far above the configured threshold says it was selected with a harder cut.
THRESHOLD_TOLERANCE_GEV = 0.5

# Events that less than this share of the sample's mass distribution would keep are not used:
# their weight would be large and they are a handful.
MIN_REACH = 0.02


@dataclass(frozen=True)
class AcceptanceKeys:
    """Where a chunk's events fall in ``AcceptanceGrid.shape``: the flat keys of a ``(knots, events)`` array, raveled."""

    keys: np.ndarray
    n_events: int

    def weights(self, weights: np.ndarray) -> np.ndarray:
        """Each key's event weight, in the keys' order."""
        return np.broadcast_to(weights, (self.keys.size // max(self.n_events, 1), self.n_events)).ravel()


@dataclass(frozen=True)
class AcceptanceGrid:
    """Which leading-pT window each event would fall in if its mass were each of the knots, per acceptance group.

    An event of histogram group ``g`` is filled in acceptance group ``g % n_groups``: with the
    flat category index ``n_eta**2 * i_pt + n_eta * i_eta1 + i_eta2`` and ``n_groups = n_eta**2``
    that is the category's |eta|-region pair (all pT bins together); with one group per closure
    bin, the bin itself. At each knot ``m'`` the event is moved to mass ``m'``
    (``lib.dimuon_kinematics``) and counted in the window its leading pT then falls in, if it
    passes the input's thresholds there. The last axis is the first knot where it passes them:
    the events were selected by those thresholds at their own mass, and ``window_acceptance``
    weights them by the share of masses where they would have been (their reach).
    """

    n_groups: int
    window_edges: tuple[float, ...]  # leading-pT windows [e_i, e_i+1) (the category pT edges, or one window)
    lead_min_gev: float  # the input's own leading and subleading pT thresholds
    sublead_min_gev: float
    mass_range_gev: tuple[float, float]
    knot_spacing_gev: float

    @property
    def n_windows(self) -> int:
        return len(self.window_edges) - 1

    @property
    def knots(self) -> np.ndarray:
        lo, hi = self.mass_range_gev
        return np.linspace(lo, hi, max(2, int(round((hi - lo) / self.knot_spacing_gev)) + 1))

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """``(groups, windows, knots, first passing knot)``."""
        n = len(self.knots)
        return self.n_groups, self.n_windows, n, n

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    @property
    def lead_threshold_gev(self) -> float:
        """The smallest leading pT an event of these windows has: the first edge or the input's cut, the higher."""
        return max(self.window_edges[0], self.lead_min_gev)

    def keys(self, group: np.ndarray, muons: Mapping[str, np.ndarray], mass: np.ndarray) -> AcceptanceKeys:
        """Flat key of every (knot, event), ``size`` where the event fails the thresholds, in batches that bound the temporaries.

        The key is ``group + groups * (window + windows * (knot + knots * first))``, the histogram's bin
        order (first axis fastest); only the window is computed per (knot, event).
        """
        n_groups, n_windows, n_knots, _ = self.shape
        # Cuts on 4 pT^2, which the kinematic map gives without square roots.
        edges = 4.0 * np.square(np.asarray(self.window_edges, dtype=np.float32))
        lead_lo, lead_hi = np.float32(4.0 * self.lead_threshold_gev**2), edges[-1]
        sub_lo = np.float32(4.0 * self.sublead_min_gev**2)
        window_stride = np.int32(n_groups)
        knot_part = (np.arange(n_knots, dtype=np.int32) * (n_groups * n_windows))[:, None]
        first_stride = np.int32(n_groups * n_windows * n_knots)
        keys = []
        for start in range(0, len(mass), _ACCEPTANCE_BATCH):
            part = slice(start, start + _ACCEPTANCE_BATCH)
            sq1, sq2 = four_pt_squared_at_masses(
                muons["mu1_pt"][part], muons["mu1_eta"][part], muons["mu2_pt"][part], muons["mu2_eta"][part], mass[part], self.knots
            )  # fmt: skip
            passes = sq1 >= sub_lo
            passes &= sq2 >= sub_lo
            lead = np.maximum(sq1, sq2, out=sq1)
            passes &= lead >= lead_lo
            passes &= lead < lead_hi
            key = (group[part].astype(np.int32) % n_groups + np.argmax(passes, axis=0).astype(np.int32) * first_stride)[None, :]
            key = key + knot_part
            window = np.zeros(lead.shape, np.int8)  # counted in bytes, scaled to its stride once
            for edge in edges[1:-1]:
                window += (lead >= edge).view(np.int8)
            key += window * window_stride
            np.putmask(key, ~passes, self.size)
            keys.append(key)
        flat = np.concatenate(keys, axis=1).ravel() if keys else np.empty(0, np.int32)
        return AcceptanceKeys(flat, len(mass))


def acceptance_grid(config: "Config", n_groups: int, window_edges: Sequence[float]) -> AcceptanceGrid | None:
    """The window counts of ``fit.acceptance`` for ``n_groups`` groups, or None when the line shape is the plain Breit-Wigner."""
    if config.fit.line_shape != "acceptance":
        return None
    acc = config.fit.acceptance
    return AcceptanceGrid(
        n_groups, tuple(float(e) for e in window_edges), acc.lead_pt_min_gev, acc.sublead_pt_min_gev,
        tuple(config.selection.z_window_gev), acc.knot_spacing_gev,
    )  # fmt: skip


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
    contents = hists.x_contents(group)  # raises without acceptance histograms
    counts = contents.sum(axis=0) if window is None else contents[window]
    mass = np.sum([hists.mass_contents(i) for i in mass_groups], axis=0)
    knots = hists.acceptance.knots  # type: ignore[union-attr]
    values = window_acceptance(counts, knots, hists.grids.mass_edges, mass)
    return tuple(values.tolist()), (float(knots[0]), float(knots[-1]))


def threshold_mismatch(hists: CategoryHistograms) -> str | None:
    """A one-line warning when the input's smallest leading or subleading pT disagree with the thresholds ``A`` assumes.

    An input selected with a harder cut (its smallest pT well above them) or with none (below them) has
    another truncation, which only the right thresholds in ``fit.acceptance`` describe.
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
