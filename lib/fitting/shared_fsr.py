"""Radiation parameters shared by a group of fits (``fit.fsr_parameters``): the pooled fit's input, and the fixed specs.

Final-state radiation belongs to the decay, not to the detector category: the share of events
that radiate and their mean mass loss are, to first order, the same in every category (or closure
bin, or Higgs bin). A small category, or one whose leading-pT window cuts the high-mass side of
the peak, cannot tell a floating radiation from its own tails, and both come out degenerate. So a
group of fits first fits all its events together once, radiation floating (``lib.peak_fits``),
and each fit of the group then takes ``fsr_scale`` (``shared_scale``, the default) or both
``fsr_fraction`` and ``fsr_scale`` (``shared``) fixed at the pooled fit's values. With
``shared_scale`` each fit floats its fraction: the window's cut on the reconstructed leading pT
sculpts each category's low side, which a fixed fraction cannot follow.

The pooled fit has one symmetric DCB for a mixture of resolutions: a symmetric mixture, which the
DCB's core and symmetric tails take, while the radiation is one-sided. Its acceptance is that of
the pooled events: each fit's ``A(m)`` weighted by its events in the fit range over its
normalisation under the line shape (``pooled_acceptance``). Pure numpy and specs: no ROOT.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from lib.config import FitSpec
from lib.config.schema import FSR_PARAMETERS
from lib.errors import FitError
from lib.fitting.task import AcceptanceTable, FitEvents
from lib.histograms import MassHistogram

# The pooled fit's name: its figure, its log and its cache entry are filed under it beside the group's fits.
SHARED_FSR_NAME = "fsr_shared"
# By ``fit.fsr_parameters``: the radiation parameters the group's fits take from the pooled fit.
SHARED_PARAMETERS = {"shared": FSR_PARAMETERS, "shared_scale": ("fsr_scale",), "per_fit": ()}


def pooled_events(events: Sequence[FitEvents]) -> FitEvents:
    """All the fits' events as one: their mass histograms summed (binned), or their events and weights concatenated.

    Raises:
        FitError: histograms on different grids, or histograms and events mixed.
    """
    if not events:
        raise FitError("no fits to pool the events of")
    histograms = [e.histogram for e in events if e.histogram is not None]
    if histograms and len(histograms) != len(events):
        raise FitError("cannot pool mass histograms with unbinned events")
    if histograms:
        edges = histograms[0].edges
        if any(h.edges.shape != edges.shape or not np.array_equal(h.edges, edges) for h in histograms):
            raise FitError("cannot pool mass histograms on different grids")
        weighted = any(h.sumw is not None for h in histograms)

        def summed(field: str) -> np.ndarray | None:
            if not weighted:
                return None
            contents = [getattr(h, field) if getattr(h, field) is not None else h.counts.astype(np.float64) for h in histograms]
            return np.sum(contents, axis=0)

        counts = np.sum([h.counts for h in histograms], axis=0)
        return FitEvents(histogram=MassHistogram(edges, counts, summed("sumw"), summed("sumw2")))
    masses = np.concatenate([np.asarray(e.masses, dtype=np.float64) for e in events])
    if not any(e.weights is not None for e in events):
        return FitEvents(masses)
    weights = [np.ones(len(e.masses)) if e.weights is None else np.asarray(e.weights, dtype=np.float64) for e in events]  # type: ignore[arg-type]
    return FitEvents(masses, np.concatenate(weights))


def events_in_range(events: FitEvents, range_gev: tuple[float, float]) -> float:
    """The sum of weights (the count, unweighted) of ``events`` inside ``range_gev``: a fit's share of the pooled events.

    Example:
        >>> events_in_range(FitEvents(np.array([74.0, 80.0, 90.0]), np.array([1.0, 0.5, 2.0])), (75.0, 105.0))
        2.5
    """
    lo, hi = range_gev
    histogram = events.histogram
    if histogram is not None:
        centres = 0.5 * (histogram.edges[1:] + histogram.edges[:-1])
        contents = histogram.counts if histogram.sumw is None else histogram.sumw
        return float(np.sum(contents[(centres > lo) & (centres < hi)]))
    masses = np.asarray(events.masses, dtype=np.float64)
    inside = (masses > lo) & (masses < hi)
    return float(np.sum(events.weights[inside]) if events.weights is not None else np.count_nonzero(inside))


def pooled_acceptance(tables: Sequence[AcceptanceTable], n_events: Sequence[float], mass_gev: float, width_gev: float) -> AcceptanceTable:
    """The acceptance of the pooled events: each fit's ``A(m)`` weighted by its events (``n_events``) over its normalisation, at most 1.

    A fit with ``N`` events and acceptance ``A`` contributes ``N A(m) f(m) / integral(A f)`` to
    the pooled mass distribution, ``f`` the true line shape; ``f`` is taken as the Breit-Wigner of
    ``mass_gev`` and ``width_gev`` for the normalisation (the resolution smears it on a scale the
    acceptance barely changes over). All tables are read on the first one's knots.

    Example:
        >>> flat = AcceptanceTable((1.0, 1.0, 1.0), (80.0, 100.0))
        >>> pooled_acceptance([flat, AcceptanceTable((0.0, 1.0, 0.0), (80.0, 100.0))], [1.0, 0.0], 91.2, 2.5).values
        (1.0, 1.0, 1.0)
    """
    if not tables:
        raise FitError("no acceptance tables to pool")
    lo, hi = tables[0].range_gev
    knots = np.linspace(lo, hi, len(tables[0].values))
    breit_wigner = 1.0 / ((knots * knots - mass_gev * mass_gev) ** 2 + (mass_gev * width_gev) ** 2)
    pooled = np.zeros_like(knots)
    for table, n in zip(tables, n_events, strict=True):
        table_knots = np.linspace(*table.range_gev, len(table.values))
        values = np.interp(knots, table_knots, np.asarray(table.values, dtype=np.float64))
        norm = float(np.sum(values * breit_wigner))
        if n > 0 and norm > 0:
            pooled += n * values / norm
    peak = pooled.max()
    return AcceptanceTable(tuple((pooled / peak if peak > 0 else np.ones_like(knots)).tolist()), (lo, hi))


def pooled_median(medians: Sequence[float], n_events: Sequence[float]) -> float:
    """The events-weighted median of the fits' median sigma_pred (NaN without a finite one): the pooled fit's plausibility gate.

    Example:
        >>> pooled_median([1.0, 2.0, 3.0], [10, 1, 1])
        1.0
    """
    values, weights = np.asarray(medians, dtype=np.float64), np.asarray(n_events, dtype=np.float64)
    good = np.isfinite(values) & (weights > 0)
    if not good.any():
        return float("nan")
    order = np.argsort(values[good])
    cumulative = np.cumsum(weights[good][order])
    return float(values[good][order][np.searchsorted(cumulative, 0.5 * cumulative[-1])])


def with_fixed_radiation(spec: FitSpec, values: Mapping[str, float]) -> FitSpec:
    """``spec`` with the radiation parameters in ``values`` (the pooled fit's) constant there, inside their limits."""
    params = dict(spec.params)
    for name in values:
        current = params[name]
        value = float(values[name])
        if current.min is not None:
            value = max(value, current.min)
        if current.max is not None:
            value = min(value, current.max)
        params[name] = current.model_copy(update={"value": value, "constant": True})
    return spec.model_copy(update={"params": params})
