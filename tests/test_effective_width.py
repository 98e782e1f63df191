"""The DCB's effective width against brute force: a fine grid, sampled events, and its error against toys."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lib.fitting.effective_width import COVERAGE, WIDTH_PARAMS, dcb_shape, effective_sigma, effective_sigma_error

SHAPES = [
    (0.8, 10.0, 5.0, 10.0, 5.0),  # tails beyond the window's reach: a Gaussian
    (0.8, 1.5, 1.01, 1.5, 1.01),  # the heaviest tails the configuration allows
    (0.75, 1.8, 3.0, 2.2, 60.0),
    (1.2, 2.5, 1.2, 1.6, 7.0),
    (0.6, 1.6, 1.01, 3.0, 1.01),
]


def narrowest_interval_on_grid(sigma: float, tails: tuple[float, ...], half_window: float) -> float:
    """Half the narrowest interval of the shape over +-half_window holding 68.27 % of it, by cumulative sums on a fine grid."""
    x = np.linspace(-half_window, half_window, 1_200_001)
    cdf = np.cumsum(dcb_shape(x / sigma, *tails))
    cdf /= cdf[-1]
    end = np.searchsorted(cdf, cdf + COVERAGE)
    inside = end < x.size
    return 0.5 * float(np.min(x[end[inside]] - x[inside]))


@pytest.mark.parametrize("shape", SHAPES, ids=["gaussian", "heaviest", "asymmetric", "mixed", "one-heavy-tail"])
def test_matches_the_grid(shape: tuple[float, ...]):
    sigma, *tails = shape
    assert effective_sigma(*shape, 10.0) == pytest.approx(narrowest_interval_on_grid(sigma, tuple(tails), 10.0 * sigma), abs=5e-5)


def test_shape_is_roocrystalball():
    root = pytest.importorskip("ROOT")
    x, mean, sigma = root.RooRealVar("x", "x", -15, 15), root.RooRealVar("m", "m", 0.0), root.RooRealVar("s", "s", 0.9)
    tails = [root.RooRealVar(n, n, v) for n, v in zip(("aL", "nL", "aR", "nR"), (1.6, 2.5, 2.1, 8.0))]
    pdf = root.RooCrystalBall("dcb", "dcb", x, mean, sigma, *tails)
    for value in (-6.0, -1.7, -0.3, 0.0, 1.2, 2.3, 9.0):
        x.setVal(value)
        assert pdf.getVal() == pytest.approx(float(dcb_shape(np.array([value / 0.9]), 1.6, 2.5, 2.1, 8.0)[0]), rel=1e-9)


def test_sampled_events_hold_their_share():
    """68.27 % of events drawn from the normalised shape fall inside the narrowest interval (centred on the peak here)."""
    rng = np.random.default_rng(3)
    sigma, tails = 0.9, (1.6, 2.0, 1.9, 4.0)
    grid = np.linspace(-9.0, 9.0, 600_001)  # +-10 sigma
    cdf = np.cumsum(dcb_shape(grid / sigma, *tails))
    events = np.interp(rng.random(400_000), cdf / cdf[-1], grid)
    width = effective_sigma(sigma, *tails, 10.0)
    # The interval's ends sit at equal density; for this near-symmetric shape the interval is close to centred.
    share = max(np.mean(np.abs(events - shift) < width) for shift in np.linspace(-0.05, 0.05, 21))
    assert share == pytest.approx(COVERAGE, abs=3 * math.sqrt(COVERAGE * (1 - COVERAGE) / events.size) + 2e-3)


def test_tails_widen_and_gaussian_is_sigma():
    assert effective_sigma(1.3, 10.0, 5.0, 10.0, 5.0, 10.0) == pytest.approx(1.3, rel=1e-9)
    assert effective_sigma(1.3, 1.5, 2.0, 1.5, 2.0, 10.0) > 1.3
    assert math.isnan(effective_sigma(0.0, 2.0, 2.0, 2.0, 2.0, 10.0))
    for bad_tails in ((0.0, 2.0, 2.0, 2.0), (2.0, -1.0, 2.0, 2.0), (2.0, 2.0, math.nan, 2.0), (2.0, 2.0, 2.0, math.inf)):
        assert math.isnan(effective_sigma(1.0, *bad_tails, 10.0)), bad_tails


@pytest.mark.parametrize("tails", [(1.5, 1.01, 1.5, 1.01), (1.6, 1.2, 1.6, 10.0), (1.8, 3.0, 2.0, 5.0)])
def test_width_scales_with_the_resolution(tails: tuple[float, ...]):
    """Two samples differing only in the resolution scale must give widths in that ratio, whatever the tails."""
    assert effective_sigma(1.1 * 1.3, *tails, 10.0) / effective_sigma(1.3, *tails, 10.0) == pytest.approx(1.1, rel=1e-9)


def test_error_propagation_against_resampled_parameters():
    """Linear propagation equals the spread of the width over parameters drawn from the same covariance (small errors)."""
    rng = np.random.default_rng(5)
    values = dict(zip(WIDTH_PARAMS, (0.9, 1.8, 3.0, 2.2, 6.0)))
    errors = np.array([0.004, 0.03, 0.2, 0.04, 0.5])
    correlation = np.full((5, 5), 0.4) + 0.6 * np.eye(5)
    matrix = correlation * np.outer(errors, errors)
    covariance = {(a, b): matrix[i, j] for i, a in enumerate(WIDTH_PARAMS) for j, b in enumerate(WIDTH_PARAMS)}
    propagated = effective_sigma_error(values, covariance, WIDTH_PARAMS, 10.0)
    draws = rng.multivariate_normal([values[n] for n in WIDTH_PARAMS], matrix, size=4000)
    spread = np.std([effective_sigma(*d, 10.0) for d in draws])
    assert propagated == pytest.approx(spread, rel=0.08)
    # A fixed parameter contributes nothing: only sigma floating gives the width's scale times sigma's error.
    only_sigma = effective_sigma_error(values, covariance, ("sigma",), 10.0)
    assert only_sigma == pytest.approx(effective_sigma(*values.values(), 10.0) / values["sigma"] * errors[0], rel=1e-6)
