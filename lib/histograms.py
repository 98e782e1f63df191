"""Histograms per group of events filled while the files are read: all that binned fits and medians need.

Per group (a category in steps 1-2, a bin of calibrated sigma_pred in the closure and Higgs
checks: ``lib.histogram_specs``) a reduction fills fixed-size ``hist`` histograms, so memory does
not grow with the events, and a run's histograms pickle and add up with ``+``:

- mass: a uniform fine grid over the Z window; every binned fit's bins are sums of its bins;
- sigma_pred: a log-spaced grid of constant relative bin width with under- and overflow; the
  median interpolated in it (``lib.medians``) is within the bin's relative width of the exact one;
- optionally the window acceptance (``lib.acceptance.AcceptanceGrid``) and the source categories.

Event counts (``Int64``) and sums of weights (``Weight`` for the mass: sum w and sum w^2) are
separate histograms: the medians need each bin's events as well as its weight, and the merge adds
counts as files arrive but weights in file order (``lib.io.merge``).

A file is filled into a ``HistogramPart``: plain ``int32``/``float64`` arrays laid out as the hist
storage, which a reading task (a Dask worker too) hands back and ``CategoryHistograms`` adds.
``np.zeros`` leaves the pages a file never touches to the kernel, where a hist object writes its
whole storage. Bins are computed with numpy (``HistogramGrids.mass_keys``/``spred_keys``) and added
with ``np.add.at``: ``Hist.fill`` puts some masses lying on a fine-grid edge in the neighbouring
bin, and is slower (``benchmarks/histogram_fill.py``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import hist
    from hist import Hist

    from lib.acceptance import AcceptanceGrid
    from lib.config import Config
    from lib.histogram_specs import EventKeys, HistogramSpec


def _plain_view(histogram: Hist, field: str | None) -> np.ndarray:
    """The histogram's bins (flow included) as a plain-numpy view of its storage shaped as its axes (``field`` of a ``Weight`` one).

    Counts are re-viewed as numpy's own ``int64``: the buffer's ``long long`` is the same type
    under another code, which numpy's loops treat as a cast.
    """
    view = np.asarray(histogram.view(flow=True))
    return view[field] if field else view.view(np.dtype(view.dtype.str))


def _add_bincount(flat: np.ndarray, keys: np.ndarray, weights: np.ndarray | None = None) -> None:
    """Add the events (or weights) of flat ``keys`` into ``flat`` in place; key ``flat.size`` (an event counted nowhere) is dropped.

    ``np.bincount`` rather than ``np.add.at``: the acceptance gives tens of keys per event.
    """
    flat += np.bincount(keys, weights, minlength=flat.size + 1)[: flat.size]


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

    @cached_property
    def spred_edges(self) -> np.ndarray:
        """The inner sigma_pred edges the medians interpolate on: those of the histogram's axis, from numpy (made once per grids)."""
        lo, hi = self.spred_range_gev
        edges = np.geomspace(lo, hi, self.n_spred + 1)
        edges.flags.writeable = False  # shared by every caller
        return edges

    def mass_keys(self, group: np.ndarray, mass: np.ndarray) -> np.ndarray:
        """Flat index of each event's (group, mass bin) in the histogram's storage; masses are inside the window by construction."""
        lo, _ = self.mass_range_gev
        bins = np.floor((mass.astype(np.float64) - lo) / self.mass_bin_gev).astype(np.int32)
        np.clip(bins, 0, self.n_mass - 1, out=bins)
        bins *= self.n_categories
        bins += group.astype(np.int32)
        return bins

    def spred_keys(self, group: np.ndarray, spred: np.ndarray) -> np.ndarray:
        """Flat index of each event's (group, sigma_pred bin) in the histogram's storage, flow bins included (bin 0: underflow).

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
        bins *= self.n_categories
        bins += group.astype(np.int32)
        return bins


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
class HistogramContents:
    """One kind of content of a set's histograms, each ``(group, ...)``: event counts, or sums of weights."""

    mass: Hist
    spred: Hist
    acceptance: Hist | None  # (group, window, knot, first passing knot): ``AcceptanceGrid.shape``
    categories: Hist | None  # (group, source category)

    @classmethod
    def empty(cls, grids: HistogramGrids, acceptance: AcceptanceGrid | None, source_categories: int, weights: bool) -> HistogramContents:
        """Zero histograms: ``Int64`` event counts, or sums of weights (``Weight`` for the mass, whose sum w^2 the fits need).

        ``hist`` is imported here: a Dask worker fills ``HistogramPart``s only and never needs it.
        """
        import hist

        def integer(n: int, name: str) -> hist.axis.Integer:
            return hist.axis.Integer(0, n, underflow=False, overflow=False, name=name)

        storage = hist.storage.Double if weights else hist.storage.Int64
        group = integer(grids.n_categories, "group")
        x = None
        if acceptance is not None:
            names = ("group", "window", "knot", "first_passing_knot")
            x = hist.Hist(*(integer(n, name) for n, name in zip(acceptance.shape, names)), storage=storage())
        categories = hist.Hist(group, integer(source_categories, "category"), storage=storage()) if source_categories else None
        (m_lo, m_hi), (s_lo, s_hi) = grids.mass_range_gev, grids.spred_range_gev
        mass = hist.axis.Regular(grids.n_mass, m_lo, m_hi, underflow=False, overflow=False, name="mass", label="m(mu mu) [GeV]")
        spred = hist.axis.Regular(grids.n_spred, s_lo, s_hi, transform=hist.axis.transform.log, name="sigma_pred", label="sigma_pred [GeV]")
        mass_storage = hist.storage.Weight() if weights else storage()
        return cls(hist.Hist(group, mass, storage=mass_storage), hist.Hist(group, spred, storage=storage()), x, categories)

    def view(self, name: str, field: str | None = None) -> np.ndarray:
        """Histogram ``name``'s bins as ``_plain_view`` gives them, made once: each ``Hist.view`` parses the buffer's format anew."""
        views = self.__dict__.setdefault("_views", {})
        if (name, field) not in views:
            views[name, field] = _plain_view(getattr(self, name), field)
        return views[name, field]

    def storage(self, name: str, field: str | None = None) -> np.ndarray:
        """Histogram ``name``'s bins as a flat view of its storage, first axis fastest: the order of
        ``HistogramGrids.mass_keys``/``spred_keys``, the acceptance keys and a ``HistogramPart``'s arrays."""
        return self.view(name, field).T.reshape(-1)

    def __getstate__(self) -> dict:
        """The histograms without the cached views, which would travel as copies."""
        return {k: v for k, v in self.__dict__.items() if k != "_views"}


# A ``HistogramPart``'s arrays by name: which content, which histogram, which field of a ``Weight`` storage.
_ARRAYS = {
    "mass_counts": ("counts", "mass", None),
    "spred_counts": ("counts", "spred", None),
    "x_counts": ("counts", "acceptance", None),
    "cat_counts": ("counts", "categories", None),
    "mass_sumw": ("weights", "mass", "value"),
    "mass_sumw2": ("weights", "mass", "variance"),
    "spred_sumw": ("weights", "spred", None),
    "x_sumw": ("weights", "acceptance", None),
    "cat_sumw": ("weights", "categories", None),
}


@dataclass(frozen=True)
class HistogramPart:
    """One file's events in one spec's histograms: ``arrays`` named as in ``_ARRAYS``, each flat in ``HistogramContents.storage`` order.

    Counts are ``int32`` (one file's fit), sums of weights ``float64``; ``pt_min`` is the smallest
    leading and subleading pT filled (with an acceptance grid).
    """

    arrays: dict[str, np.ndarray]
    pt_min: np.ndarray | None

    @classmethod
    def for_spec(cls, spec: HistogramSpec, weighted: bool) -> HistogramPart:
        """Zero arrays of what ``spec`` fills: mass and sigma_pred, and the acceptance and source categories where counted."""
        grids, acceptance, n = spec.grids, spec.acceptance, spec.grids.n_categories
        sizes = {"mass": n * grids.n_mass, "spred": n * (grids.n_spred + 2), "categories": n * spec.source_categories,
                 "acceptance": math.prod(acceptance.shape) if acceptance is not None else 0}  # fmt: skip
        arrays = {
            name: np.zeros(sizes[histogram], np.int32 if kind == "counts" else np.float64)
            for name, (kind, histogram, _) in _ARRAYS.items()
            if sizes[histogram] and (kind == "counts" or weighted)
        }
        return cls(arrays, np.full(2, np.inf) if acceptance is not None else None)

    def add_keys(self, keys: EventKeys) -> None:
        """Add a chunk's events given by their flat keys (no mass keys: sigma_pred only), in place.

        The 1 added has the counts' own type: a Python int takes ``np.add.at``'s slow path.
        """
        arrays, one = self.arrays, np.int32(1)
        if keys.mass is not None:
            np.add.at(arrays["mass_counts"], keys.mass, one)
        np.add.at(arrays["spred_counts"], keys.spred, one)
        if keys.acceptance is not None:
            _add_bincount(arrays["x_counts"], keys.acceptance.keys)
            if keys.pt_min is not None:
                np.minimum(self.pt_min, keys.pt_min, out=self.pt_min)
        if keys.categories is not None:
            _add_bincount(arrays["cat_counts"], keys.categories)
        if keys.weights is not None:
            self._add_weights(keys, keys.weights.astype(np.float64))

    def _add_weights(self, keys: EventKeys, w: np.ndarray) -> None:
        """Add a chunk's weights ``w`` (float64) at its keys; the mass also gets their squares."""
        arrays = self.arrays
        if keys.mass is not None:
            np.add.at(arrays["mass_sumw"], keys.mass, w)
            np.add.at(arrays["mass_sumw2"], keys.mass, w * w)
        np.add.at(arrays["spred_sumw"], keys.spred, w)
        if keys.categories is not None:
            _add_bincount(arrays["cat_sumw"], keys.categories, w)
        if keys.acceptance is not None:
            _add_bincount(arrays["x_sumw"], keys.acceptance.keys, keys.acceptance.weights(w))


@dataclass
class CategoryHistograms:
    """Mass and sigma_pred histograms of every group (and what else its spec counts); ``add`` adds a file's ``HistogramPart`` in place."""

    grids: HistogramGrids
    counts: HistogramContents
    weights: HistogramContents | None  # None: unweighted events
    acceptance: AcceptanceGrid | None = None
    # The smallest leading and subleading pT histogrammed (with an acceptance grid), which tell
    # the pT thresholds of the input (min over files, so also order-independent).
    pt_min: np.ndarray | None = None

    @classmethod
    def for_spec(cls, spec: HistogramSpec, weighted: bool) -> CategoryHistograms:
        """Zero histograms of what ``spec`` fills."""
        grids, acceptance, categories = spec.grids, spec.acceptance, spec.source_categories
        counts = HistogramContents.empty(grids, acceptance, categories, weights=False)
        weights = HistogramContents.empty(grids, acceptance, categories, weights=True) if weighted else None
        return cls(grids, counts, weights, acceptance, np.full(2, np.inf) if acceptance is not None else None)

    def add(self, part: HistogramPart) -> None:
        """Add a file's histograms (same grids) in place."""
        self.add_counts(part)
        self.add_weights(part)

    def add_counts(self, part: HistogramPart) -> None:
        """Add a file's event counts: integers, so the order of adding does not matter."""
        self._add_arrays(part, "counts")
        if self.pt_min is not None:
            np.minimum(self.pt_min, part.pt_min, out=self.pt_min)

    def add_weights(self, part: HistogramPart) -> None:
        """Add a file's sums of weights: floats, whose last digits depend on the order of adding."""
        self._add_arrays(part, "weights")

    def _add_arrays(self, part: HistogramPart, kind: str) -> None:
        """Add the part's arrays of one kind of content (``counts`` or ``weights``) into the hist storage."""
        for name, array in part.arrays.items():
            content, histogram, field = _ARRAYS[name]
            if content == kind:
                storage = getattr(self, kind).storage(histogram, field)
                np.add(storage, array, out=storage)

    def _row(self, kind: str, name: str, index: int, field: str | None = None) -> np.ndarray:
        """Group ``index``'s bins (flow included) of one histogram, as a contiguous copy."""
        return np.ascontiguousarray(getattr(self, kind).view(name, field)[index])

    def _contents(self, name: str, index: int) -> np.ndarray:
        """Sum of weights (events when unweighted) per bin of group ``index`` of one histogram."""
        field = "value" if name == "mass" and self.weights is not None else None
        return self._row("counts" if self.weights is None else "weights", name, index, field).astype(np.float64)

    def n_events(self, index: int) -> int:
        return int(self._row("counts", "mass", index).sum())

    def sum_weights(self, index: int) -> float:
        return float(self._row("weights", "mass", index, "value").sum()) if self.weights is not None else float(self.n_events(index))

    def effective_entries(self, index: int) -> float:
        """Kish effective sample size (sum w)^2 / sum w^2 of the group; its event count when unweighted."""
        if self.weights is None:
            return float(self.n_events(index))
        sumw2 = float(self._row("weights", "mass", index, "variance").sum())
        return self.sum_weights(index) ** 2 / sumw2 if sumw2 > 0 else 0.0

    def spred_counts(self, index: int) -> np.ndarray:
        """Events per sigma_pred bin of group ``index``, under- and overflow included."""
        return self._row("counts", "spred", index)

    def spred_contents(self, index: int) -> np.ndarray:
        """Sum of weights (events when unweighted) per sigma_pred bin, under- and overflow included."""
        return self._contents("spred", index)

    def mass_contents(self, index: int) -> np.ndarray:
        """Sum of weights (events when unweighted) per mass bin of group ``index``."""
        return self._contents("mass", index)

    def x_contents(self, group: int) -> np.ndarray:
        """Sum of weights (events when unweighted) of acceptance group ``group``: ``(windows, knots, first passing knot)``.

        Raises:
            ValueError: these histograms were filled without an acceptance grid.
        """
        if self.counts.acceptance is None:
            raise ValueError("no acceptance histograms were filled (fit.line_shape is not 'acceptance')")
        return self._contents("acceptance", group)

    def category_contents(self, group: int) -> np.ndarray | None:
        """Sum of weights (events when unweighted) of each source category in ``group``; None when not counted."""
        return None if self.counts.categories is None else self._contents("categories", group)

    def category_mass(self, index: int) -> MassHistogram:
        weighted = self.weights is not None
        return MassHistogram(
            self.grids.mass_edges,
            self._row("counts", "mass", index),
            self._row("weights", "mass", index, "value") if weighted else None,
            self._row("weights", "mass", index, "variance") if weighted else None,
        )


def grids_from_config(config: Config, n_categories: int) -> HistogramGrids:
    """The grids of ``config``: mass over the Z window in ``fit.histogram_bin_gev`` bins, sigma_pred per ``step2``."""
    return HistogramGrids(
        n_categories=n_categories,
        mass_range_gev=tuple(config.selection.z_window_gev),
        mass_bin_gev=config.fit.histogram_bin_gev,
        spred_range_gev=tuple(config.step2.median_grid_gev),
        spred_relative_width=config.step2.median_relative_bin_width,
    )
