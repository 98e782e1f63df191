"""The predicted resolution an event would have at the peak mass: a binning that does not slice the peak.

The closure and Higgs checks fit the mass peak in bins of (calibrated) sigma_pred. Any part of
the binning variable that changes with the event's mass selects a slice of the line shape, and
three parts of sigma_pred do (at fixed decay angles every muon pT scales with the mass): the
explicit ``m`` in ``m/2 * sqrt(r1^2 + r2^2)``, each muon's ``r = ptErr / pT`` (the curvature
term grows with pT), and the factor of the leading-muon pT category. Each alone biases the outer
bins' widths (docs/validation.md). So an event is binned on its prediction at ``m_peak``: mass
set to ``m_peak``, muon pT scaled by ``m_peak / m``, ``r`` moved along the measured pT dependence
and the factor of the scaled leading pT's category.

The pT dependence is measured from the same events: the mean of ``ln r`` in bins of ``|eta|``
and ``ln pT``, and per bin the slope ``d ln r / d ln pT`` of a kernel-weighted local linear fit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from lib.categories import CategoryScheme

# Below this many muons an |eta| bin's own slopes are not trusted and those of all bins are used.
MIN_MUONS_PER_ROW = 200


@dataclass(frozen=True)
class ProfileGrid:
    """Bins of ``|eta|`` (uniform up to ``abseta_max``) and of ``ln pT`` (uniform over ``pt_range_gev``).

    ``bandwidth``: the width in ``ln pT`` of the kernel of the local slope fits.
    """

    abseta_max: float
    n_abseta: int
    pt_range_gev: tuple[float, float]
    n_pt: int
    bandwidth: float = 0.15

    @property
    def shape(self) -> tuple[int, int]:
        return self.n_abseta, self.n_pt

    def log_pt_centres(self) -> np.ndarray:
        lo, hi = np.log(self.pt_range_gev)
        edges = np.linspace(lo, hi, self.n_pt + 1)
        return 0.5 * (edges[1:] + edges[:-1])

    def index(self, abseta: np.ndarray, pt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(|eta| bin, ln pT bin)`` of each muon, clamped into the grid."""
        i_eta = np.clip((np.abs(abseta) * (self.n_abseta / self.abseta_max)).astype(np.int64), 0, self.n_abseta - 1)
        lo, hi = np.log(self.pt_range_gev)
        position = (np.log(np.maximum(pt, 1e-6)) - lo) * (self.n_pt / (hi - lo))
        i_pt = np.clip(position.astype(np.int64), 0, self.n_pt - 1)
        return i_eta, i_pt


def profile_sums(grid: ProfileGrid, abseta: np.ndarray, pt: np.ndarray, relative_error: np.ndarray) -> np.ndarray:
    """``(2, n_abseta, n_pt)``: muon count and sum of ``ln(ptErr / pT)`` per bin; sums of files add up."""
    i_eta, i_pt = grid.index(abseta, pt)
    flat = i_eta * grid.n_pt + i_pt
    size = grid.n_abseta * grid.n_pt
    counts = np.bincount(flat, minlength=size).astype(np.float64)
    sums = np.bincount(flat, weights=np.log(relative_error.astype(np.float64)), minlength=size)
    return np.stack([counts, sums]).reshape(2, *grid.shape)


def _local_slopes(x: np.ndarray, counts: np.ndarray, log_sums: np.ndarray, bandwidth: float) -> np.ndarray | None:
    """Slope of the mean ``ln r`` at each ``x``: a linear fit weighted by counts and a Gaussian kernel in ``x``.

    Local, so the curvature of ``ln r(ln pT)`` (flat where the constant term dominates, slope 1 where
    the curvature term does) does not bend the slope at the ends of the range as a global polynomial
    does. None when fewer than three bins are filled.
    """
    filled = counts > 0
    if np.count_nonzero(filled) < 3:
        return None
    xf, mean, w = x[filled], log_sums[filled] / counts[filled], counts[filled]
    kernel = w[None, :] * np.exp(-0.5 * ((xf[None, :] - x[:, None]) / bandwidth) ** 2)
    s0, s1, s2 = kernel.sum(1), (kernel * xf).sum(1), (kernel * xf**2).sum(1)
    t0, t1 = (kernel * mean).sum(1), (kernel * xf * mean).sum(1)
    denominator = s0 * s2 - s1**2
    return np.divide(s0 * t1 - s1 * t0, denominator, out=np.zeros_like(s0), where=denominator > 1e-12 * s0**2)


@dataclass(frozen=True)
class PtDependence:
    """Local slope ``d ln r / d ln pT`` per ``|eta|`` and ``ln pT`` bin, over each ``|eta|`` bin's filled ``ln pT`` range."""

    grid: ProfileGrid
    slopes: tuple[tuple[float, ...], ...]
    log_pt_span: tuple[tuple[float, float], ...]

    @classmethod
    def from_sums(cls, grid: ProfileGrid, sums: np.ndarray) -> "PtDependence":
        """The slopes from summed ``profile_sums``; an |eta| bin with too few muons takes those of all bins.

        A profile with no muons at all gives zero slopes (r then does not move with pT).
        """
        counts, log_sums = np.asarray(sums[0], dtype=np.float64), np.asarray(sums[1], dtype=np.float64)
        x = grid.log_pt_centres()
        # All |eta| bins together: their offsets differ, so use the deviations from each row's mean.
        totals = counts.sum(axis=1)
        row_means = np.divide(log_sums.sum(axis=1), totals, out=np.zeros(grid.n_abseta), where=totals > 0)
        pooled_counts = counts.sum(axis=0)
        pooled = _local_slopes(x, pooled_counts, (log_sums - counts * row_means[:, None]).sum(axis=0), grid.bandwidth)
        fallback = (np.zeros(grid.n_pt), (0.0, 0.0)) if pooled is None else (pooled, _span(x, pooled_counts))
        slopes, spans = [], []
        for c, s in zip(counts, log_sums):
            row = _local_slopes(x, c, s, grid.bandwidth) if c.sum() >= MIN_MUONS_PER_ROW else None
            values, span = (row, _span(x, c)) if row is not None else fallback
            slopes.append(tuple(float(v) for v in values))
            spans.append(span)
        return cls(grid, tuple(slopes), tuple(spans))

    def log_slope(self, abseta: np.ndarray, pt: np.ndarray) -> np.ndarray:
        """``d ln r / d ln pT`` of each muon (linear between bin centres, at the nearest filled pT outside them)."""
        i_eta, _ = self.grid.index(abseta, pt)
        span = np.asarray(self.log_pt_span, dtype=np.float64)[i_eta]
        log_pt = np.clip(np.log(np.maximum(pt, 1e-6)), span[:, 0], span[:, 1])
        x = self.grid.log_pt_centres()
        position = np.clip((log_pt - x[0]) / (x[1] - x[0]), 0.0, self.grid.n_pt - 1.0)
        below = np.minimum(position.astype(np.int64), self.grid.n_pt - 2)
        frac = position - below
        table = np.asarray(self.slopes, dtype=np.float64)
        return table[i_eta, below] * (1.0 - frac) + table[i_eta, below + 1] * frac


def _span(x: np.ndarray, counts: np.ndarray) -> tuple[float, float]:
    """The ``ln pT`` range of the filled bins' centres."""
    filled = x[counts > 0]
    return float(filled.min()), float(filled.max())


@dataclass(frozen=True)
class PeakScaling:
    """How to move an event's prediction to the peak mass: the measured pT dependence and the categories of the factors."""

    dependence: PtDependence
    scheme: CategoryScheme

    def values(self, muons: Mapping[str, np.ndarray], mass: np.ndarray, peak_gev: float, factors: Sequence[float] | None) -> np.ndarray:
        """The (calibrated: ``factors`` per category) sigma_pred of each event moved to ``peak_gev``, in float64.

        ``muons``: ``mu1_pt``, ``mu1_ptErr``, ``mu1_eta``, ``mu2_*`` (mu1 the leading muon).
        """
        scale = peak_gev / mass.astype(np.float64)
        log_scale = np.log(scale)
        squares = np.zeros(len(mass))
        for mu in ("mu1", "mu2"):
            pt = muons[f"{mu}_pt"].astype(np.float64)
            r = muons[f"{mu}_ptErr"].astype(np.float64) / pt
            squares += (r * np.exp(self.dependence.log_slope(np.abs(muons[f"{mu}_eta"]), pt) * log_scale)) ** 2
        values = 0.5 * peak_gev * np.sqrt(squares)
        if factors is None:
            return values
        # The scaled leading pT is kept inside the categories: it only chooses the factor.
        edges = self.scheme.pt_edges
        lead_pt = np.clip(muons["mu1_pt"].astype(np.float64) * scale, edges[0], np.nextafter(edges[-1], -np.inf))
        category = self.scheme.assign(lead_pt, np.abs(muons["mu1_eta"]), np.abs(muons["mu2_eta"]))
        return values * np.asarray(factors, dtype=np.float64)[category]
