"""Histograms per group of events filled while the files are read: all that binned fits and medians need.

In binned mode, steps 1-2 (groups: categories), the closure test and the Higgs check (groups: bins
of calibrated sigma_pred) need, per group, the mass histogram the fit is made on and enough of the
sigma_pred distribution to take its median. Both are fixed-size arrays, so memory does not grow
with the number of events (the original held the whole skim: 112 GB on real data), and per-file
histograms add up, on any worker. A ``HistogramSpec`` says how events are grouped and binned.

- Mass: a uniform fine grid over the Z window; every binned fit's bins are sums of its bins.
- Acceptance (optional): per acceptance group (the |eta|-region pair of a category, or a closure
  bin), how many events would fall in each leading-pT window at each of a few masses
  (``AcceptanceGrid``), from which ``lib.acceptance`` computes how a window truncates the line shape.
- sigma_pred: a log-spaced grid of constant relative bin width, with under- and overflow. The
  median is interpolated inside the bin holding it, so it differs from the exact sample median by
  less than the bin's relative width (5e-4 by default) where bins hold few events, and by a few
  1e-5 where they hold many (tested): about a tenth of the median's statistical error or less at
  any size (0.7 % at 1 000 events, 7e-4 at 100 000 with the built-in sample's spread).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Mapping, Sequence

import numpy as np

from lib.categories import bin_index
from lib.dimuon_kinematics import four_pt_squared_at_masses
from lib.peak_scaling import PeakScaling

if TYPE_CHECKING:
    from lib.categories import CategoryScheme
    from lib.config import Config

__all__ = [
    "AcceptanceGrid", "AcceptanceKeys", "HistogramGrids", "CategoryHistograms", "MassHistogram", "histogram_quantiles", "grids_from_config",
    "ByCategory", "ByPredictedResolution", "HistogramSpec", "category_spec", "predicted_resolution", "binning_values",
]  # fmt: skip

# Events per batch of the acceptance keys: their (knots x events) temporaries stay near 10 MB.
_ACCEPTANCE_BATCH = 1 << 16


@dataclass(frozen=True)
class HistogramGrids:
    """Binnings of the per-category histograms; picklable, so file tasks on Dask workers fill the same ones."""

    n_categories: int
    mass_range_gev: tuple[float, float]
    mass_bin_gev: float
    spred_range_gev: tuple[float, float]
    spred_relative_width: float

    @property
    def n_mass(self) -> int:
        lo, hi = self.mass_range_gev
        return int(round((hi - lo) / self.mass_bin_gev))

    @property
    def mass_edges(self) -> np.ndarray:
        lo, hi = self.mass_range_gev
        return np.linspace(lo, hi, self.n_mass + 1)

    @property
    def n_spred(self) -> int:
        """Inner sigma_pred bins (under- and overflow come on top)."""
        lo, hi = self.spred_range_gev
        return int(math.ceil(math.log(hi / lo) / math.log1p(self.spred_relative_width)))

    @property
    def spred_edges(self) -> np.ndarray:
        lo, hi = self.spred_range_gev
        return np.geomspace(lo, hi, self.n_spred + 1)

    def mass_keys(self, category: np.ndarray, mass: np.ndarray) -> np.ndarray:
        """Flat (category, mass bin) index of each event; masses are inside the window by construction."""
        lo, _ = self.mass_range_gev
        bins = np.floor((mass.astype(np.float64) - lo) / self.mass_bin_gev).astype(np.int32)
        np.clip(bins, 0, self.n_mass - 1, out=bins)
        return category.astype(np.int32) * self.n_mass + bins

    def spred_keys(self, category: np.ndarray, spred: np.ndarray) -> np.ndarray:
        """Flat (category, sigma_pred bin) index; bin 0 is the underflow, ``n_spred + 1`` the overflow.

        In float64: float32 ``log`` is vectorised differently on different CPUs, which could move an
        event sitting on a bin edge between a cluster run and an in-process one.
        """
        lo, hi = self.spred_range_gev
        position = np.log(spred.astype(np.float64))
        position -= math.log(lo)
        position *= self.n_spred / math.log(hi / lo)
        position += 1.0
        np.clip(position, 0.0, self.n_spred + 1, out=position)
        bins = position.astype(np.int32)  # truncation is the floor: position >= 0
        bins += category.astype(np.int32) * (self.n_spred + 2)
        return bins


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
    the events were selected by those thresholds at their own mass, and ``lib.acceptance``
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
        """Flat key of every (knot, event), ``size`` where the event fails the thresholds, computed in batches of events that bound the temporaries.

        The key is ``((group * windows + window) * knots + knot) * knots + first``: its event part
        and its knot part are added once, and only the window is computed per (knot, event).
        """
        _, n_windows, n_knots, _ = self.shape
        # Cuts on 4 pT^2, which the kinematic map gives without square roots.
        edges = 4.0 * np.square(np.asarray(self.window_edges, dtype=np.float32))
        lead_lo, lead_hi = np.float32(4.0 * self.lead_threshold_gev**2), edges[-1]
        sub_lo = np.float32(4.0 * self.sublead_min_gev**2)
        knot_part = (np.arange(n_knots, dtype=np.int32) * n_knots)[:, None]
        window_stride = np.int32(n_knots * n_knots)
        keys = []
        for start in range(0, len(mass), _ACCEPTANCE_BATCH):
            part = slice(start, start + _ACCEPTANCE_BATCH)
            sq1, sq2 = four_pt_squared_at_masses(
                muons["mu1_pt"][part], muons["mu1_eta"][part], muons["mu2_pt"][part], muons["mu2_eta"][part], mass[part], self.knots
            )  # fmt: skip
            passes = np.minimum(sq1, sq2) >= sub_lo
            lead = np.maximum(sq1, sq2, out=sq1)
            passes &= lead >= lead_lo
            passes &= lead < lead_hi
            key = (group[part].astype(np.int32) % self.n_groups * n_windows * window_stride + np.argmax(passes, axis=0).astype(np.int32))[None, :]
            key = key + knot_part
            for edge in edges[1:-1]:
                key += (lead >= edge).view(np.int8) * window_stride
            key[~passes] = self.size
            keys.append(key)
        flat = np.concatenate(keys, axis=1).ravel() if keys else np.empty(0, np.int32)
        return AcceptanceKeys(flat, len(mass))


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
            raw, predicted = predicted_resolution(spred, category, self.factors)
            values = binning_values(predicted, mass, self.peak_gev, self.variable, self.scaling, muons, self.factors)
            group = bin_index(values, self.edges)
            selected = np.flatnonzero(group >= 0)
            memo[binning_key] = (selected, group[selected].astype(np.int32), predicted[selected], raw[selected])
        selected, group, predicted, raw = memo[binning_key]
        return selected, group, (predicted if self.value == "predicted" else raw).astype(np.float32)


def _add_bincount(target: np.ndarray, keys: np.ndarray, weights: np.ndarray | None = None) -> None:
    """Add the events (or weights) of flat ``keys`` into ``target`` in place; key ``target.size`` (an event counted nowhere) is dropped.

    ``np.bincount`` rather than ``ufunc.at``: the acceptance gives tens of keys per event.
    """
    size = target.size
    summed = np.bincount(keys, weights, minlength=size + 1)[:size]
    target += summed.reshape(target.shape).astype(target.dtype, copy=False)


def predicted_resolution(spred: np.ndarray, category: np.ndarray, factors: Sequence[float] | np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """``(raw, predicted)`` sigma_pred in float64: the predicted one is raw times its category's factor (None: raw)."""
    raw = spred.astype(np.float64)
    return raw, raw if factors is None else raw * np.asarray(factors, dtype=np.float64)[category]


def binning_values(
    predicted: np.ndarray, mass: np.ndarray, peak_gev: float, variable: str, scaling: PeakScaling | None,
    muons: Mapping[str, np.ndarray] | None, factors: Sequence[float] | np.ndarray | None,
) -> np.ndarray:  # fmt: skip
    """The quantity events are binned in: the (calibrated) sigma_pred itself, or moved to the peak mass.

    sigma_pred changes with the event's mass (explicitly, through the pT dependence of ptErr / pT
    and through the category of its factor), so bins of it select slices of the mass spectrum and
    distort the peak being fitted; the prediction at the peak mass carries the same resolution
    information without that correlation.

    Raises:
        ValueError: ``sigma_pred_at_peak`` without the scaling or the muon columns.
    """
    if variable != "sigma_pred_at_peak":
        return predicted
    if scaling is None or muons is None:
        raise ValueError("binning on sigma_pred_at_peak needs the measured pT dependence and the muon columns")
    return scaling.values(muons, mass, peak_gev, factors)


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
        muons: Mapping[str, np.ndarray] | None = None,
    ) -> tuple[
        np.ndarray | None, np.ndarray | None, np.ndarray, AcceptanceKeys | None, tuple[float, float] | None, np.ndarray | None
    ]:  # fmt: skip
        """``(selected, mass keys or None, sigma_pred keys, acceptance keys or None, pT minima or None, category keys or None)``.

        ``selected`` are the events kept (None for all); the category keys are ``group *
        source_categories + category`` when the spec counts categories.

        ``muons`` (the muon columns, ``mu1`` leading) are needed when the spec fills the acceptance
        or bins on the peak-scaled prediction; the pT minima are the smallest leading and subleading
        pT of the selected events (None when none is), against which the acceptance's thresholds are checked.
        """
        selected, group, value = self.grouping.assign(category, mass, spred, memo, muons)
        mass_sel = mass if selected is None else mass[selected]
        mass_keys = self.grids.mass_keys(group, mass_sel) if self.fill_mass else None
        x_keys = pt_min = None
        if self.acceptance is not None:
            if muons is None:
                raise ValueError("an acceptance histogram needs the muons' pT")
            sel_muons = {c: muons[c] if selected is None else muons[c][selected] for c in ("mu1_pt", "mu1_eta", "mu2_pt", "mu2_eta")}
            x_keys = self.acceptance.keys(group, sel_muons, mass_sel)
            lead = np.maximum(sel_muons["mu1_pt"], sel_muons["mu2_pt"])
            sub = np.minimum(sel_muons["mu1_pt"], sel_muons["mu2_pt"])
            pt_min = (float(lead.min()), float(sub.min())) if lead.size else None
        cat_keys = None
        if self.source_categories:
            cats = category if selected is None else category[selected]
            cat_keys = group.astype(np.int64) * self.source_categories + cats
        return selected, mass_keys, self.grids.spred_keys(group, value), x_keys, pt_min, cat_keys


@dataclass(frozen=True)
class MassHistogram:
    """One category's mass histogram on the fine grid (``sumw``/``sumw2`` only for weighted events)."""

    edges: np.ndarray
    counts: np.ndarray
    sumw: np.ndarray | None = None
    sumw2: np.ndarray | None = None

    @property
    def n_events(self) -> int:
        return int(self.counts.sum())

    def rebinned(self, lo: float, hi: float, bins: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray]:
        """``(edges, contents, sumw2, counts)`` in ``bins`` equal bins over ``[lo, hi]``.

        Raises:
            ValueError: an edge of the requested binning is not an edge of the fine grid.
        """
        edges = np.linspace(lo, hi, bins + 1)
        step = self.edges[1] - self.edges[0]
        position = (edges - self.edges[0]) / step
        index = np.rint(position).astype(np.int64)
        if np.any(np.abs(position - index) > 1e-6) or index[0] < 0 or index[-1] > len(self.edges) - 1:
            raise ValueError(
                f"{bins} bins over {lo:g}-{hi:g} GeV do not fall on the {step:g} GeV grid of "
                f"{self.edges[0]:g}-{self.edges[-1]:g} GeV the events were histogrammed on"
            )

        def summed(values: np.ndarray) -> np.ndarray:
            return np.add.reduceat(values[: index[-1]], index[:-1])

        counts = summed(self.counts)
        contents = counts.astype(np.float64) if self.sumw is None else summed(self.sumw)
        sumw2 = None if self.sumw2 is None else summed(self.sumw2)
        return edges, contents, sumw2, counts


@dataclass
class CategoryHistograms:
    """Mass and sigma_pred histograms of every category; ``add`` merges another file's in place."""

    grids: HistogramGrids
    mass_counts: np.ndarray  # (n_groups, n_mass) integer counts (int32 for one file, int64 merged)
    spred_counts: np.ndarray  # (n_groups, n_spred + 2) integer counts
    mass_sumw: np.ndarray | None = None
    mass_sumw2: np.ndarray | None = None
    spred_sumw: np.ndarray | None = None
    # Acceptance (``AcceptanceGrid.shape``) and the smallest leading and subleading pT histogrammed,
    # which tell the pT thresholds of the input (min over files, so also order-independent).
    acceptance: AcceptanceGrid | None = None
    x_counts: np.ndarray | None = None
    x_sumw: np.ndarray | None = None
    pt_min: np.ndarray | None = None
    # (n_groups, source categories): events (and weights) of each category in each group.
    cat_counts: np.ndarray | None = None
    cat_sumw: np.ndarray | None = None

    @classmethod
    def for_spec(cls, spec: "HistogramSpec", weighted: bool, count_dtype: type = np.int64) -> "CategoryHistograms":
        """Zero histograms of what ``spec`` fills."""
        hists = cls.empty(spec.grids, weighted, count_dtype, spec.acceptance)
        if spec.source_categories:
            shape = (spec.grids.n_categories, spec.source_categories)
            hists.cat_counts = np.zeros(shape, count_dtype)
            hists.cat_sumw = np.zeros(shape) if weighted else None
        return hists

    @classmethod
    def empty(
        cls, grids: HistogramGrids, weighted: bool, count_dtype: type = np.int64, acceptance: AcceptanceGrid | None = None
    ) -> "CategoryHistograms":
        """Zero histograms; one file's may count in ``np.int32``, halving what a Dask worker sends back."""
        n = grids.n_categories
        mass_shape, spred_shape = (n, grids.n_mass), (n, grids.n_spred + 2)
        x_shape = acceptance.shape if acceptance is not None else None
        return cls(
            grids,
            np.zeros(mass_shape, count_dtype),
            np.zeros(spred_shape, count_dtype),
            np.zeros(mass_shape) if weighted else None,
            np.zeros(mass_shape) if weighted else None,
            np.zeros(spred_shape) if weighted else None,
            acceptance,
            np.zeros(x_shape, count_dtype) if x_shape else None,
            np.zeros(x_shape) if x_shape and weighted else None,
            np.full(2, np.inf) if x_shape else None,
        )

    @classmethod
    def fill(
        cls, grids: HistogramGrids, mass_keys: np.ndarray, spred_keys: np.ndarray, weights: np.ndarray | None
    ) -> "CategoryHistograms":
        """Histograms of events given by their flat keys (``HistogramGrids.mass_keys``/``spred_keys``)."""
        hists = cls.empty(grids, weights is not None)
        hists.add_keys(mass_keys, spred_keys, weights)
        return hists

    def add_keys(
        self, mass_keys: np.ndarray | None, spred_keys: np.ndarray, weights: np.ndarray | None,
        x_keys: AcceptanceKeys | None = None, pt_min: tuple[float, float] | None = None, cat_keys: np.ndarray | None = None,
    ) -> None:  # fmt: skip
        """Add events given by their flat keys (no mass keys: sigma_pred only), in place, without a temporary of the histograms' size.

        The 1 added has the counts' own type: a Python int on int32 counts takes ``ufunc.at``'s slow
        path, 40 times slower.
        """
        one = self.spred_counts.dtype.type(1)
        if mass_keys is not None:
            np.add.at(self.mass_counts.reshape(-1), mass_keys, one)
        np.add.at(self.spred_counts.reshape(-1), spred_keys, one)
        if x_keys is not None:
            if self.x_counts is None or self.pt_min is None:
                raise ValueError("acceptance keys added to histograms without an acceptance grid")
            _add_bincount(self.x_counts, x_keys.keys)
            if pt_min is not None:
                np.minimum(self.pt_min, pt_min, out=self.pt_min)
        if cat_keys is not None:
            if self.cat_counts is None:
                raise ValueError("category keys added to histograms that do not count categories")
            _add_bincount(self.cat_counts, cat_keys)
        if weights is not None:
            if self.mass_sumw is None:
                raise ValueError("weighted events added to unweighted histograms")
            w = weights.astype(np.float64)
            if mass_keys is not None:
                np.add.at(self.mass_sumw.reshape(-1), mass_keys, w)
                np.add.at(self.mass_sumw2.reshape(-1), mass_keys, w * w)  # type: ignore[union-attr]
            np.add.at(self.spred_sumw.reshape(-1), spred_keys, w)  # type: ignore[union-attr]
            if cat_keys is not None:
                _add_bincount(self.cat_sumw, cat_keys, w)  # type: ignore[arg-type]
            if x_keys is not None:
                _add_bincount(self.x_sumw, x_keys.keys, x_keys.weights(w))  # type: ignore[arg-type]

    @property
    def weighted(self) -> bool:
        return self.mass_sumw is not None

    def add(self, other: "CategoryHistograms") -> None:
        """Add another file's histograms (same grids) in place."""
        self.add_counts(other)
        self.add_weights(other)

    def add_counts(self, other: "CategoryHistograms") -> None:
        """Add another file's event counts: integers, so the order of adding does not matter."""
        if other.grids != self.grids or other.weighted != self.weighted or other.acceptance != self.acceptance:
            raise ValueError("cannot add histograms of different binnings or weighting")
        self.mass_counts += other.mass_counts
        self.spred_counts += other.spred_counts
        if self.x_counts is not None:
            self.x_counts += other.x_counts
            np.minimum(self.pt_min, other.pt_min, out=self.pt_min)
        if self.cat_counts is not None:
            self.cat_counts += other.cat_counts

    def add_weights(self, other: "CategoryHistograms") -> None:
        """Add another file's sums of weights: floats, whose last digits depend on the order of adding."""
        for name in ("mass_sumw", "mass_sumw2", "spred_sumw", "x_sumw", "cat_sumw"):
            mine = getattr(self, name)
            if mine is not None:
                mine += getattr(other, name)

    def n_events(self, index: int) -> int:
        return int(self.mass_counts[index].sum())

    def sum_weights(self, index: int) -> float:
        return float(self.mass_sumw[index].sum()) if self.mass_sumw is not None else float(self.n_events(index))

    def effective_entries(self, index: int) -> float:
        """Kish effective sample size (sum w)^2 / sum w^2 of the category; its event count when unweighted."""
        if self.mass_sumw2 is None:
            return float(self.n_events(index))
        sumw2 = float(self.mass_sumw2[index].sum())
        return self.sum_weights(index) ** 2 / sumw2 if sumw2 > 0 else 0.0

    def spred_contents(self, index: int) -> np.ndarray:
        """Sum of weights (events when unweighted) per sigma_pred bin, under- and overflow included."""
        return (self.spred_counts[index] if self.spred_sumw is None else self.spred_sumw[index]).astype(np.float64)

    def mass_contents(self, index: int) -> np.ndarray:
        """Sum of weights (events when unweighted) per mass bin of group ``index``."""
        return (self.mass_counts[index] if self.mass_sumw is None else self.mass_sumw[index]).astype(np.float64)

    def x_contents(self, group: int) -> np.ndarray:
        """Sum of weights (events when unweighted) of acceptance group ``group``: ``(windows, knots, first passing knot)``.

        Raises:
            ValueError: these histograms were filled without an acceptance grid.
        """
        if self.x_counts is None:
            raise ValueError("no acceptance histograms were filled (fit.line_shape is not 'acceptance')")
        return (self.x_counts[group] if self.x_sumw is None else self.x_sumw[group]).astype(np.float64)

    def category_contents(self, group: int) -> np.ndarray | None:
        """Sum of weights (events when unweighted) of each source category in ``group``; None when not counted."""
        if self.cat_counts is None:
            return None
        return (self.cat_counts[group] if self.cat_sumw is None else self.cat_sumw[group]).astype(np.float64)

    def category_mass(self, index: int) -> MassHistogram:
        return MassHistogram(
            self.grids.mass_edges,
            self.mass_counts[index].copy(),
            None if self.mass_sumw is None else self.mass_sumw[index].copy(),
            None if self.mass_sumw2 is None else self.mass_sumw2[index].copy(),
        )

    def arrays(self) -> dict[str, np.ndarray]:
        """The histograms as named arrays (for the cache); ``from_arrays`` reverses it."""
        return {k: v for k, v in vars(self).items() if isinstance(v, np.ndarray)}

    @classmethod
    def from_arrays(
        cls, grids: HistogramGrids, arrays: dict[str, np.ndarray], acceptance: AcceptanceGrid | None = None
    ) -> "CategoryHistograms":
        optional = ("mass_sumw", "mass_sumw2", "spred_sumw", "x_counts", "x_sumw", "pt_min", "cat_counts", "cat_sumw")
        hists = cls(grids, **{k: arrays[k] for k in ("mass_counts", "spred_counts")}, **{k: arrays.get(k) for k in optional},
                    acceptance=acceptance)  # fmt: skip
        if (acceptance is None) != (hists.x_counts is None):
            raise ValueError("cached histograms and the requested acceptance grid disagree")
        return hists


def histogram_quantiles(contents: np.ndarray, counts: np.ndarray, edges: np.ndarray, quantiles: np.ndarray) -> np.ndarray:
    """Quantiles of a histogram with under- and overflow (``len(contents) == len(edges) + 1``).

    The convention of ``lib.resolution.weighted_quantile``: the cumulative distribution is
    interpolated between the events' weight midpoints (for equal weights, numpy's median; other
    quantiles differ from numpy's linear ones by less than an event's spacing). Each bin's
    ``counts[k]`` events are taken as evenly spread over it, each carrying ``contents[k] /
    counts[k]``, so the result is within one bin width of the quantile of the events themselves.
    NaN when the quantile falls in the under- or overflow (the grid does not cover it) or the
    histogram is empty.
    """
    contents = np.asarray(contents, dtype=np.float64)
    quantiles = np.atleast_1d(np.asarray(quantiles, dtype=np.float64))
    total = contents.sum()
    if not total > 0:
        return np.full(quantiles.shape, np.nan)
    inner = np.flatnonzero(counts[1:-1] > 0) + 1
    before = np.cumsum(contents)[inner] - contents[inner]
    half_event = 0.5 * contents[inner] / counts[inner]
    width = edges[inner] - edges[inner - 1]
    # Two knots per filled bin: its first and its last event (one knot twice for a single event).
    knot_cdf = np.column_stack([before + half_event, before + contents[inner] - half_event]).ravel()
    knot_value = np.column_stack(
        [edges[inner - 1] + 0.5 / counts[inner] * width, edges[inner - 1] + (1 - 0.5 / counts[inner]) * width]
    ).ravel()
    targets = quantiles * total
    values = np.interp(targets, knot_cdf, knot_value) if inner.size else np.full(targets.shape, np.nan)
    outside = (targets < contents[0]) | (targets > total - contents[-1])
    return np.where(outside, np.nan, values)


def category_spec(config: "Config", scheme: "CategoryScheme", fits: bool = True) -> HistogramSpec:
    """Steps 1-2: histograms per category on the grids of ``config``; acceptance per |eta|-region pair when the line shape needs it.

    ``fits``: the reduction feeds step 1. Without it (step 2 alone: medians) the acceptance, which
    costs as much as the rest of the reading, is not counted.
    """
    n = scheme.n_categories
    acceptance = acceptance_grid(config, scheme.n_eta**2, scheme.pt_edges) if fits else None
    return HistogramSpec(grids_from_config(config, n), ByCategory(n), acceptance=acceptance)


def acceptance_grid(config: "Config", n_groups: int, window_edges: Sequence[float]) -> AcceptanceGrid | None:
    """The window counts of ``fit.acceptance`` for ``n_groups`` groups, or None when the line shape is the plain Breit-Wigner."""
    if config.fit.line_shape != "acceptance":
        return None
    acc = config.fit.acceptance
    return AcceptanceGrid(
        n_groups, tuple(float(e) for e in window_edges), acc.lead_pt_min_gev, acc.sublead_pt_min_gev,
        tuple(config.selection.z_window_gev), acc.knot_spacing_gev,
    )  # fmt: skip


def grids_from_config(config: "Config", n_categories: int) -> HistogramGrids:
    """The grids of ``config``: mass over the Z window in ``fit.histogram_bin_gev`` bins, sigma_pred per ``step2``."""
    return HistogramGrids(
        n_categories=n_categories,
        mass_range_gev=tuple(config.selection.z_window_gev),
        mass_bin_gev=config.fit.histogram_bin_gev,
        spred_range_gev=tuple(config.step2.median_grid_gev),
        spred_relative_width=config.step2.median_relative_bin_width,
    )
