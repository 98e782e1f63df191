"""Histograms filled while reading: equal to histograms of the events, merged in file order, medians within a bin width."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from lib.errors import InputError
from lib.histogram_specs import ByCategory, EventKeys, HistogramSpec, category_spec
from lib.histograms import CategoryHistograms, HistogramPart, MassHistogram, grids_from_config
from lib.io.merge import ReductionMerger
from lib.io.reader import FileReading, Keep, reduce_file
from lib.medians import compute_medians, histogram_quantiles
from lib.resolution import median_error_order_statistic, weighted_median
from tests.helpers_tables import random_stage1_table

WINDOW = (75.0, 105.0)


def _files(tmp_path: Path, n_files: int, n: int, weights: bool) -> list[Path]:
    paths = []
    for i in range(n_files):
        path = tmp_path / f"{i}.parquet"
        pq.write_table(random_stage1_table(n, 30 + i, weights=weights), path, row_group_size=700)
        paths.append(path)
    return paths


def _reduce(paths: list[Path], scheme, config, weighted: bool, order=None):
    specs = (category_spec(config, scheme),)
    weight = "wgt_nominal" if weighted else None
    reductions = [reduce_file(p, FileReading(scheme, WINDOW, weight, 900, Keep(specs, events=True))) for p in paths]
    merger = ReductionMerger(paths, specs, weighted)
    for index in order if order is not None else range(len(paths)):
        merger.add(index, reductions[index])
    return merger.result()


def _histograms_of(config, scheme, values: np.ndarray, weights: np.ndarray | None = None, category: int = 0) -> CategoryHistograms:
    """Histograms of events of one category at the Z mass with the given sigma_pred values."""
    grids = grids_from_config(config, scheme.n_categories)
    cat = np.full(values.size, category, np.int8)
    spec = HistogramSpec(grids, ByCategory(scheme.n_categories))
    part = HistogramPart.for_spec(spec, weights is not None)
    part.add_keys(EventKeys(grids.mass_keys(cat, np.full(values.size, 91.0, np.float32)), grids.spred_keys(cat, values), weights=weights))
    hists = CategoryHistograms.for_spec(spec, weights is not None)
    hists.add(part)
    return hists


@pytest.mark.parametrize("weighted", [False, True])
def test_histograms_equal_those_of_the_events(tmp_path, scheme, config, weighted):
    reduction = _reduce(_files(tmp_path, 3, 4000, weighted), scheme, config, weighted)
    skim, (hists,) = reduction.skim, reduction.histograms
    edges = hists.grids.mass_edges
    for index, idx in enumerate(skim.by_category(scheme.n_categories)):
        counts, _ = np.histogram(skim.mass[idx], bins=edges)
        mass = hists.category_mass(index)
        np.testing.assert_array_equal(mass.counts, counts)
        # The hist object's own indexing sees the same bins: the keys address its storage order.
        np.testing.assert_array_equal(hists.counts.mass[{"group": index}].values(), counts)
        assert hists.n_events(index) == len(idx) == hists.spred_counts(index).sum()
        if weighted:
            w = skim.weight[idx].astype(np.float64)
            np.testing.assert_allclose(mass.sumw, np.histogram(skim.mass[idx], bins=edges, weights=w)[0], rtol=1e-12)
            np.testing.assert_allclose(mass.sumw2, np.histogram(skim.mass[idx], bins=edges, weights=w * w)[0], rtol=1e-12)
            np.testing.assert_allclose(hists.weights.mass[{"group": index}].variances(), mass.sumw2, rtol=1e-15)
            assert hists.spred_contents(index).sum() == pytest.approx(w.sum(), rel=1e-12)
        else:
            spred, _ = np.histogram(skim.sigma_pred[idx], bins=hists.grids.spred_edges)
            np.testing.assert_array_equal(hists.spred_contents(index)[1:-1], spred)


def test_file_parts_travel_pickled_and_histograms_add_with_plus(tmp_path, scheme, config):
    """A file's part travels to and from Dask workers pickled; the run's hist objects pickle, and ``+`` of two files' equals reading both."""
    paths = _files(tmp_path, 2, 3000, weights=True)
    spec = category_spec(config, scheme)
    first, second = (reduce_file(p, FileReading(scheme, WINDOW, "wgt_nominal", keep=Keep((spec,)))).histograms[0] for p in paths)
    both = _reduce(paths, scheme, config, True).histograms[0]
    merged = CategoryHistograms.for_spec(spec, weighted=True)
    merged.add(pickle.loads(pickle.dumps(first)))
    merged.add(second)
    assert (merged.counts, merged.weights) == (both.counts, both.weights)
    one, other = CategoryHistograms.for_spec(spec, weighted=True), CategoryHistograms.for_spec(spec, weighted=True)
    one.add(first)
    other.add(second)
    travelled = pickle.loads(pickle.dumps(one))
    assert (travelled.counts.mass + other.counts.mass) == both.counts.mass
    assert (travelled.weights.spred + other.weights.spred) == both.weights.spred
    # Added to after the journey, the copy's own storage counts the events, not the original's.
    n_before = one.n_events(0)
    extra = HistogramPart.for_spec(spec, weighted=True)
    zero = np.zeros(10, np.int8)
    extra.add_keys(EventKeys(spec.grids.mass_keys(zero, np.full(10, 91.0, np.float32)), spec.grids.spred_keys(zero, np.ones(10, np.float32)),
                             weights=np.ones(10, np.float32)))  # fmt: skip
    travelled.add(extra)
    assert travelled.n_events(0) == n_before + 10 and one.n_events(0) == n_before


def test_merge_is_in_file_order_whatever_the_arrival_order(tmp_path, scheme, config):
    """Weighted sums added in another order differ in the last digits; the merger must not depend on scheduling."""
    paths = _files(tmp_path, 4, 2000, weights=True)
    forward = _reduce(paths, scheme, config, True)
    backward = _reduce(paths, scheme, config, True, order=[3, 1, 2, 0])
    assert (forward.histograms[0].counts, forward.histograms[0].weights) == (backward.histograms[0].counts, backward.histograms[0].weights)
    np.testing.assert_array_equal(forward.skim.mass, backward.skim.mass)


@pytest.mark.parametrize("weighted", [False, True])
def test_medians_within_a_bin_width_of_the_exact_ones(tmp_path, scheme, config, weighted):
    reduction = _reduce(_files(tmp_path, 3, 6000, weighted), scheme, config, weighted)
    skim = reduction.skim
    medians = compute_medians(reduction.histograms[0], scheme, config.step2)
    width = config.step2.median_relative_bin_width
    tested = 0
    for index, idx in enumerate(skim.by_category(scheme.n_categories)):
        med = medians[index]
        assert med.n_events == len(idx)
        if len(idx) < 30:
            continue
        values = skim.sigma_pred[idx].astype(np.float64)
        weights = None if skim.weight is None else skim.weight[idx]
        exact = weighted_median(values, weights)
        # Weighted: the events of a bin are taken to carry its mean weight, which moves the midpoints a little.
        tolerance = width * exact if weights is None else 0.1 * med.median_err_NonCal
        assert abs(med.median_val_NonCal - exact) <= tolerance, med.cat_name
        exact_err = median_error_order_statistic(values, weights)
        assert med.median_err_NonCal == pytest.approx(exact_err, rel=0.25, abs=2 * width * exact), med.cat_name
        tested += 1
    assert tested >= 10


def test_medians_of_a_large_category_match_numpy_to_a_tenth_of_a_bin(config, scheme):
    """Where many events fill each bin, interpolation inside the bin is far better than the bin width."""
    rng = np.random.default_rng(5)
    values = rng.lognormal(np.log(1.1), 0.25, 400_000).astype(np.float32)
    hists = _histograms_of(config, scheme, values)
    median = compute_medians(hists, scheme, config.step2)[0].median_val_NonCal
    assert abs(median - np.median(values.astype(np.float64))) < 0.1 * config.step2.median_relative_bin_width * median


def test_bootstrap_error_agrees_with_the_order_statistic(tmp_path, scheme, config):
    reduction = _reduce(_files(tmp_path, 2, 8000, False), scheme, config, False)
    order_stat = compute_medians(reduction.histograms[0], scheme, config.step2)
    boot_cfg = config.step2.model_copy(update={"median_error": "bootstrap", "bootstrap_resamples": 400})
    boot = compute_medians(reduction.histograms[0], scheme, boot_cfg)
    again = compute_medians(reduction.histograms[0], scheme, boot_cfg)
    assert [b.median_err_NonCal for b in boot] == [b.median_err_NonCal for b in again]
    big = [(o, b) for o, b in zip(order_stat, boot) if o.n_events > 1000]
    assert big
    for o, b in big:
        assert b.median_err_NonCal == pytest.approx(o.median_err_NonCal, rel=0.3), o.cat_name


def test_median_outside_the_grid_is_one_line(config, scheme):
    hists = _histograms_of(config, scheme, np.full(100, 80.0, np.float32), category=4)
    with pytest.raises(InputError, match=rf"category {scheme.names[4]}: the median sigma_pred lies outside 0.05-50 GeV"):
        compute_medians(hists, scheme, config.step2)


def test_rebinning_equals_histogramming_the_events(config):
    rng = np.random.default_rng(3)
    masses = rng.uniform(75.0, 105.0, 20_000)
    weights = rng.uniform(0.5, 1.5, masses.size)
    fine = np.linspace(75.0, 105.0, 601)
    hist = MassHistogram(fine, np.histogram(masses, fine)[0], np.histogram(masses, fine, weights=weights)[0],
                         np.histogram(masses, fine, weights=weights**2)[0])  # fmt: skip
    for lo, hi, bins in ((75.0, 105.0, 120), (82.0, 100.0, 72), (81.0, 101.0, 80)):
        edges, contents, sumw2, counts = hist.rebinned(lo, hi, bins)
        np.testing.assert_allclose(contents, np.histogram(masses, edges, weights=weights)[0], rtol=1e-12)
        np.testing.assert_allclose(sumw2, np.histogram(masses, edges, weights=weights**2)[0], rtol=1e-12)
        np.testing.assert_array_equal(counts, np.histogram(masses, edges)[0])
    with pytest.raises(ValueError, match="do not fall on the 0.05 GeV grid"):
        hist.rebinned(75.0, 105.0, 70)


def test_quantiles_of_an_empty_histogram_are_nan():
    assert np.isnan(histogram_quantiles(np.zeros(5), np.zeros(5, int), np.arange(4.0), np.array([0.5]))).all()


@pytest.mark.parametrize("variable", ["sigma_pred_at_peak", "sigma_pred"])
def test_closure_bins_from_histograms_match_those_from_events(tmp_path, scheme, config, variable):
    """Binned closure streams its bins of calibrated sigma_pred; they must hold what the per-event bins hold."""
    from lib.closure import closure_specs, measured_scaling, samples_from_events, samples_from_histograms, sigma_pred_binning

    cfg = config.model_copy(update={"closure": config.closure.model_copy(update={"bin_variable": variable})})
    edges = cfg.closure.bin_edges_gev
    factors = np.random.default_rng(2).uniform(0.9, 1.3, scheme.n_categories)
    paths = _files(tmp_path, 2, 6000, weights=False)

    def merged_reduction(keep: Keep) -> object:
        merger = ReductionMerger(paths, keep.specs, False)
        for index, path in enumerate(paths):
            merger.add(index, reduce_file(path, FileReading(scheme, WINDOW, None, keep=keep)))
        return merger.result()

    scaling = measured_scaling(cfg, scheme, lambda grid: merged_reduction(Keep(profile=grid)))
    assert (scaling is None) == (variable == "sigma_pred")
    binning = sigma_pred_binning(cfg, edges, factors, 91.188, scaling)
    specs = closure_specs(binning, grids_from_config(cfg, len(edges) - 1), source_categories=scheme.n_categories)
    merged = merged_reduction(Keep(specs, events=True, muons=scaling is not None))
    from_events = samples_from_events(merged.skim, binning, scheme.n_categories)
    from_histograms = samples_from_histograms(*merged.histograms, cfg.step2, "closure")
    width = cfg.step2.median_relative_bin_width
    filled = 0
    for events, hists in zip(from_events, from_histograms):
        assert hists.n_events == events.n_events
        if events.n_events < 2:
            continue
        filled += 1
        assert hists.median == pytest.approx(events.median, rel=width)
        assert hists.raw_median == pytest.approx(events.raw_median, rel=width)
        counts, _ = np.histogram(events.masses, bins=hists.histogram.edges)
        np.testing.assert_array_equal(hists.histogram.counts, counts)
        np.testing.assert_array_equal(hists.category_weights, events.category_weights)
        assert hists.category_weights.sum() == events.n_events
    assert filled >= 8


def test_calibration_error_weighs_each_factor_by_its_share_of_the_bin():
    from lib.closure import calibration_error

    factors, errors = np.array([1.0, 1.2, 1.1]), np.array([0.06, 0.012, 0.011])
    assert calibration_error(np.array([0.0, 0.0, 5.0]), factors, errors) == pytest.approx(0.01)
    # Independent fits: two equal shares of 6 % and 1 % add in quadrature.
    assert calibration_error(np.array([3.0, 3.0, 0.0]), factors, errors) == pytest.approx(0.5 * np.hypot(0.06, 0.01))
    assert np.isnan(calibration_error(np.array([1.0, 1.0, 1.0]), factors, None))
    assert np.isnan(calibration_error(None, factors, errors))
    # A category without a usable error in the bin: the bin's error is unknown, not smaller.
    assert np.isnan(calibration_error(np.array([1.0, 1.0, 0.0]), factors, np.array([np.nan, 0.01, 0.01])))
    assert calibration_error(np.array([0.0, 1.0, 1.0]), factors, np.array([np.nan, 0.012, 0.011])) == pytest.approx(0.5 * np.hypot(0.01, 0.01))


def test_weighted_bootstrap_error_sees_the_spread_of_the_weights(config, scheme):
    """Weights of varying size carry less information than as many equal ones: the error grows as sqrt(N/N_eff)."""
    rng = np.random.default_rng(9)
    values = rng.lognormal(np.log(1.1), 0.2, 200_000).astype(np.float32)
    boot_cfg = config.step2.model_copy(update={"median_error": "bootstrap", "bootstrap_resamples": 300})
    equal = compute_medians(_histograms_of(config, scheme, values, np.ones(values.size, np.float32)), scheme, boot_cfg)[0]
    spread = rng.exponential(1.0, values.size).astype(np.float32)  # N_eff = N / 2
    varied = compute_medians(_histograms_of(config, scheme, values, spread), scheme, boot_cfg)[0]
    assert varied.median_err_NonCal / equal.median_err_NonCal == pytest.approx(np.sqrt(2.0), rel=0.15)


def test_median_error_outside_the_grid_is_warned_about(config, scheme, caplog):
    """A median inside the grid whose neighbouring quantiles fall outside it has no error: said, not hidden."""
    values = np.concatenate([np.full(50, 0.01), np.full(51, 0.06)]).astype(np.float32)
    median = compute_medians(_histograms_of(config, scheme, values), scheme, config.step2)[0]
    assert np.isfinite(median.median_val_NonCal) and np.isnan(median.median_err_NonCal)
    assert f"{scheme.names[0]}: the error of the median is unknown" in caplog.text
