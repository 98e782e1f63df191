"""The window acceptance A(m) against Monte Carlo truth, the kinematic map behind it, and its counts filled while reading."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from lib.acceptance import AcceptanceGrid, threshold_mismatch, window_acceptance
from lib.dimuon_kinematics import four_pt_squared_at_masses
from lib.histogram_specs import ByCategory, EventKeys, HistogramSpec
from lib.histograms import CategoryHistograms, HistogramGrids, HistogramPart

PT_EDGES = (30.0, 45.0, 52.0, 62.0, 200.0)
GRID = AcceptanceGrid(1, PT_EDGES, 26.0, 20.0, (75.0, 105.0), 1.0)
MASS_GRID = HistogramGrids(1, (75.0, 105.0), 0.05, (0.05, 50.0), 5e-4)


def pt_at_masses(*kinematics: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both muons' pT at each mass: the square roots of ``four_pt_squared_at_masses``."""
    four_sq1, four_sq2 = four_pt_squared_at_masses(*kinematics)
    return 0.5 * np.sqrt(four_sq1), 0.5 * np.sqrt(four_sq2)


def _decays(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """Dimuon pT (Gamma, in GeV: it does not scale with the mass), rapidity and rest-frame direction, independent of the mass."""
    cos_theta = rng.uniform(-1.0, 1.0, n)
    return {
        "q": rng.gamma(2.0, 8.0, n), "y": rng.normal(0.0, 1.5, n), "cos": cos_theta, "sin": np.sqrt(1.0 - cos_theta**2),
        "phi": rng.uniform(0.0, 2.0 * np.pi, n),
    }  # fmt: skip


def _muons(decay: dict[str, np.ndarray], mass: np.ndarray) -> dict[str, np.ndarray]:
    """The two muons of each decay at ``mass``, built with explicit Lorentz boosts (transverse, then longitudinal)."""
    half = 0.5 * mass
    n = np.stack([decay["sin"] * np.cos(decay["phi"]), decay["sin"] * np.sin(decay["phi"]), decay["cos"]])
    energy_t = np.sqrt(mass**2 + decay["q"] ** 2)
    gamma, beta = energy_t / mass, decay["q"] / energy_t
    out = {}
    for name, sign in (("mu1", 1.0), ("mu2", -1.0)):
        px, py, pz = sign * half * n
        e = gamma * (half + beta * px)
        px = gamma * (px + beta * half)
        e, pz = e * np.cosh(decay["y"]) + pz * np.sinh(decay["y"]), pz * np.cosh(decay["y"]) + e * np.sinh(decay["y"])
        pt = np.hypot(px, py)
        out[f"{name}_pt"], out[f"{name}_eta"] = pt, np.arcsinh(pz / pt)
    return out


def _lead_sub(muons: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    return np.maximum(muons["mu1_pt"], muons["mu2_pt"]), np.minimum(muons["mu1_pt"], muons["mu2_pt"])


def test_moving_an_event_to_another_mass_matches_the_explicit_boost():
    rng = np.random.default_rng(11)
    decay = _decays(rng, 5000)
    mass = rng.uniform(80.0, 100.0, 5000)
    seen = _muons(decay, mass)
    targets = np.array([76.0, 91.0, 104.0])
    pt1, pt2 = pt_at_masses(seen["mu1_pt"], seen["mu1_eta"], seen["mu2_pt"], seen["mu2_eta"], mass, targets)
    for k, target in enumerate(targets):
        moved = _muons(decay, np.full(5000, target))
        np.testing.assert_allclose(pt1[k], moved["mu1_pt"], rtol=2e-4, atol=1e-3)
        np.testing.assert_allclose(pt2[k], moved["mu2_pt"], rtol=2e-4, atol=1e-3)
    # The pT do not simply scale with the mass (the dimuon pT does not): the map is not x = pT / m.
    scaled = seen["mu1_pt"] * targets[0] / mass
    assert np.median(np.abs(pt1[0] - scaled)) > 0.1


def test_a_dimuon_at_rest_scales_with_the_mass():
    pt1, pt2 = pt_at_masses(np.array([45.0]), np.array([0.3]), np.array([45.0]), np.array([-0.3]), np.array([2 * 45.0 * np.cosh(0.3)]), np.array([80.0]))
    expected = 45.0 * 80.0 / (2 * 45.0 * np.cosh(0.3))
    np.testing.assert_allclose([pt1[0, 0], pt2[0, 0]], [expected, expected], rtol=1e-5)


def _spec(mass_grid: HistogramGrids, grid: AcceptanceGrid) -> HistogramSpec:
    return HistogramSpec(mass_grid, ByCategory(mass_grid.n_categories), acceptance=grid)


def _part(muons: dict[str, np.ndarray], mass: np.ndarray, grid: AcceptanceGrid, group: np.ndarray | None, mass_grid: HistogramGrids) -> HistogramPart:
    """The events filled as a reading task fills one file's."""
    part = HistogramPart.for_spec(_spec(mass_grid, grid), weighted=False)
    group = np.zeros(mass.size, np.int32) if group is None else group
    m32 = mass.astype(np.float32)
    lead, sub = _lead_sub(muons)
    x_keys = grid.keys(group, {c: v.astype(np.float32) for c, v in muons.items()}, m32)
    part.add_keys(EventKeys(mass_grid.mass_keys(group, m32), mass_grid.spred_keys(group, np.ones(mass.size)), x_keys,
                            (float(lead.min()), float(sub.min()))))  # fmt: skip
    return part


def _fill(
    muons: dict[str, np.ndarray], mass: np.ndarray, grid: AcceptanceGrid = GRID, group: np.ndarray | None = None,
    mass_grid: HistogramGrids = MASS_GRID,
) -> CategoryHistograms:  # fmt: skip
    hists = CategoryHistograms.for_spec(_spec(mass_grid, grid), weighted=False)
    hists.add(_part(muons, mass, grid, group, mass_grid))
    return hists


@pytest.fixture(scope="module")
def true_acceptance() -> np.ndarray:
    """Share of a fresh set of decays that each window and the thresholds keep at each knot mass: ``(windows, knots)``."""
    n = 300_000
    decay = _decays(np.random.default_rng(99), n)
    values = np.empty((len(PT_EDGES) - 1, len(GRID.knots)))
    for k, m in enumerate(GRID.knots):
        lead, sub = _lead_sub(_muons(decay, np.full(n, m)))
        window = np.searchsorted(PT_EDGES, lead, side="right") - 1
        passes = (sub >= 20.0) & (lead >= 30.0) & (lead < 200.0)
        values[:, k] = np.bincount(window[passes], minlength=len(PT_EDGES) - 1)[: len(PT_EDGES) - 1] / n
    return values / values.max(axis=1, keepdims=True)


@pytest.fixture(scope="module")
def selected_sample() -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Decays at Breit-Wigner masses in the window, kept when the leading muon is in 30-200 GeV and the subleading above 20."""
    rng = np.random.default_rng(3)
    n = 600_000
    mass = 91.19 + 1.25 * rng.standard_cauchy(3 * n)
    mass = mass[(mass > 75.0) & (mass < 105.0)][:n]
    muons = _muons(_decays(rng, mass.size), mass)
    lead, sub = _lead_sub(muons)
    kept = (lead >= 30.0) & (lead < 200.0) & (sub >= 20.0)
    return {c: v[kept] for c, v in muons.items()}, mass[kept]


@pytest.mark.parametrize("window_index", [0, 1, 3])
def test_acceptance_of_a_selected_sample_matches_monte_carlo(selected_sample, true_acceptance, window_index):
    """A(m) of the 30-45, 45-52 and 62-200 GeV windows from events that passed the thresholds at their own mass."""
    muons, mass = selected_sample
    hists = _fill(muons, mass)
    got = window_acceptance(hists.x_contents(0)[window_index], GRID.knots, MASS_GRID.mass_edges, hists.mass_contents(0))
    truth = true_acceptance[window_index]
    # Not at the last knot: events that pass only there reach less than MIN_REACH of the masses and are left out.
    np.testing.assert_allclose(got[:-1], truth[:-1], atol=0.025)
    if window_index == 1:  # the Jacobian peak: A changes by far more than the tolerance over the range
        assert got.max() - got.min() > 0.5
    if window_index == 0:
        # Without the reach weights, events that pass the thresholds only at higher masses are missing at low mass.
        naive = hists.x_contents(0)[window_index].sum(axis=1)
        naive = naive / naive.max()
        assert np.max(np.abs(naive - truth)[:-1]) > 2 * np.max(np.abs(got - truth)[:-1])


def test_empty_histograms_give_no_correction():
    hists = CategoryHistograms.for_spec(_spec(MASS_GRID, GRID), weighted=False)
    got = window_acceptance(hists.x_contents(0)[0], GRID.knots, MASS_GRID.mass_edges, hists.mass_contents(0))
    assert np.all(got == 1.0)


def test_counts_add_up_over_files_and_survive_the_cache(selected_sample):
    muons, mass = selected_sample
    part = {c: v[:20_000] for c, v in muons.items()}
    whole = _fill(part, mass[:20_000])
    first = _fill({c: v[:7000] for c, v in part.items()}, mass[:7000])
    first.add(_part({c: v[7000:20_000] for c, v in part.items()}, mass[7000:20_000], GRID, None, MASS_GRID))
    np.testing.assert_array_equal(first.x_contents(0), whole.x_contents(0))
    np.testing.assert_array_equal(first.pt_min, whole.pt_min)
    restored = pickle.loads(pickle.dumps(whole))  # the reduction cache's payload
    np.testing.assert_array_equal(restored.x_contents(0), whole.x_contents(0))
    np.testing.assert_array_equal(restored.pt_min, whole.pt_min)
    assert restored.counts == whole.counts and restored.acceptance == whole.acceptance


def test_each_event_is_counted_once_per_knot_where_it_passes(selected_sample):
    muons, mass = selected_sample
    part = {c: v[:5000] for c, v in muons.items()}
    hists = _fill(part, mass[:5000])
    pt1, pt2 = pt_at_masses(part["mu1_pt"], part["mu1_eta"], part["mu2_pt"], part["mu2_eta"], mass[:5000], GRID.knots)
    lead, sub = np.maximum(pt1, pt2), np.minimum(pt1, pt2)
    passing = ((lead >= 30.0) & (lead < 200.0) & (sub >= 20.0)).sum(axis=1)
    np.testing.assert_array_equal(hists.x_contents(0).sum(axis=(0, 2)), passing)


def test_each_group_holds_only_its_own_events(selected_sample):
    """Histogram group g is counted in acceptance group g % n_groups, as the category's |eta|-region pair."""
    muons, mass = selected_sample
    n = 6000
    part = {c: v[:n] for c, v in muons.items()}
    group = np.random.default_rng(4).integers(0, 6, n).astype(np.int32)
    grid = AcceptanceGrid(3, PT_EDGES, 26.0, 20.0, (75.0, 105.0), 1.0)
    mass_grid = HistogramGrids(6, (75.0, 105.0), 0.05, (0.05, 50.0), 5e-4)
    hists = _fill(part, mass[:n], grid, group, mass_grid)
    for pair in range(3):
        mine = np.flatnonzero(group % 3 == pair)
        alone = _fill({c: v[mine] for c, v in part.items()}, mass[mine])
        np.testing.assert_array_equal(hists.x_contents(pair), alone.x_contents(0))
    np.testing.assert_array_equal(hists.counts.acceptance[{"group": 1}].values(), hists.x_contents(1))


def test_knots_cover_the_window():
    knots = GRID.knots
    assert knots[0] == 75.0 and knots[-1] == 105.0 and len(knots) == 31


@pytest.mark.parametrize(("sublead_cut", "warned"), [(20.0, False), (25.0, True), (15.0, True)])
def test_an_input_selected_with_other_thresholds_is_named(selected_sample, sublead_cut, warned):
    """The input's own subleading cut (20 GeV here) against the one the acceptance assumes."""
    muons, mass = selected_sample
    grid = AcceptanceGrid(1, PT_EDGES, 26.0, sublead_cut, (75.0, 105.0), 1.0)
    part = {c: v[:3000] for c, v in muons.items()}
    message = threshold_mismatch(_fill(part, mass[:3000], grid))
    assert (message is not None) == warned
    if warned:
        assert "fit.acceptance.sublead_pt_min_gev" in message and f"{sublead_cut:g} GeV" in message


def test_weighted_sums_follow_each_event_across_batches(selected_sample):
    """More events than one batch of keys: each (knot, event) key carries its own event's weight."""
    muons, mass = selected_sample
    n = 150_000  # above lib.acceptance's batch of 65 536 events
    part = {c: v[:n].astype(np.float32) for c, v in muons.items()}
    m32 = mass[:n].astype(np.float32)
    weights = np.random.default_rng(8).uniform(0.5, 1.5, n)
    zero = np.zeros(n, np.int32)
    filled = HistogramPart.for_spec(_spec(MASS_GRID, GRID), weighted=True)
    filled.add_keys(EventKeys(MASS_GRID.mass_keys(zero, m32), MASS_GRID.spred_keys(zero, np.ones(n)), GRID.keys(zero, part, m32), (30.0, 20.0),
                              weights=weights))  # fmt: skip
    hists = CategoryHistograms.for_spec(_spec(MASS_GRID, GRID), weighted=True)
    hists.add(filled)
    pt1, pt2 = pt_at_masses(part["mu1_pt"], part["mu1_eta"], part["mu2_pt"], part["mu2_eta"], m32, GRID.knots)
    lead, sub = np.maximum(pt1, pt2), np.minimum(pt1, pt2)
    passing = (lead >= 30.0) & (lead < 200.0) & (sub >= 20.0)
    np.testing.assert_allclose(hists.x_contents(0).sum(axis=(0, 2)), (passing * weights).sum(axis=1), rtol=1e-9)
