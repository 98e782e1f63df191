"""sigma_pred, exact medians and the median uncertainty against a 300-resample bootstrap."""

from __future__ import annotations

import numpy as np
import pytest

from lib.resolution import (
    median_error_order_statistic,
    sigma_pred,
    weighted_median,
)


def median_error_bootstrap(
    values: np.ndarray, rng: np.random.Generator, n_resamples: int = 300, weights: np.ndarray | None = None
) -> float:
    """Event-level bootstrap standard deviation of the (weighted) median: the reference the order statistic is checked against."""
    values = np.asarray(values, dtype=np.float64)
    medians = np.empty(n_resamples)
    for i in range(n_resamples):
        pick = rng.integers(0, len(values), len(values))
        medians[i] = weighted_median(values[pick], None if weights is None else np.asarray(weights)[pick])
    return float(np.std(medians, ddof=1))


def test_sigma_pred_formula():
    m, pt1, e1, pt2, e2 = 91.0, 50.0, 0.6, 40.0, 0.8
    expected = m / 2 * np.sqrt((e1 / pt1) ** 2 + (e2 / pt2) ** 2)
    assert sigma_pred(np.array([m]), np.array([pt1]), np.array([e1]), np.array([pt2]), np.array([e2]))[0] == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("n", [1, 2, 7, 1000, 1001])
def test_unweighted_median_equals_numpy_exactly(n):
    values = np.random.default_rng(n).lognormal(0.0, 0.3, n)
    assert weighted_median(values) == np.median(values)


def test_equal_weights_reproduce_numpy_median():
    values = np.random.default_rng(3).lognormal(0.0, 0.3, 5001)
    assert weighted_median(values, np.full(values.size, 0.7)) == pytest.approx(np.median(values), rel=1e-12)


def test_integer_weights_equal_repeated_events():
    rng = np.random.default_rng(5)
    values = rng.lognormal(0.0, 0.3, 2001)
    weights = rng.integers(1, 4, values.size)
    repeated = np.repeat(values, weights)
    # The weighted median lies within one event of the median of the expanded sample.
    sorted_rep = np.sort(repeated)
    mid = np.searchsorted(sorted_rep, weighted_median(values, weights.astype(float)))
    assert abs(mid - repeated.size / 2) <= weights.max()


@pytest.mark.parametrize(("n", "weighted"), [(400, False), (5000, False), (20000, False), (5000, True)])
def test_order_statistic_error_agrees_with_bootstrap(n, weighted):
    rng = np.random.default_rng(11 + n)
    values = rng.lognormal(0.0, 0.25, n)
    weights = rng.uniform(0.5, 1.5, n) if weighted else None
    boot = median_error_bootstrap(values, np.random.default_rng(1), 300, weights)
    det = median_error_order_statistic(values, weights)
    # 300 resamples measure an error to ~4 % (1/sqrt(2*300)); 15 % leaves room for the estimator's own noise.
    assert det == pytest.approx(boot, rel=0.15)


def test_bootstrap_is_reproducible_with_seed():
    values = np.random.default_rng(2).normal(1.0, 0.1, 500)
    a = median_error_bootstrap(values, np.random.default_rng(7), 50)
    b = median_error_bootstrap(values, np.random.default_rng(7), 50)
    assert a == b
