"""End to end on generated samples: steps 1-3 recover the true resolution scale, outputs are complete."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from lib.categories import CategoryScheme
from lib.route import run
from tests.helpers_requests import make_request

pytestmark = [pytest.mark.root, pytest.mark.slow]


@pytest.fixture(scope="module")
def two_samples(tmp_path_factory):
    """Same seed, one with the built-in Data k map and one with k = 1: only dimuon_mass differs."""
    pytest.importorskip("ROOT")
    from lib.generator import SampleRequest, WriteOptions, generate_sample

    base = tmp_path_factory.mktemp("samples")
    sizes = dict(seed=7, n_data=600_000, n_mc=0, n_signal=0)
    scaled = generate_sample(base / "scaled", SampleRequest(2018, **sizes), WriteOptions(files_per_dataset=2))
    unit = generate_sample(base / "unit", SampleRequest(2018, k_data=1.0, **sizes), WriteOptions(files_per_dataset=2))
    return scaled.parent, unit.parent, json.loads((scaled / "truth.json").read_text())["k_data"]


def _calibrate(config, stage1: Path, out: Path):
    options = make_request(steps="all", years=("2018",), binned=True, input_path=stage1, output_path=out, plot_formats=(), workers=2)
    (summary,) = run(options, config)
    return summary


def test_factor_ratio_recovers_true_scale(config, scheme: CategoryScheme, two_samples, tmp_path):
    scaled_root, unit_root, k_true = two_samples
    scaled = _calibrate(config, scaled_root, tmp_path / "scaled")
    unit = _calibrate(config, unit_root, tmp_path / "unit")
    assert scaled.factors is not None and scaled.factors.correction_json.exists()
    pulls = []
    for a, b in zip(scaled.factors.rows, unit.factors.rows):
        if a.source != "fit" or b.source != "fit":
            continue
        ratio = a.calibration_factor / b.calibration_factor
        err = ratio * np.hypot(a.calibration_factor_err / a.calibration_factor, b.calibration_factor_err / b.calibration_factor)
        pulls.append((ratio - k_true[a.cat_name]) / err)
    pulls = np.array(pulls)
    # Most categories must be fitted; the smallest (a few hundred events) may legitimately fall back.
    assert len(pulls) >= 30
    assert np.mean(np.abs(pulls) < 2.5) >= 0.95, pulls
    assert abs(np.mean(pulls)) < 0.3, pulls


def test_outputs_are_complete(config, scheme, two_samples, tmp_path):
    scaled_root, _, _ = two_samples
    summary = _calibrate(config, scaled_root, tmp_path / "out")
    out = summary.output_dir
    for name in ("median_for_cats.csv", "fit_results.csv", "fit_params.json", "calibration_factors.csv",
                 "calibration_factors.tex", "calibration_factors_4dec.tex", "calibration_factors_3dec.tex"):  # fmt: skip
        assert (out / name).exists(), name
    from lib.correction.writer import load_correction

    factors = load_correction(summary.factors.correction_json).factors(scheme)
    for row in summary.factors.rows:
        assert factors[row.cat_name] == pytest.approx(row.calibration_factor, rel=1e-12)
    assert not list(out.glob("*.tmp*")), "no temporary files left behind"


def test_every_fitted_category_and_step_2_get_their_figures(config, scheme, two_samples, tmp_path):
    """Every fitted category and step 2 get PNG + PDF beside the correction JSON.

    The figures are drawn on their own processes while the fits run (queued as each result
    arrives), so no order against the JSON is asserted: that depends on the machine's load.
    """
    scaled_root, _, _ = two_samples
    options = make_request(steps="all", years=("2018",), binned=True, input_path=scaled_root, output_path=tmp_path, workers=2)
    (summary,) = run(options, config)
    out = summary.output_dir
    assert summary.factors.correction_json.is_file()
    figures = [out / "sigma_pred_per_category"] + [out / "fits" / f"fit_{name}" for name in scheme.names]
    for stem in figures:
        for ext in ("png", "pdf"):
            path = stem.with_name(f"{stem.name}.{ext}")
            assert path.stat().st_size > 10_000, path
    assert summary.timings["figures"] > 0


def test_a_damaged_step_table_is_one_error_naming_file_column_and_value(tmp_path):
    from lib.errors import InputError
    from lib.fitting.result import FitRow
    from lib.io.tables import parse_row

    good = FitRow.not_fitted("30-45_EE", "x", 3).row()
    with pytest.raises(InputError, match=r"fit_results.csv: no column cov_qual"):
        parse_row(FitRow, {k: v for k, v in good.items() if k != "cov_qual"}, "fit_results.csv")
    with pytest.raises(InputError, match=r"fit_results.csv: n_events = 'many' is not int"):
        parse_row(FitRow, good | {"n_events": "many"}, "fit_results.csv")
