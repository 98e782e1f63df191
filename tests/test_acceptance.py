"""The window acceptance A(m) against Monte Carlo truth, and the (x1, x2) histograms filled while reading."""

from __future__ import annotations

import numpy as np
import pytest

from lib.acceptance import PtThresholds, acceptance_knots, window_acceptance
from lib.histograms import AcceptanceGrid, CategoryHistograms, HistogramGrids

GRID = AcceptanceGrid(1, (0.2, 1.6), (0.1, 0.6), 0.005)
MASS_GRID = HistogramGrids(1, (75.0, 105.0), 0.05, (0.05, 50.0), 5e-4)
MASSES = np.linspace(76.0, 104.0, 29)


def _kinematics(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Masses (Breit-Wigner-like peak in the window) and a Jacobian-peaked (x1, x2) independent of them."""
    mass = 91.19 + 1.25 * rng.standard_cauchy(3 * n)
    mass = mass[(mass > 75.0) & (mass < 105.0)][:n]
    x1 = 0.5 * np.sqrt(1.0 - rng.random(n) ** 2) + np.abs(rng.normal(0.0, 0.07, n))
    x2 = np.clip(1.0 - x1 + rng.normal(0.0, 0.05, n), 0.05, None)
    return mass, x1, x2


def _histogram(mass: np.ndarray, x1: np.ndarray, x2: np.ndarray) -> CategoryHistograms:
    hists = CategoryHistograms.empty(MASS_GRID, weighted=False, acceptance=GRID)
    zero = np.zeros(mass.size, np.int32)
    hists.add_keys(MASS_GRID.mass_keys(zero, mass), MASS_GRID.spred_keys(zero, np.ones(mass.size)), None,
                   GRID.keys(zero, x1 * mass, x2 * mass, mass), (float((x1 * mass).min()), float((x2 * mass).min())))  # fmt: skip
    return hists


def _true_acceptance(x1: np.ndarray, x2: np.ndarray, window: tuple[float, float], sublead_min: float) -> np.ndarray:
    values = np.array([np.mean((x1 * m >= window[0]) & (x1 * m < window[1]) & (x2 * m >= sublead_min)) for m in MASSES])
    return values / values.max()


@pytest.mark.parametrize("window", [(30.0, 45.0), (45.0, 52.0), (62.0, 200.0)])
def test_acceptance_of_untruncated_sample_matches_monte_carlo(window):
    rng = np.random.default_rng(1)
    mass, x1, x2 = _kinematics(rng, 400_000)
    hists = _histogram(mass, x1, x2)
    cuts = PtThresholds(0.0, np.inf, 0.0)
    got = window_acceptance(hists.x_contents(0), GRID, MASS_GRID.mass_edges, hists.mass_contents(0), cuts, window, MASSES)
    truth_x1, truth_x2 = _kinematics(np.random.default_rng(2), 400_000)[1:]
    np.testing.assert_allclose(got, _true_acceptance(truth_x1, truth_x2, window, 0.0), atol=0.02)
    # The 45-52 GeV window holds the Jacobian peak: A changes by far more than the tolerance over the range.
    if window == (45.0, 52.0):
        assert got.max() - got.min() > 0.5


def test_truncated_sample_is_reweighted_to_the_untruncated_x_distribution():
    """Events cut at pT_lead >= 30 and pT_sub >= 20 lose low x at low mass; the weights give it back."""
    rng = np.random.default_rng(3)
    mass, x1, x2 = _kinematics(rng, 600_000)
    kept = (x1 * mass >= 30.0) & (x2 * mass >= 20.0) & (x1 * mass < 200.0)
    hists = _histogram(mass[kept], x1[kept], x2[kept])
    cuts = PtThresholds(30.0, 200.0, 20.0)
    window = (30.0, 45.0)
    got = window_acceptance(hists.x_contents(0), GRID, MASS_GRID.mass_edges, hists.mass_contents(0), cuts, window, MASSES)
    truth_x1, truth_x2 = _kinematics(np.random.default_rng(4), 600_000)[1:]
    truth = _true_acceptance(truth_x1, truth_x2, window, 20.0)
    np.testing.assert_allclose(got, truth, atol=0.025)
    # Without the weights the truncated sample would put A too high at low mass.
    naive = window_acceptance(hists.x_contents(0), GRID, MASS_GRID.mass_edges, hists.mass_contents(0),
                              PtThresholds(0.0, np.inf, 20.0), window, MASSES)  # fmt: skip
    assert np.max(np.abs(naive - truth)) > 2 * np.max(np.abs(got - truth))


def test_empty_histograms_give_no_correction():
    hists = CategoryHistograms.empty(MASS_GRID, weighted=False, acceptance=GRID)
    got = window_acceptance(hists.x_contents(0), GRID, MASS_GRID.mass_edges, hists.mass_contents(0),
                            PtThresholds(30.0, 200.0, 20.0), (30.0, 45.0), MASSES)  # fmt: skip
    assert np.all(got == 1.0)


def test_histograms_merge_counts_and_thresholds():
    rng = np.random.default_rng(5)
    mass, x1, x2 = _kinematics(rng, 20_000)
    whole = _histogram(mass, x1, x2)
    first, second = _histogram(mass[:7000], x1[:7000], x2[:7000]), _histogram(mass[7000:], x1[7000:], x2[7000:])
    first.add(second)
    np.testing.assert_array_equal(first.x_counts, whole.x_counts)
    np.testing.assert_array_equal(first.pt_min, whole.pt_min)
    restored = CategoryHistograms.from_arrays(MASS_GRID, whole.arrays(), GRID)
    np.testing.assert_array_equal(restored.x_counts, whole.x_counts)
    with pytest.raises(ValueError, match="disagree"):
        CategoryHistograms.from_arrays(MASS_GRID, whole.arrays(), None)


def test_grid_keys_put_out_of_range_x_in_under_and_overflow():
    keys = GRID.keys(np.array([0, 0, 0]), np.array([10.0, 90.0, 300.0]), np.array([5.0, 30.0, 90.0]), np.full(3, 100.0))
    _, n1, n2 = GRID.shape
    i1, i2 = np.divmod(keys, n2)
    assert i1.tolist() == [0, 1 + int((0.9 - 0.2) / 0.005), n1 - 1]
    assert i2.tolist() == [0, 1 + int((0.3 - 0.1) / 0.005), n2 - 1]


def test_knots_cover_the_window():
    knots = acceptance_knots((75.0, 105.0), 0.25)
    assert knots[0] == 75.0 and knots[-1] == 105.0 and len(knots) == 121
