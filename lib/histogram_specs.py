"""Which histograms a reduction fills: how events are grouped, and each event's keys into the groups' histograms.

Steps 1-2 group events by category (``ByCategory``); the closure test and the Higgs check by bins
of (calibrated) sigma_pred (``ByPredictedResolution``). A ``HistogramSpec`` joins a grouping to the
grids (``lib.histograms``) and to what else is counted (the window acceptance, the source
categories), and turns a chunk's events into the flat keys ``HistogramPart.add_keys`` adds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Mapping

import numpy as np

from lib.acceptance import AcceptanceGrid, AcceptanceKeys, acceptance_grid
from lib.categories import bin_index
from lib.histograms import HistogramGrids, grids_from_config
from lib.peak_scaling import PeakScaling

if TYPE_CHECKING:
    from lib.categories import CategoryScheme
    from lib.config import Config


@dataclass(frozen=True)
class ByCategory:
    """Group events by their category and histogram their sigma_pred (steps 1-2)."""

    n_groups: int

    def assign(
        self, category: np.ndarray, mass: np.ndarray, spred: np.ndarray, memo: dict | None = None,
        muons: Mapping[str, np.ndarray] | None = None,
    ) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:  # fmt: skip
        """``(selected events or None for all, group, value)``: every event, in its category."""
        return None, category, spred


@dataclass(frozen=True)
class ByPredictedResolution:
    """Group events by ``[lo, hi)`` bins of (calibrated) sigma_pred, for the closure and Higgs checks.

    ``factors`` (per category; None: uncalibrated) multiply sigma_pred; the binning variable is that
    prediction, or the prediction the event would have at the peak mass (``sigma_pred_at_peak``,
    ``scaling`` says how: ``lib.peak_scaling``; binning on sigma_pred directly slices the peak).
    ``value`` says which sigma_pred is histogrammed: the prediction or the raw, uncalibrated one.
    """

    edges: tuple[float, ...]
    factors: tuple[float, ...] | None
    peak_gev: float
    variable: str
    value: str = "predicted"
    scaling: PeakScaling | None = None

    @property
    def n_groups(self) -> int:
        return len(self.edges) - 1

    def assign(
        self, category: np.ndarray, mass: np.ndarray, spred: np.ndarray, memo: dict | None = None,
        muons: Mapping[str, np.ndarray] | None = None,
    ) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:  # fmt: skip
        """``(selected events, their bin, their histogrammed sigma_pred)``; events outside every bin are not selected.

        ``memo`` (one per chunk) shares the binning between groupings that differ only in ``value``.
        """
        memo = {} if memo is None else memo
        binning_key = (self.edges, self.factors, self.peak_gev, self.variable, self.scaling)
        if binning_key not in memo:
            raw, predicted, values = self.resolutions(category, mass, spred, muons)
            group = bin_index(values, self.edges)
            selected = np.flatnonzero(group >= 0)
            memo[binning_key] = (selected, group[selected].astype(np.int32), predicted[selected], raw[selected])
        selected, group, predicted, raw = memo[binning_key]
        return selected, group, (predicted if self.value == "predicted" else raw).astype(np.float32)

    def resolutions(
        self, category: np.ndarray, mass: np.ndarray, spred: np.ndarray, muons: Mapping[str, np.ndarray] | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
        """``(raw, predicted, binned)`` per event in float64: sigma_pred, times its category's factor, and the quantity binned in.

        The binned quantity is the (calibrated) sigma_pred, or the one the event would have at the
        peak mass, which does not slice the peak being fitted (``lib.peak_scaling``: ``scaling`` and ``muons`` are then needed).
        """
        raw = spred.astype(np.float64)
        predicted = raw if self.factors is None else raw * np.asarray(self.factors, dtype=np.float64)[category]
        if self.variable != "sigma_pred_at_peak":
            return raw, predicted, predicted
        return raw, predicted, self.scaling.values(muons, mass, self.peak_gev, self.factors)  # type: ignore[union-attr, arg-type]


@dataclass(frozen=True)
class EventKeys:
    """Where a chunk's selected events fall in the histograms of one spec (``HistogramPart.add_keys``)."""

    mass: np.ndarray | None  # None: only sigma_pred is histogrammed
    spred: np.ndarray
    acceptance: AcceptanceKeys | None = None
    pt_min: tuple[float, float] | None = None  # smallest leading and subleading pT of the selected events
    categories: np.ndarray | None = None
    weights: np.ndarray | None = None  # the selected events' weights (None: unweighted)


@dataclass(frozen=True)
class HistogramSpec:
    """One set of histograms a reduction fills: the binnings and how events are grouped."""

    grids: HistogramGrids
    grouping: ByCategory | ByPredictedResolution
    # False: only sigma_pred is histogrammed (a second value of the same groups, e.g. the raw one).
    fill_mass: bool = True
    # The window counts the acceptance-aware line shape needs (None: not filled).
    acceptance: AcceptanceGrid | None = None
    # > 0: also count each group's events per category of this many (which calibration factors a
    # closure or Higgs bin used, for the factors' share of its error).
    source_categories: int = 0

    @property
    def needs_muon_eta(self) -> bool:
        """The muons' eta are among what ``keys`` reads (the acceptance, the peak-scaled binning), not only their pT."""
        return self.acceptance is not None or (isinstance(self.grouping, ByPredictedResolution) and self.grouping.scaling is not None)

    def keys(
        self, category: np.ndarray, mass: np.ndarray, spred: np.ndarray, memo: dict | None = None,
        muons: Mapping[str, np.ndarray] | None = None, weights: np.ndarray | None = None,
    ) -> EventKeys:  # fmt: skip
        """The chunk's events grouped and keyed; the category keys are ``group + groups * category`` when the spec counts categories.

        ``muons`` (the muon columns, ``mu1`` leading) are needed when ``needs_muon_eta``; the pT
        minima (None when no event is selected) are what the acceptance's thresholds are checked against.
        """
        selected, group, value = self.grouping.assign(category, mass, spred, memo, muons)
        mass_sel = mass if selected is None else mass[selected]
        mass_keys = self.grids.mass_keys(group, mass_sel) if self.fill_mass else None
        x_keys = pt_min = None
        if self.acceptance is not None:
            sel_muons = {c: muons[c] if selected is None else muons[c][selected] for c in ("mu1_pt", "mu1_eta", "mu2_pt", "mu2_eta")}
            x_keys = self.acceptance.keys(group, sel_muons, mass_sel)
            lead = np.maximum(sel_muons["mu1_pt"], sel_muons["mu2_pt"])
            sub = np.minimum(sel_muons["mu1_pt"], sel_muons["mu2_pt"])
            pt_min = (float(lead.min()), float(sub.min())) if lead.size else None
        cat_keys = None
        if self.source_categories:
            cats = category if selected is None else category[selected]
            cat_keys = group.astype(np.int64) + self.grids.n_categories * cats.astype(np.int64)
        if weights is not None and selected is not None:
            weights = weights[selected]
        return EventKeys(mass_keys, self.grids.spred_keys(group, value), x_keys, pt_min, cat_keys, weights)


def category_spec(config: Config, scheme: CategoryScheme, fits: bool = True) -> HistogramSpec:
    """Steps 1-2: histograms per category on the grids of ``config``; acceptance per |eta|-region pair when the line shape needs it.

    ``fits``: the reduction feeds step 1. Without it (step 2 alone: medians) the acceptance, which
    costs as much as the rest of the reading, is not counted.
    """
    n = scheme.n_categories
    acceptance = acceptance_grid(config, scheme.n_eta**2, scheme.pt_edges) if fits else None
    return HistogramSpec(grids_from_config(config, n), ByCategory(n), acceptance=acceptance)
