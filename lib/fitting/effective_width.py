"""The effective width of a fitted double-sided Crystal Ball: half the narrowest interval holding 68.27 % of it.

Why not the core ``sigma``: a DCB's Gaussian core and its power-law tails are nearly degenerate on
a peak whose residuals are (close to) Gaussian. Tails starting at ~1.8 sigma with a slightly
narrower core describe the same events as a Gaussian, the fit can only add tails (never make
them lighter than a Gaussian), so statistical fluctuations move it along that direction one way:
the core sigma comes out low, with errors inflated by the tail correlation (the toys and samples
are in docs/validation.md). The narrowest 68.27 % interval of the fitted resolution function
(CMS's "sigma_eff") follows what the events fix, the width of the whole peak, and not how the
fit splits it between core and tails: a Gaussian's is its sigma; with real tails it is the width
that holds the central 68 % of the events.

The resolution function is normalised over ``+-window_sigmas`` core sigmas around its peak
(``fit.width_window_sigmas``, the same in every category, retry rung, closure bin and on the
Higgs peak): a tail with ``n`` near 1 holds a share of the events that depends on how far it is
followed. In units of the core, the width is proportional to the resolution,
``sigma_eff = sigma * h(tails)``; a window fixed in GeV holds less of a wider peak's tails, so
two resolutions would not give widths in their ratio.
Everything here is closed-form (erf and the power-law integrals) plus a bisection, so the width
is smooth in the parameters and its error can be propagated by finite differences through the
fit's covariance matrix. No ROOT here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

COVERAGE = math.erf(1.0 / math.sqrt(2.0))  # 0.6827: a Gaussian's +-1 sigma
TAIL_PARAMS = ("alpha_left", "n_left", "alpha_right", "n_right")
WIDTH_PARAMS = ("sigma", *TAIL_PARAMS)  # the parameters the effective width depends on, in this order
_BISECTIONS = 200
_RELATIVE_STEP = 1e-5


class _Tail:
    """One power-law side of the DCB in units of sigma, mirrored to t >= 0: ``A (B + t)^-n`` beyond ``alpha``."""

    def __init__(self, alpha: float, n: float) -> None:
        self.alpha, self.n = alpha, n
        self.log_a = n * math.log(n / alpha) - 0.5 * alpha * alpha
        self.b = n / alpha - alpha

    def value(self, t: float) -> float:
        if t <= self.alpha:
            return math.exp(-0.5 * t * t)
        return math.exp(self.log_a - self.n * math.log(self.b + t))

    def integral(self, t: float) -> float:
        """The unnormalised integral from 0 to ``t >= 0``."""
        core = math.sqrt(math.pi / 2.0) * math.erf(min(t, self.alpha) / math.sqrt(2.0))
        if t <= self.alpha:
            return core
        start, end = math.log(self.b + self.alpha), math.log(self.b + t)
        if abs(self.n - 1.0) < 1e-9:
            return core + math.exp(self.log_a) * (end - start)
        scale = math.exp(self.log_a) / (self.n - 1.0)
        return core + scale * (math.exp((1.0 - self.n) * start) - math.exp((1.0 - self.n) * end))

    def level_crossing(self, level: float) -> float:
        """The ``t >= 0`` where the shape falls to ``level`` (0 < level <= 1)."""
        if level >= math.exp(-0.5 * self.alpha * self.alpha):
            return math.sqrt(-2.0 * math.log(level))
        return math.exp((self.log_a - math.log(level)) / self.n) - self.b


def dcb_shape(t: np.ndarray, alpha_left: float, n_left: float, alpha_right: float, n_right: float) -> np.ndarray:
    """RooCrystalBall's unnormalised shape at ``t = (x - mean) / sigma`` (1 at the peak): what the integrals above integrate.

    The tests check it against RooCrystalBall itself and the width against a grid of it.
    """
    left, right = _Tail(alpha_left, n_left), _Tail(alpha_right, n_right)
    return np.array([left.value(-v) if v < 0 else right.value(v) for v in np.asarray(t, dtype=np.float64).ravel()]).reshape(np.shape(t))


def effective_sigma(sigma: float, alpha_left: float, n_left: float, alpha_right: float, n_right: float, window_sigmas: float) -> float:
    """Half the narrowest interval holding 68.27 % of the DCB normalised over ``+-window_sigmas * sigma`` (in sigma's unit).

    The narrowest interval of a unimodal density is a level set {f >= level}: the level is found
    by bisection on its logarithm, the interval's content coming from the closed-form integrals.

    Example:
        >>> round(effective_sigma(1.0, 10.0, 5.0, 10.0, 5.0, 10.0), 6)  # no tail inside the window: a Gaussian
        1.0
        >>> round(effective_sigma(1.0, 1.5, 2.0, 1.5, 2.0, 10.0), 4)  # heavy tails widen the 68 % interval
        1.2682
    """
    tails = (alpha_left, n_left, alpha_right, n_right)
    if not (sigma > 0 and window_sigmas > 0 and all(0 < v < math.inf for v in tails)):
        return math.nan  # no such DCB (a configuration letting alpha or n reach 0): the gates then fail the fit
    left, right = _Tail(alpha_left, n_left), _Tail(alpha_right, n_right)
    edge = window_sigmas
    total = left.integral(edge) + right.integral(edge)

    def content(log_level: float) -> float:
        level = math.exp(log_level)
        return left.integral(min(left.level_crossing(level), edge)) + right.integral(min(right.level_crossing(level), edge))

    # Content falls as the level rises: the whole window at the lower edge's level, 0 at the peak's.
    low, high = math.log(min(left.value(edge), right.value(edge))), 0.0
    for _ in range(_BISECTIONS):
        middle = 0.5 * (low + high)
        if content(middle) >= COVERAGE * total:
            low = middle
        else:
            high = middle
        if high - low < 1e-15:
            break
    level = math.exp(low)
    width = min(left.level_crossing(level), edge) + min(right.level_crossing(level), edge)
    return 0.5 * sigma * width


def effective_sigma_error(
    values: Mapping[str, float], covariance: Mapping[tuple[str, str], float], floating: Sequence[str], window_sigmas: float
) -> float:
    """Error of :func:`effective_sigma` from the fit's covariance of its ``floating`` parameters (linear propagation).

    ``values`` holds every name of ``WIDTH_PARAMS``; ``covariance[(a, b)]`` the fit's covariance of
    two floating ones. Derivatives by central differences with a relative step of 1e-5: the width
    is a smooth closed-form function of the parameters.
    """

    def width(shifted: Mapping[str, float]) -> float:
        return effective_sigma(*(shifted[name] for name in WIDTH_PARAMS), window_sigmas)

    names = [name for name in WIDTH_PARAMS if name in floating]
    gradient = []
    for name in names:
        step = _RELATIVE_STEP * max(abs(values[name]), 1e-3)
        up = width({**values, name: values[name] + step})
        down = width({**values, name: values[name] - step})
        gradient.append((up - down) / (2.0 * step))
    variance = sum(gradient[i] * gradient[j] * covariance[(a, b)] for i, a in enumerate(names) for j, b in enumerate(names))
    return math.sqrt(variance) if variance >= 0 else math.nan
