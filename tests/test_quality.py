"""Fit-quality gates on hand-made attempts: a clean attempt passes and each gate fires on its own."""

from __future__ import annotations

import dataclasses
import math

import pytest

from lib.config import QualityConfig
from lib.fitting.result import AttemptRecord, ParamResult
from lib.fitting.quality import at_limit, evaluate_gates

QUALITY = QualityConfig(max_chi2_ndf=3.0, sigma_ratio_band=(0.4, 3.0), limit_tolerance=0.001)
MEDIAN = 1.3


def attempt(**changes: object) -> AttemptRecord:
    params = (
        ParamResult("sigma", 1.5, 0.02, 0.05, 6.0, False, False),
        ParamResult("n_right", 5.0, 1.0, 1.01, 60.0, False, False),
        ParamResult("bw_mass", 91.188, 0.0, 90.0, 92.5, True, False),
    )
    clean = AttemptRecord(
        label="nominal", status=0, status_first=0, status_history=(("MINIMIZE", 0), ("HESSE", 0)), cov_qual=3,
        edm=1e-5, min_nll=-10.0, sigma=1.5, sigma_err=0.02, chi2_ndf=1.1, n_float=8, n_events=10_000,
        sum_weights=10_000.0, params=params, failures=(), seconds=0.5, width=1.5, width_err=0.02,
    )  # fmt: skip
    return dataclasses.replace(clean, **changes)


def test_clean_attempt_passes():
    assert evaluate_gates(attempt(), QUALITY, MEDIAN) == []


def pinned_n_right() -> tuple[ParamResult, ...]:
    return (ParamResult("n_right", 60.0, 0.01, 1.01, 60.0, False, True),)


@pytest.mark.parametrize(
    "changes,expected",
    [
        ({"status": 3}, "fit status 3"),
        ({"status": 0, "status_history": (("MINIMIZE", 0), ("HESSE", 3))}, "fit status 0 (HESSE=3)"),
        ({"cov_qual": 2}, "covariance quality 2"),
        ({"width_err": 0.0}, "sigma_fit error 0 is not a positive finite number"),
        ({"width_err": math.nan}, "sigma_fit error nan"),
        ({"params": pinned_n_right()}, "parameter at a limit: n_right=60 in [1.01, 60]"),
        ({"chi2_ndf": 3.5}, "chi2/NDF 3.5 above 3"),
        ({"chi2_ndf": math.nan}, "chi2/NDF nan above 3"),
        ({"width": 0.0629}, "outside [0.4, 3]"),
        ({"width": 4.5}, "= 3.46 outside [0.4, 3]"),
    ],
    ids=["status", "hesse-step", "covqual", "zero-error", "nan-error", "at-limit", "chi2", "nan-chi2", "ratio-low", "ratio-high"],
)
def test_each_gate_fires_alone(changes: dict[str, object], expected: str):
    failures = evaluate_gates(attempt(**changes), QUALITY, MEDIAN)
    assert len(failures) == 1 and expected in failures[0], failures


def test_constant_parameter_at_its_value_is_not_a_failure():
    frozen = (ParamResult("n_right", 60.0, 0.0, 1.01, 60.0, True, False),)
    assert evaluate_gates(attempt(params=frozen), QUALITY, MEDIAN) == []


def test_unknown_median_skips_only_the_ratio_gate():
    assert evaluate_gates(attempt(width=0.0629), QUALITY, math.nan) == []
    assert evaluate_gates(attempt(width=0.0629, cov_qual=1), QUALITY, 0.0) == [
        "covariance quality 1, 3 (full, accurate) required"
    ]


def test_failures_accumulate_in_order():
    failures = evaluate_gates(attempt(status=4, cov_qual=0, params=pinned_n_right(), width=0.01), QUALITY, MEDIAN)
    assert [f.split()[0] for f in failures] == ["fit", "covariance", "parameter", "sigma_fit/median(sigma_pred)"]


@pytest.mark.parametrize(
    "value,lo,hi,expected",
    [(0.05, 0.05, 6.0, True), (0.0559, 0.05, 6.0, True), (0.0561, 0.05, 6.0, False), (5.995, 0.05, 6.0, True),
     (3.0, None, 6.0, False), (3.0, -math.inf, math.inf, False)],
)  # fmt: skip
def test_at_limit_uses_fraction_of_range(value: float, lo: float | None, hi: float | None, expected: bool):
    assert at_limit(value, lo, hi, 0.001) is expected


def test_large_category_passes_on_small_shape_mismodelling():
    """chi2/NDF 10 from 1000 events a bin is a 9.5 % per-bin difference: fine at 10 %, not at 5 %."""
    big = attempt(chi2_ndf=10.0, n_events=120_000, n_bins=120)
    assert evaluate_gates(big, QUALITY.model_copy(update={"max_shape_mismodelling": 0.10}), MEDIAN) == []
    (failure,) = evaluate_gates(big, QUALITY.model_copy(update={"max_shape_mismodelling": 0.05}), MEDIAN)
    assert "data/model differ by 9.5% per bin" in failure
    small = attempt(chi2_ndf=10.0, n_events=1_200, n_bins=120)
    assert evaluate_gates(small, QUALITY.model_copy(update={"max_shape_mismodelling": 0.10}), MEDIAN)


def test_z_core_far_from_the_peak_fails_only_for_offset_means():
    shifted = attempt(params=(ParamResult("mean", -1.4, 0.05, -4.0, 3.0, False, False),))
    gated = QUALITY.model_copy(update={"max_peak_offset_gev": 1.0, "peak_offset_n_sigma": 2.0})
    (failure,) = evaluate_gates(shifted, gated, MEDIAN, peak_offset=True)
    assert "peak offset mean=-1.4+-0.05 GeV beyond +-1 GeV by more than 2 sigma" in failure
    # The same offset measured with a 0.4 GeV error (a category of ~2 k events) is 1 sigma beyond: it passes.
    uncertain = attempt(params=(ParamResult("mean", -1.4, 0.4, -4.0, 3.0, False, False),))
    assert evaluate_gates(uncertain, gated, MEDIAN, peak_offset=True) == []
    assert evaluate_gates(uncertain, gated.model_copy(update={"peak_offset_n_sigma": 0.0}), MEDIAN, peak_offset=True)
    # A Higgs fit's mean is the absolute mass, not an offset.
    assert evaluate_gates(attempt(params=(ParamResult("mean", 125.2, 0.05, 120.2, 130.2, False, False),)), gated, MEDIAN) == []


@pytest.mark.parametrize(
    "changes,failed",
    [({}, False), ({"status": 1}, True), ({"cov_qual": 2}, True), ({"width_err": 0.0}, True),
     ({"status_history": (("MIGRAD", 0), ("HESSE", 300))}, True), ({"chi2_ndf": 99.0}, False)],
)  # fmt: skip
def test_covariance_failed_tells_minimiser_from_model(changes, failed):
    from lib.fitting.quality import covariance_failed

    assert covariance_failed(attempt(**changes)) is failed
