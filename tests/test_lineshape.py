"""The acceptance-aware Z line shape against generator truth (issue 18), end to end through steps 1-3.

- With Gaussian residuals and no FSR the true resolution is k x sigma_pred exactly, so the factor
  must be k: within 2.5 % on average over the large categories (the median of a spread sigma_pred
  is itself ~1 % below the width a single Gaussian core fits) and within 3 sigma per category.
- Two samples that differ only in k (same seed, k x 1.1) must give factors whose ratio is 1.1.
- A mass smeared independently of the muons: both placements of A run end to end and stay within
  4 % of k (measured: true -3.1 %, reco -1.7 %). The pT / m histograms then carry the mass
  resolution too, so neither placement is exact there (docs/method.md, "Where the cut acts").
Thresholds are statistical: 400 k events, errors from the fits.
"""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

import pytest

from lib.config import Config
from lib.io.tables import read_csv
from lib.route import run
from tests.helpers_requests import make_request

pytestmark = [pytest.mark.root, pytest.mark.slow]
pytest.importorskip("ROOT")

N_EVENTS = 400_000
K_SCALE = 1.10


def _sample(root: Path, seed: int, **update) -> tuple[Path, dict[str, float]]:
    from lib.generator import SampleRequest, WriteOptions, generate_sample, load_settings

    base = load_settings()
    settings = base.model_copy(update={key: getattr(base, key).model_copy(update=value) if isinstance(value, dict) else value
                                       for key, value in update.pop("settings", {}).items()})  # fmt: skip
    request = SampleRequest(2018, seed=seed, n_data=N_EVENTS, n_mc=0, n_signal=0, **update)
    year_dir = generate_sample(root, request, WriteOptions(files_per_dataset=2), settings)
    return year_dir.parent, json.loads((year_dir / "truth.json").read_text())["k_data"]


def _factors(config: Config, stage1: Path, out: Path) -> dict[str, dict[str, str]]:
    options = make_request(steps="all", years=("2018",), binned=True, input_path=stage1, output_path=out, plot_formats=(),
                         workers=2, dask_mode=None)  # fmt: skip
    (summary,) = run(options, config)
    return {r["cat_name"]: r for r in read_csv(summary.output_dir / "calibration_factors.csv")}


def _fit_rows(out: Path) -> dict[str, dict[str, str]]:
    return {r["cat_name"]: r for r in read_csv(out / "binned" / "2018" / "Data_2018" / "fit_results.csv")}


GAUSSIAN = {"fsr": {"probability": 0.0}, "smearing": {"core_fraction": 1.0}}


@pytest.fixture(scope="module")
def gaussian(tmp_path_factory, config: Config):
    stage1, truth = _sample(tmp_path_factory.mktemp("gauss"), 31, settings=GAUSSIAN)
    out = tmp_path_factory.mktemp("gauss_out")
    return truth, _factors(config, stage1, out), _fit_rows(out)


def test_factor_is_k_for_gaussian_residuals(gaussian):
    truth, factors, fits = gaussian
    large = [c for c, r in factors.items() if int(r["n_events"]) > 10_000]
    ratios = [float(factors[c]["calibration_factor"]) / truth[c] for c in large]
    assert len(large) >= 10
    assert abs(statistics.mean(ratios) - 1.0) < 0.025, ratios
    pulls = {c: (float(r["calibration_factor"]) - truth[c]) / float(r["calibration_factor_err"]) for c, r in factors.items()
             if r["source"] == "fit"}  # fmt: skip
    assert sum(abs(p) < 3.0 for p in pulls.values()) >= len(pulls) - 1, pulls
    # The model describes every category: chi2/NDF below 2 wherever it means something (> 1 k events).
    assert all(float(r["chi2_ndf"]) < 2.0 for r in fits.values() if int(r["n_events"]) > 1000), fits
    # And it needs no retry ladder to get there in nearly every category.
    assert sum(r["attempts"] == "1" and r["quality"] == "ok" for r in fits.values()) >= 30


def test_ratio_of_factors_recovers_the_k_ratio(tmp_path_factory, config: Config):
    root = tmp_path_factory.mktemp("kratio")
    stage1, truth = _sample(root / "nominal", 32)
    scaled, _ = _sample(root / "scaled", 32, k_data={c: k * K_SCALE for c, k in truth.items()})
    nominal = _factors(config, stage1, root / "out_nominal")
    other = _factors(config, scaled, root / "out_scaled")
    ratios, pulls = [], []
    for cat, row in nominal.items():
        f1, f2 = float(row["calibration_factor"]), float(other[cat]["calibration_factor"])
        e1, e2 = float(row["calibration_factor_err"]), float(other[cat]["calibration_factor_err"])
        ratios.append(f2 / f1)
        pulls.append(abs(f2 / f1 - K_SCALE) / (f2 / f1 * math.hypot(e1 / f1, e2 / f2)))
    assert abs(statistics.mean(ratios) / K_SCALE - 1.0) < 0.015, ratios
    assert statistics.pstdev(ratios) / K_SCALE < 0.04, ratios
    assert sum(p < 2.5 for p in pulls) >= 33, pulls


def test_both_placements_on_an_independently_smeared_mass(tmp_path_factory, config: Config):
    """An independently smeared mass: the window cuts the true mass; (BW x A) (x) DCB and (BW (x) DCB) x A both close to k."""
    root = tmp_path_factory.mktemp("independent")
    stage1, truth = _sample(root, 33, settings=GAUSSIAN | {"mass_model": "independent"})
    results = {}
    for placement in ("true", "reco"):
        fit = config.fit.model_copy(update={"acceptance": config.fit.acceptance.model_copy(update={"placement": placement})})
        out = root / f"out_{placement}"
        factors = _factors(config.model_copy(update={"fit": fit}), stage1, out)
        large = [c for c, r in factors.items() if int(r["n_events"]) > 20_000]
        results[placement] = statistics.mean(float(factors[c]["calibration_factor"]) / truth[c] for c in large)
    assert all(abs(value - 1.0) < 0.04 for value in results.values()), results
    assert results["true"] != results["reco"], results
