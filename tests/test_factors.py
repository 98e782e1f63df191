"""Step-3 factors: propagation, plausibility gate and the fallback for failed categories."""

from __future__ import annotations

import math

import pytest

from dataclasses import replace

from lib.config import Step3Config
from lib.errors import GateFailure
from lib.factors import compute_factors
from lib.fitting.result import FitRow
from lib.medians import CategoryMedian


def _fit(name: str, fit_val: float, fit_err: float, ok: bool) -> FitRow:
    return FitRow(name, fit_val, fit_err, 0, 3, "ok" if ok else "failed", "", 1.0, 1000, 1000.0, 1, "nominal")


def _inputs(scheme, failed=(), factor=1.2, n_events=1000, median_err=0.0055):
    fits, medians = {}, {}
    for name in scheme.names:
        fits[name] = _fit(name, factor * 1.1, 0.011, name not in failed)
        medians[name] = CategoryMedian(name, n_events, float(n_events), 1.1, median_err)
    return fits, medians


def _cfg(fallback="neighbour_average"):
    return Step3Config(correction_name="x", failed_fallback=fallback, plausible_factor_band=(0.5, 2.5))


def test_factor_and_error(scheme):
    rows = compute_factors(scheme, *_inputs(scheme), _cfg())
    assert len(rows) == 36
    row = rows[0]
    assert row.calibration_factor == pytest.approx(1.2)
    assert row.calibration_factor_err == pytest.approx(1.2 * math.hypot(0.011 / 1.32, 0.0055 / 1.1))
    assert row.source == "fit"


def test_failed_category_uses_neighbours_and_says_so(scheme):
    rows = compute_factors(scheme, *_inputs(scheme, failed={"30-45_EE"}), _cfg())
    ee = rows[scheme.index_of("30-45_EE")]
    assert ee.fit_quality == "failed" and ee.source.startswith("fallback:neighbour_average(")
    assert "30-45_EO" in ee.source and "45-52_EE" in ee.source
    assert ee.calibration_factor == pytest.approx(1.2)


def test_abort_fallback_refuses(scheme):
    with pytest.raises(GateFailure, match="no good fit for 30-45_EE"):
        compute_factors(scheme, *_inputs(scheme, failed={"30-45_EE"}), _cfg("abort"))


def test_implausible_factor_refused_unless_forced(scheme):
    fits, medians = _inputs(scheme)
    fits["52-62_OB"] = replace(fits["52-62_OB"], fit_val=0.0629 * 1.1)
    with pytest.raises(GateFailure, match="category 52-62_OB: factor 0.0629 outside the plausible band"):
        compute_factors(scheme, fits, medians, _cfg())
    rows = compute_factors(scheme, fits, medians, _cfg(), force=True)
    # Forced past the band, it is still far from its neighbours and replaced by their average.
    assert rows[scheme.index_of("52-62_OB")].source.startswith("fallback:neighbour_average(")


def test_neighbour_outlier_is_treated_as_failed(scheme):
    fits, medians = _inputs(scheme)
    fits["30-45_EE"] = replace(fits["30-45_EE"], fit_val=0.55 * 1.1)  # passes the band, far from every neighbour (1.2)
    rows = compute_factors(scheme, fits, medians, _cfg())
    ee = rows[scheme.index_of("30-45_EE")]
    assert ee.fit_quality == "failed" and ee.source.startswith("fallback:neighbour_average(")
    assert ee.calibration_factor == pytest.approx(1.2)
    assert all(r.source == "fit" for r in rows if r.cat_name != "30-45_EE")


def test_fallback_reaches_the_nearest_good_categories(scheme):
    """With the whole 30-45 row and 45-52_EE failed, 30-45_EE borrows from the closest good fits (distance 2)."""
    failed = {n for n in scheme.names if n.startswith("30-45_")} | {"45-52_EE"}
    rows = compute_factors(scheme, *_inputs(scheme, failed=failed), _cfg())
    ee = rows[scheme.index_of("30-45_EE")]
    assert ee.source.startswith("fallback:neighbour_average(distance 2: ")
    assert {"45-52_EO", "45-52_OE", "52-62_EE"} == set(ee.source.split(": ")[1].rstrip(")").split("+"))
    assert ee.calibration_factor == pytest.approx(1.2)


def test_fallback_error_includes_the_scatter_between_neighbours(scheme):
    """A borrowed factor is uncertain by how much factors change from one category to the next."""
    fits, medians = _inputs(scheme, failed={"62-200_EE"})
    for name in scheme.names:
        if name.endswith("B"):
            fits[name] = replace(fits[name], fit_val=1.1 * 1.26)  # factors alternate 1.26 / 1.2 along the eta2 axis
    rows = compute_factors(scheme, fits, medians, _cfg())
    ee = rows[scheme.index_of("62-200_EE")]
    assert ee.calibration_factor == pytest.approx(1.2)  # its neighbours (62-200_EO, 62-200_OE, 52-62_EE) are at 1.2
    # 75 adjacent pairs, 3 of them with the failed category; the 12 B-O pairs along eta2 differ by 0.06.
    expected = math.sqrt(12 * 0.06**2 / (2 * 72))
    assert ee.calibration_factor_err == pytest.approx(expected, rel=1e-9)
    assert ee.calibration_factor_err > rows[scheme.index_of("62-200_EO")].calibration_factor_err


def test_no_good_fit_anywhere_refuses(scheme):
    with pytest.raises(GateFailure, match="no category has a good fit"):
        compute_factors(scheme, *_inputs(scheme, failed=set(scheme.names)), _cfg())


def test_a_fallback_row_shows_no_sigma_of_the_failed_fit(config, scheme):
    """The failed fit's sigma did not produce the borrowed factor: the row leaves it out (NaN)."""
    import math

    from lib.factors import compute_factors

    fits, medians = _inputs(scheme, failed={"30-45_OO"}, n_events=5000, median_err=0.001)
    fits["30-45_OO"] = replace(fits["30-45_OO"], fit_val=0.7)
    row = next(f for f in compute_factors(scheme, fits, medians, config.step3) if f.cat_name == "30-45_OO")
    assert row.source.startswith("fallback:") and row.calibration_factor == pytest.approx(1.2)
    assert math.isnan(row.fit_val) and math.isnan(row.fit_err)
