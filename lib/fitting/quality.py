"""Fit-quality gates: pure checks of an attempt's numbers, so no failed fit is mistaken for a result.

Every attempt is judged by the same explicit list of gates, where the original trusted every
fit (its shipped 2018 Data file holds a failed fit's factor for 30-45_EE). Each failure is a
human-readable line that ends up in the results table.
"""

from __future__ import annotations

import math

from lib.config import QualityConfig
from lib.fitting.result import AttemptRecord, ParamResult

FULL_ACCURATE_COVARIANCE = 3


def at_limit(value: float, lo: float | None, hi: float | None, tolerance: float) -> bool:
    """Whether ``value`` lies within ``tolerance`` of the range ``hi - lo`` from a limit.

    A parameter without both limits is never at a limit: there is no range to measure against.

    Example:
        >>> at_limit(0.0501, 0.05, 6.0, 0.001)
        True
        >>> at_limit(1.5, 0.05, 6.0, 0.001)
        False
        >>> at_limit(3.0, None, None, 0.001)
        False
    """
    if lo is None or hi is None or not (math.isfinite(lo) and math.isfinite(hi)):
        return False
    margin = tolerance * (hi - lo)
    return value <= lo + margin or value >= hi - margin


def shape_mismodelling(attempt: AttemptRecord) -> float:
    """RMS relative data/model difference per bin beyond statistics, estimated from chi2/NDF.

    For a relative mismodelling ``d`` in bins of ``n`` events, chi2/NDF ~ 1 + d**2 * n, so a fixed
    chi2/NDF threshold rejects any category once it has enough events; this estimate does not
    grow with the sample size. NaN when it cannot be formed.

    Example:
        >>> from types import SimpleNamespace
        >>> round(shape_mismodelling(SimpleNamespace(chi2_ndf=10.0, n_events=120_000, n_bins=120)), 3)
        0.095
    """
    if attempt.n_bins <= 0 or attempt.n_events <= 0 or not math.isfinite(attempt.chi2_ndf):
        return math.nan
    return math.sqrt(max(attempt.chi2_ndf - 1.0, 0.0) / (attempt.n_events / attempt.n_bins))


def _minimiser_failures(attempt: AttemptRecord) -> list[str]:
    """The gates Minuit/Hesse decide: fit status of every step, covariance quality, a usable error of the reported width."""
    failures: list[str] = []
    bad_steps = [f"{label}={code}" for label, code in attempt.status_history if code != 0]
    if attempt.status != 0 or bad_steps:
        detail = f" ({', '.join(bad_steps)})" if bad_steps else ""
        failures.append(f"fit status {attempt.status}{detail}, 0 required")
    if attempt.cov_qual != FULL_ACCURATE_COVARIANCE:
        failures.append(f"covariance quality {attempt.cov_qual}, {FULL_ACCURATE_COVARIANCE} (full, accurate) required")
    if not (math.isfinite(attempt.width_err) and attempt.width_err > 0):
        failures.append(f"sigma_fit error {attempt.width_err:g} is not a positive finite number")
    return failures


def covariance_failed(attempt: AttemptRecord) -> bool:
    """Whether Minuit/Hesse failed (status, covariance quality or the width's error), as opposed to the model.

    Restarting at the same minimum can repair a failed Hesse matrix but cannot change chi2, the
    peak offset or sigma itself, so the ladder skips such rungs when only the model failed.
    """
    return bool(_minimiser_failures(attempt))


def _offset_beyond(mean: ParamResult, quality: QualityConfig) -> bool:
    """Whether the DCB offset lies beyond ``max_peak_offset_gev`` by more than ``peak_offset_n_sigma`` of its error.

    In a category of a few thousand events the offset's own error is a sizeable part of the
    threshold, so a bare threshold would fail a fit for a 1-sigma fluctuation; in a large one the
    error is small and the threshold applies as it stands. A missing error counts as zero.
    """
    error = mean.error if math.isfinite(mean.error) and mean.error > 0 else 0.0
    return abs(mean.value) - quality.peak_offset_n_sigma * error > quality.max_peak_offset_gev


def evaluate_gates(
    attempt: AttemptRecord, quality: QualityConfig, median_sigma_pred: float, peak_offset: bool = False
) -> list[str]:
    """All gate failures of one fit attempt (its own ``failures`` ignored), one line each; empty: the attempt is usable.

    Gates, in this order: fit status 0 (every minimiser step of the final fit), full accurate
    covariance (covQual 3), a positive finite error of the reported width, no gated floating
    parameter at a limit (tail and background parameters at a limit are physical, e.g. no
    background, and only reported), chi2/NDF below ``max_chi2_ndf`` or a per-bin shape mismodelling
    (``shape_mismodelling``) below ``max_shape_mismodelling``, the reported width /
    ``median_sigma_pred`` (GeV) inside ``sigma_ratio_band`` (skipped where the median is unknown:
    non-finite or not positive), and with ``peak_offset`` (Z fits: ``mean`` is an offset from the
    Breit-Wigner mass) the offset within ``_offset_beyond``'s bound.
    """
    failures = _minimiser_failures(attempt)
    pinned = [p for p in attempt.params if not p.constant and p.at_limit and p.name in quality.limit_gated_params]
    if pinned:
        listed = ", ".join(f"{p.name}={p.value:.4g} in [{p.min:g}, {p.max:g}]" for p in pinned)
        failures.append(f"parameter at a limit: {listed}")
    if not (math.isfinite(attempt.chi2_ndf) and attempt.chi2_ndf <= quality.max_chi2_ndf):
        mismodel = shape_mismodelling(attempt)
        if not mismodel <= quality.max_shape_mismodelling:
            failures.append(
                f"chi2/NDF {attempt.chi2_ndf:.3g} above {quality.max_chi2_ndf:g} and data/model differ by "
                f"{mismodel:.1%} per bin (RMS), above {quality.max_shape_mismodelling:.0%}"
            )
    if math.isfinite(median_sigma_pred) and median_sigma_pred > 0:
        ratio = attempt.width / median_sigma_pred
        lo, hi = quality.sigma_ratio_band
        if not (math.isfinite(ratio) and lo <= ratio <= hi):
            failures.append(
                f"sigma_fit/median(sigma_pred) = {attempt.width:.4g}/{median_sigma_pred:.4g} = {ratio:.3g} outside [{lo:g}, {hi:g}]"
            )
    mean = next((p for p in attempt.params if p.name == "mean"), None)
    if peak_offset and mean is not None and not mean.constant and _offset_beyond(mean, quality):
        failures.append(
            f"peak offset mean={mean.value:+.3g}+-{mean.error:.2g} GeV beyond +-{quality.max_peak_offset_gev:g} GeV "
            f"by more than {quality.peak_offset_n_sigma:g} sigma (the core slid to absorb a tail: sigma is not the resolution)"
        )
    return failures
