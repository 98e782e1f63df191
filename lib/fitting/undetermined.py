"""Which tail and background parameters the data cannot determine, decided after the first ``fitTo``.

A double-sided Crystal Ball has two directions the data of one category often do not constrain:
a parameter pressed against a limit (alpha at its floor, a background fraction at 0, n at its
ceiling), and the power ``n`` of a tail that starts so far out that it holds no events (large
alpha). Left floating, they make Hesse's matrix singular or not positive definite, and the fit
fails on covariance quality although sigma and the chi2 are fine. A Minuit error of a parameter at
a bound is not defined anyway, so the nominal fit fixes them where the first ``fitTo`` left them
and lets the second ``fitTo`` (with Hesse) float the rest. The chi2/NDF then counts only what
floated (``floatParsFinal``).

Hesse then shows a third kind: a parameter whose error is larger than its whole allowed range
(a large ``n`` behind a small alpha) is not measured by the data either. Its flat direction leaks
into sigma's linear error, which then exceeds what MINOS gives on sigma several times over. Fixed
where the fit left it, the refit at the same minimum gives sigma an error that agrees with MINOS
(``unmeasured_params``; measured in docs/validation.md). Pure numbers, no ROOT, so the rules are
tested on their own.
"""

from __future__ import annotations

import math
from typing import Mapping

from lib.fitting.quality import at_limit

TAIL_SIDES = (("alpha_left", "n_left"), ("alpha_right", "n_right"))


def undetermined_params(
    values: Mapping[str, float],
    limits: Mapping[str, tuple[float | None, float | None]],
    candidates: tuple[str, ...],
    tolerance: float,
    no_tail_alpha: float,
) -> tuple[str, ...]:
    """The floating ``candidates`` to fix before the Hesse fit, in ``candidates`` order.

    Args:
        values: first-stage value of every floating parameter by spec name.
        limits: ``(min, max)`` of those parameters.
        candidates: parameters the rule may fix (never sigma or mean: the calibration is sigma).
        tolerance: fraction of a parameter's range within which it counts as at a limit.
        no_tail_alpha: a tail starting beyond this many sigma holds nothing measurable
            (a Gaussian keeps 6e-7 of its events beyond 5 sigma), so its ``alpha`` and ``n`` are fixed.

    Example:
        >>> lim = {"alpha_left": (1.5, 10.0), "n_left": (1.01, 60.0), "alpha_right": (1.5, 10.0), "n_right": (1.01, 60.0)}
        >>> undetermined_params({"alpha_left": 1.5, "n_left": 3.0, "alpha_right": 9.0, "n_right": 50.0}, lim,
        ...                     ("alpha_left", "n_left", "alpha_right", "n_right"), 0.001, 5.0)
        ('alpha_left', 'alpha_right', 'n_right')
    """
    fixed = {name for name in candidates if name in values and at_limit(values[name], *limits[name], tolerance)}
    for alpha, power in TAIL_SIDES:
        if alpha in values and values[alpha] >= no_tail_alpha:
            fixed.update(n for n in (alpha, power) if n in candidates and n in values)
    fraction = "bkg_fraction"
    if fraction in fixed and "bkg_slope" in candidates and "bkg_slope" in values:
        low, high = limits[fraction]
        if low is not None and high is not None and values[fraction] <= low + tolerance * (high - low):
            fixed.add("bkg_slope")  # at its lower limit: no background left to have a slope
    return tuple(name for name in candidates if name in fixed)


def unmeasured_params(
    errors: Mapping[str, float],
    limits: Mapping[str, tuple[float | None, float | None]],
    candidates: tuple[str, ...],
    max_error_to_range: float,
) -> tuple[str, ...]:
    """The floating ``candidates`` whose Hesse error exceeds ``max_error_to_range`` times their allowed range.

    Args:
        errors: Hesse error of every floating parameter by spec name.
        limits: ``(min, max)`` of those parameters; an unbounded one is never reported.
        candidates: parameters the rule may fix (never sigma or mean).
        max_error_to_range: an error above this fraction of the range means the data do not
            constrain the parameter inside its limits.

    Example:
        >>> lim = {"alpha_right": (1.5, 10.0), "n_right": (1.01, 60.0), "n_left": (1.01, 60.0)}
        >>> unmeasured_params({"alpha_right": 8.8, "n_right": 9381.0, "n_left": 1.7}, lim,
        ...                   ("n_left", "alpha_right", "n_right"), 1.0)
        ('alpha_right', 'n_right')
    """
    out = []
    for name in candidates:
        low, high = limits.get(name, (None, None))
        error = errors.get(name)
        if error is None or low is None or high is None:
            continue
        if not math.isfinite(error) or error > max_error_to_range * (high - low):
            out.append(name)
    return tuple(out)
