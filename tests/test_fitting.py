"""Category fits against numpy-generated truth, retries and failure reporting, results and plots.

Samples are BW(91.188, 2.4955) convolved with a double-sided Crystal Ball of known core sigma
(the model's own family, so "truth" is unambiguous: the configured width of that DCB, its
effective width or its core sigma) plus an optional exponential background.
Tolerances are set from the expected statistical error: each recovery test checks both the
2 % requirement and a pull below 3, on samples large enough that 2 % is at least ~2.5 sigma.
"""

from __future__ import annotations

import json
import math
import pickle

import numpy as np
import pytest

from lib.config import Config, FitSpec, ParamSpec, higgs_fit_spec, resolve_fit_spec, retry_specs
from lib.errors import FitError
from lib.fitting.effective_width import TAIL_PARAMS, effective_sigma
from lib.fitting.result import AttemptRecord, FitCurves, FitResult, ParamResult

MZ, GZ = 91.188, 2.4955
# Inside the configured alpha >= 1.5 (the Gaussian core spans at least +-1.5 sigma).
TAILS = {"alpha_left": 1.8, "n_left": 3.0, "alpha_right": 2.1, "n_right": 5.0}
WINDOW = (75.0, 105.0)


def dcb_shape(t: np.ndarray, sigma: float, alpha_left: float, n_left: float, alpha_right: float, n_right: float) -> np.ndarray:
    """Unnormalised double-sided Crystal Ball in RooCrystalBall's convention, centred at 0."""
    z = t / sigma
    out = np.exp(-0.5 * z * z)
    for side, alpha, n in ((-1.0, alpha_left, n_left), (1.0, alpha_right, n_right)):
        tail = side * z > alpha
        a = (n / alpha) ** n * math.exp(-0.5 * alpha * alpha)
        out[tail] = a * (n / alpha - alpha + side * z[tail]) ** (-n)
    return out


def draw_dcb(rng: np.random.Generator, n: int, sigma: float, tails: dict[str, float]) -> np.ndarray:
    """DCB residuals by inverse CDF on a fine grid (+-40 GeV holds every tail that matters)."""
    grid = np.linspace(-40.0, 40.0, 400_001)
    cdf = np.cumsum(dcb_shape(grid, sigma, **tails))
    return np.interp(rng.random(n), cdf / cdf[-1], grid)


def z_sample(
    rng: np.random.Generator, n: int, sigma: float, tails: dict[str, float] = TAILS, bkg_fraction: float = 0.0,
    slope: float = -0.05, window: tuple[float, float] = WINDOW,
) -> np.ndarray:  # fmt: skip
    """``n`` dimuon masses inside ``window``: BW (x) DCB signal plus an exponential background."""
    lo, hi = window
    n_sig = int(round(n * (1.0 - bkg_fraction)))
    parts, have = [], 0
    while have < n_sig:
        k = 2 * (n_sig - have) + 1000
        m = MZ + 0.5 * GZ * rng.standard_cauchy(k) + draw_dcb(rng, k, sigma, tails)
        m = m[(m > lo) & (m < hi)][: n_sig - have]
        parts.append(m)
        have += m.size
    u = rng.random(n - n_sig)
    parts.append(np.log(np.exp(slope * lo) + u * (np.exp(slope * hi) - np.exp(slope * lo))) / slope)
    masses = np.concatenate(parts)
    rng.shuffle(masses)
    return masses.astype(np.float32)


def fixed_tails_spec(spec: FitSpec, tails: dict[str, float] = TAILS) -> FitSpec:
    """Tails frozen at the truth and no background: only mean and sigma float (fast, well conditioned)."""
    params = dict(spec.params)
    for name, value in tails.items():
        params[name] = ParamSpec(value=value, min=params[name].min, max=params[name].max, constant=True)
    return spec.model_copy(update={"params": params, "background": "none"})


@pytest.fixture(scope="module")
def config(plain_config: Config) -> Config:
    """These samples are drawn from BW (x) DCB with no pT window: the plain line shape is their model."""
    return plain_config


def make_task(config: Config, name: str, masses: np.ndarray, spec: FitSpec, median: float,
              weights: np.ndarray | None = None, retries: bool = True):  # fmt: skip
    from lib.fitting.task import FitEvents, FitTask

    ladder = tuple(retry_specs(config, spec, median)) if retries else ()
    return FitTask(name, FitEvents(masses, weights), spec, ladder, median, config.fit.quality)


def reported_truth(config: Config, sigma: float, tails: dict[str, float] = TAILS) -> float:
    """The width a fit reports for the generating DCB: its effective width or its core sigma, as configured."""
    if config.fit.width == "core":
        return sigma
    return effective_sigma(sigma, *(tails[name] for name in TAIL_PARAMS), config.fit.width_window_sigmas)


def assert_recovers(result: FitResult, truth: float, max_rel_err: float) -> None:
    """ok, an error small enough that 2 % means something, the 2 % requirement and a pull below 3."""
    assert result.ok, result.reason
    assert 0 < result.fit_err < max_rel_err * truth, result.fit_err
    assert abs(result.fit_val / truth - 1.0) < 0.02, result.fit_val
    assert abs(result.fit_val - truth) < 3.0 * result.fit_err, (result.fit_val, result.fit_err)


@pytest.fixture(scope="module")
def root():
    return pytest.importorskip("ROOT")


@pytest.fixture(scope="module")
def binned_result(root, config: Config) -> FitResult:
    """Default binned fit (all 8 parameters free) of 3 M events, sigma 1.5 GeV, 2 % background."""
    from lib.fitting.runner import fit_category

    masses = z_sample(np.random.default_rng(21), 3_000_000, 1.5, bkg_fraction=0.02)
    spec = resolve_fit_spec(config, "30-45_OB", binned=True)
    return fit_category(make_task(config, "30-45_OB", masses, spec, median=1.3))


@pytest.mark.root
def test_binned_fit_recovers_sigma(binned_result: FitResult, config: Config):
    # 3 M events (binned: the cost does not grow with N): with free tails the Hesse error is
    # ~0.3-0.4 %, so 2 % is more than 3 sigma.
    assert_recovers(binned_result, reported_truth(config, 1.5), max_rel_err=0.007)
    chosen = binned_result.chosen
    assert chosen.status == 0 and chosen.cov_qual == 3
    assert chosen.chi2_ndf < 2.0
    assert chosen.n_events == 3_000_000 and chosen.n_float == 8
    assert chosen.param("bkg_fraction").value == pytest.approx(0.02, abs=0.01)


@pytest.mark.root
def test_unbinned_fit_recovers_sigma(root, config: Config):
    from lib.fitting.runner import fit_category

    masses = z_sample(np.random.default_rng(12), 100_000, 1.5)
    spec = fixed_tails_spec(resolve_fit_spec(config, "45-52_BB", binned=False))
    result = fit_category(make_task(config, "45-52_BB", masses, spec, median=1.3))
    # 100 k events, tails known: expected error ~0.75 %, 2 % is ~2.7 sigma.
    assert_recovers(result, reported_truth(config, 1.5), max_rel_err=0.009)
    assert result.chosen.n_float == 2 and not result.weighted


@pytest.mark.root
@pytest.mark.parametrize("binned", [True, False], ids=["binned", "unbinned"])
def test_weighted_fit_error_follows_effective_count(root, config: Config, binned: bool):
    """Weights ~U(0.1, 0.3): a sum(w)-as-counts error would be ~2.2x the unweighted one; SumW2 gives ~1.04x."""
    from lib.fitting.runner import fit_category

    rng = np.random.default_rng(13)
    masses = z_sample(rng, 40_000, 1.8)
    weights = rng.uniform(0.1, 0.3, masses.size)
    spec = fixed_tails_spec(resolve_fit_spec(config, "52-62_OO", binned=binned))
    plain = fit_category(make_task(config, "52-62_OO", masses, spec, 1.5, retries=False))
    weighted = fit_category(make_task(config, "52-62_OO", masses, spec, 1.5, weights=weights, retries=False))
    assert plain.ok and weighted.ok, (plain.reason, weighted.reason)
    assert weighted.weighted and weighted.chosen.sum_weights == pytest.approx(weights.sum())
    expected = math.sqrt(np.mean(weights**2)) / np.mean(weights)
    assert weighted.fit_err / plain.fit_err == pytest.approx(expected, rel=0.08)
    assert abs(weighted.fit_val - plain.fit_val) < plain.fit_err


@pytest.mark.root
def test_fitted_sigma_does_not_depend_on_fft_settings(root, config: Config):
    from lib.fitting.runner import fit_category

    masses = z_sample(np.random.default_rng(14), 300_000, 1.5, bkg_fraction=0.02)
    base = resolve_fit_spec(config, "30-45_BB", binned=True)
    results = {
        (bins, buffer): fit_category(
            make_task(config, "30-45_BB", masses, base.model_copy(update={"fft_cache_bins": bins, "fft_buffer_fraction": buffer}), 1.3)
        )
        for bins, buffer in ((4000, 0.5), (10000, 0.5), (4000, 1.0))
    }  # fmt: skip
    reference = results[(4000, 0.5)]
    assert all(r.ok for r in results.values()), {k: r.reason for k, r in results.items()}
    for key, result in results.items():
        assert abs(result.fit_val - reference.fit_val) < 0.1 * reference.fit_err, (key, result.fit_val, reference.fit_val)


@pytest.mark.root
@pytest.mark.parametrize("seed", [101, 103])
def test_hard_category_is_repaired_or_explained(root, config: Config, seed: int):
    """300 events, sigma 3 GeV: accepted only with a plausible sigma, otherwise failed with reasons."""
    from lib.fitting.runner import fit_category

    masses = z_sample(np.random.default_rng(seed), 300, 3.0, bkg_fraction=0.02)
    spec = resolve_fit_spec(config, "62-200_EE", binned=True)
    task = make_task(config, "62-200_EE", masses, spec, median=2.5)
    result = fit_category(task)
    labels = [a.label for a in result.attempts]
    assert labels == [s.label for s in (task.nominal, *task.retries)][: len(labels)]
    assert all(a.failures for a in result.attempts[:-1])
    if result.ok:
        assert abs(result.fit_val / 3.0 - 1.0) < 0.3 and result.fit_err > 0
        assert result.chosen.label == labels[-1] and result.reason == ""
    else:
        assert result.reason and len(result.attempts) == 1 + len(task.retries)


@pytest.mark.root
def test_higgs_peak_fit(root, config: Config):
    from lib.fitting.runner import fit_category

    rng = np.random.default_rng(15)
    masses = (config.higgs.mass_gev + draw_dcb(rng, 200_000, 1.8, TAILS)).astype(np.float32)
    spec = higgs_fit_spec(config, "H", binned=True)
    result = fit_category(make_task(config, "H", masses, spec, 1.6, retries=False))
    assert_recovers(result, reported_truth(config, 1.8), max_rel_err=0.008)
    assert result.peak == "higgs"
    assert result.chosen.param("mean").value == pytest.approx(config.higgs.mass_gev, abs=0.05)


@pytest.mark.root
def test_refit_in_same_process_is_identical(root, config: Config):
    """Same name, same process, twice: no RooFit object or cache survives a category."""
    from lib.fitting.runner import fit_category

    masses = z_sample(np.random.default_rng(16), 20_000, 1.5)
    spec = fixed_tails_spec(resolve_fit_spec(config, "30-45_OO", binned=False))
    first, second = (fit_category(make_task(config, "30-45_OO", masses, spec, 1.3)) for _ in range(2))
    assert (first.fit_val, first.fit_err, first.chosen.min_nll) == (second.fit_val, second.fit_err, second.chosen.min_nll)


@pytest.mark.root
def test_backend_cross_check_agrees(root, config: Config, caplog):
    """cpu vs legacy on the same data (the ROOT 21159 guard): same minimum, no warning."""
    from lib.executor import InlineExecutor
    from lib.peak_fits import FitJob, cross_check_backend
    from lib.fitting.runner import fit_category

    masses = z_sample(np.random.default_rng(17), 20_000, 1.5, bkg_fraction=0.02)
    spec = resolve_fit_spec(config, "30-45_OO", binned=True)
    spec = fixed_tails_spec(spec).model_copy(update={"background": "exponential"})
    task = make_task(config, "30-45_OO", masses, spec, 1.3)
    result = fit_category(task)
    with caplog.at_level("INFO", logger="lib.peak_fits"):
        reference = cross_check_backend(InlineExecutor(), [FitJob(task, None, "")], {task.name: result}, reference="legacy")
    assert reference is not None
    assert reference.backend == "legacy" and result.backend == "cpu"
    assert reference.fit_val == pytest.approx(result.fit_val, abs=0.05 * result.fit_err)
    assert "agrees with legacy" in caplog.text and "disagree" not in caplog.text


@pytest.mark.root
def test_no_events_in_range_is_a_failed_result(root, config: Config):
    from lib.fitting.runner import fit_category

    masses = np.array([60.0, 70.0, 120.0], dtype=np.float32)
    spec = resolve_fit_spec(config, "30-45_EE", binned=True)
    result = fit_category(make_task(config, "30-45_EE", masses, spec, 1.3))
    assert not result.ok and "no events in fit range" in result.reason
    assert result.chosen.n_events == 0 and result.curves is None and math.isnan(result.fit_val)
    json.dumps(result.to_dict(), allow_nan=False)


def test_unusable_input_raises_fit_error(config: Config):
    from lib.fitting.runner import fit_category

    spec = resolve_fit_spec(config, "30-45_EE", binned=True)
    masses = np.full(10, 91.0, dtype=np.float32)
    with pytest.raises(FitError, match="9 weights for 10 events"):
        fit_category(make_task(config, "30-45_EE", masses, spec, 1.3, weights=np.ones(9)))
    with pytest.raises(FitError, match="non-finite event weights"):
        fit_category(make_task(config, "30-45_EE", masses, spec, 1.3, weights=np.full(10, np.nan)))


def synthetic_result(ok: bool = True, with_curves: bool = True) -> FitResult:
    """A FitResult built by hand (no ROOT) with plausible arrays."""
    edges = np.linspace(75.0, 105.0, 121)
    centres = 0.5 * (edges[1:] + edges[:-1])
    counts = 1000.0 / (1.0 + ((centres - MZ) / 2.0) ** 2) + 20.0
    grid = np.linspace(75.0, 105.0, 481)
    total = 1000.0 / (1.0 + ((grid - MZ) / 2.0) ** 2) + 20.0
    curves = FitCurves(edges, counts, np.sqrt(counts), np.sqrt(counts) + 1, grid, total, total - 20.0,
                       np.full_like(grid, 20.0), np.zeros(120))  # fmt: skip
    params = (ParamResult("sigma", 1.5, 0.02, 0.05, 6.0, False, False), ParamResult("bw_mass", MZ, 0.0, 90.0, 92.5, True, False))
    attempt = AttemptRecord("nominal", 0, 0, (("MINIMIZE", 0), ("HESSE", 0)), 3, 1e-5, -12.5, 1.5, 0.02, 1.1 if ok else 9.0, 8,
                            5000, 5000.0, params, () if ok else ("chi2/NDF 9 above 3",), 0.4, width=1.5, width_err=0.02)  # fmt: skip
    return FitResult(
        name="30-45_OB", chosen=attempt, attempts=(attempt,), weighted=False, peak="z", backend="cpu",
        curves=curves if with_curves else None, seconds=0.5,
    )  # fmt: skip


def test_result_pickles_and_serialises():
    result = synthetic_result()
    back = pickle.loads(pickle.dumps(result))
    assert back == result and np.array_equal(back.curves.counts, result.curves.counts)
    record = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    assert record["params"]["sigma"] == {"val": 1.5, "err": 0.02, "min": 0.05, "max": 6.0, "constant": False, "at_limit": False}
    assert record["attempts"][0]["status_history"] == [["MINIMIZE", 0], ["HESSE", 0]]
    assert list(record) == [
        "cat_name", "quality", "reason", "label", "fit_val", "fit_err", "status", "cov_qual", "edm", "min_nll", "chi2_ndf",
        "n_float", "n_events", "sum_weights", "weighted", "peak", "backend", "width_definition", "params", "attempts", "seconds",
    ]  # fmt: skip
    # A failed result reports its best attempt's numbers, and why they must not be used.
    failed = synthetic_result(ok=False)
    assert (failed.ok, failed.reason) == (False, "no attempt passed (best 'nominal'): chi2/NDF 9 above 3")
    assert (failed.fit_val, failed.fit_err, failed.chosen.chi2_ndf, failed.chosen.label) == (1.5, 0.02, 9.0, "nominal")
    row = result.summary_row().row()
    assert list(row) == [
        "cat_name", "fit_val", "fit_err", "status", "cov_qual", "quality", "reason", "chi2_ndf", "n_events",
        "sum_weights", "attempts", "label",
    ]  # fmt: skip
    assert row["quality"] == "ok" and synthetic_result(ok=False).summary_row().quality == "failed"
    # Written and read back, a row is the same typed row (NaN of a fit that never came back included).
    from lib.fitting.result import FitRow
    from lib.io.tables import parse_row

    for typed in (result.summary_row(), FitRow.not_fitted("30-45_EE", "worker crashed twice", 12)):
        back = parse_row(FitRow, {k: str(v) for k, v in typed.row().items()}, "fit_results.csv")
        assert back.row().keys() == typed.row().keys()
        assert all(a == b or (a != a and b != b) for a, b in zip(back.row().values(), typed.row().values()))


@pytest.mark.root
def test_real_result_pickles_and_serialises(binned_result: FitResult):
    back = pickle.loads(pickle.dumps(binned_result))
    assert back.fit_val == binned_result.fit_val and back.attempts == binned_result.attempts
    json.dumps(binned_result.to_dict(), allow_nan=False)
    curves = binned_result.curves
    assert curves.counts.sum() == pytest.approx(3_000_000)
    assert np.nanstd(curves.pulls) == pytest.approx(1.0, abs=0.3)
    # The curves are in events per bin: the total integrates to the data.
    width = curves.edges[1] - curves.edges[0]
    assert np.trapezoid(curves.total, curves.curve_x) / width == pytest.approx(3_000_000, rel=0.01)
    # RooFit's adaptive total curve and the evaluated components agree (same normalisation).
    np.testing.assert_allclose(curves.signal + curves.background, curves.total, rtol=5e-3)


@pytest.mark.parametrize("ok,with_curves", [(True, True), (False, True), (False, False)])
def test_plot_fit_writes_png_and_pdf(tmp_path, ok: bool, with_curves: bool):
    pytest.importorskip("mplhep")
    from lib.figures import FitFigure
    from lib.plots.cms import Header
    from lib.plots.fits import plot_fit

    written = plot_fit(FitFigure(synthetic_result(ok, with_curves), tmp_path / "plots" / "fit_30-45_OB", Header("Data 2018 30-45_OB", "2018")))
    assert [p.suffix for p in written] == [".png", ".pdf"]
    assert written[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and written[1].read_bytes()[:5] == b"%PDF-"
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == ["fit_30-45_OB.pdf", "fit_30-45_OB.png"]


def test_plot_fit_png_shows_only_its_own_category(tmp_path):
    """The PNG is a re-used backdrop plus the category's artists: nothing of the category drawn before it may remain,
    and the pixels are those of a full draw of the same figure, up to the antialiasing where ticks meet the frame."""
    pytest.importorskip("mplhep")
    import dataclasses

    from PIL import Image

    import lib.plots.fits as fits
    from lib.figures import FitFigure
    from lib.plots.cms import Header, cms_style

    wide = synthetic_result(True, True)
    c = wide.curves
    taller = dataclasses.replace(c, counts=3 * c.counts, total=3 * c.total, signal=3 * c.signal, pulls=np.linspace(-3.5, 3.5, c.pulls.size))
    failures = ("chi2/NDF 3.21 above 2",)
    failed = dataclasses.replace(wide.chosen, width=0.4321, width_err=0.0123, chi2_ndf=3.21, n_events=12, failures=failures)
    narrow = dataclasses.replace(wide, chosen=failed, attempts=(failed,), curves=taller)
    fits._FIGURES.clear()
    fresh = Image.open(fits.plot_fit(FitFigure(narrow, tmp_path / "fresh", Header("Data 2018 45-52_EE", "2018")))[0])
    fits.plot_fit(FitFigure(wide, tmp_path / "before", Header("Data 2018 30-45_OB", "2018")))
    reused = Image.open(fits.plot_fit(FitFigure(narrow, tmp_path / "reused", Header("Data 2018 45-52_EE", "2018")))[0])
    assert np.array_equal(np.asarray(fresh), np.asarray(reused))
    full = tmp_path / "full.png"
    with cms_style():  # a full draw in the style plot_fit draws in
        fits._figure(narrow.weighted, True, narrow.peak).fig.savefig(full, dpi=fits.PNG_DPI)
    differ = np.abs(np.asarray(Image.open(full).convert("RGBA"), dtype=int) - np.asarray(reused, dtype=int)).sum(axis=-1) > 0
    assert differ.mean() < 2e-3


@pytest.mark.root
def test_plot_real_fit(tmp_path, binned_result: FitResult):
    pytest.importorskip("mplhep")
    from lib.figures import FitFigure
    from lib.plots.cms import Header
    from lib.plots.fits import plot_fit

    written = plot_fit(FitFigure(binned_result, tmp_path / "fit_30-45_OB", Header("Data 2018 30-45_OB", "2018")))
    assert all(p.stat().st_size > 10_000 for p in written)


def test_restart_starts_inside_limits_and_freezes_named_parameters(config: Config):
    """A restart starts at the earlier minimum (kept off the limits) and fixes only the named parameters."""
    from lib.fitting.runner import RESTART_MARGIN, _Outcome, _restarted

    nominal = resolve_fit_spec(config, "30-45_BB", binned=True)
    fitted = (
        ParamResult("sigma", 0.93, 0.02, 0.05, 6.0, False, False),
        ParamResult("n_left", 1.01, 0.5, 1.01, 60.0, False, True),
        ParamResult("alpha_left", 1.3, 0.1, 1.0, 10.0, False, False),
        ParamResult("bw_mass", MZ, 0.0, 90.0, 92.5, True, False),
    )
    attempt = AttemptRecord("nominal", 1, 0, (), 2, 1e-4, -3.0, 0.93, 0.02, 1.2, 8, 900, 900.0, fitted, ("covariance",), 0.3)
    previous = _Outcome(attempt, None, fitted=True)

    restart = _restarted(nominal.model_copy(update={"start_from_previous": True}), previous)
    assert restart.params["sigma"].value == pytest.approx(0.93) and not restart.params["sigma"].constant
    n_left = restart.params["n_left"]
    assert n_left.value == pytest.approx(n_left.min + RESTART_MARGIN * (n_left.max - n_left.min))
    assert restart.params["bw_mass"] == nominal.params["bw_mass"]

    frozen = _restarted(nominal.model_copy(update={"freeze_from_previous": ("alpha_left", "n_left")}), previous)
    assert frozen.params["alpha_left"].constant and frozen.params["alpha_left"].value == pytest.approx(1.3)
    assert frozen.params["n_left"].constant and frozen.params["n_left"].value == pytest.approx(1.01)
    assert frozen.params["sigma"] == nominal.params["sigma"]

    assert _restarted(restart, None) is restart
    unfitted = _Outcome(attempt, None, fitted=False)
    assert _restarted(restart, unfitted) is restart


@pytest.mark.root
def test_non_cpu_run_is_cross_checked_on_cpu(root, config: Config, caplog, tmp_path):
    """Fits on another backend (legacy here, CUDA on a GPU node) get their first category refitted on cpu and logged."""
    from lib.executor import InlineExecutor
    from lib.outputs import OutputDir
    from lib.peak_fits import CATEGORIES, FitGroup, FitJob, run_fits

    group = FitGroup(CATEGORIES, config, OutputDir(tmp_path / "Data_2018"), binned=True)

    masses = z_sample(np.random.default_rng(18), 20_000, 1.5)
    spec = fixed_tails_spec(resolve_fit_spec(config, "30-45_OO", binned=True, backend="legacy"))
    jobs = [FitJob(make_task(config, "30-45_OO", masses, spec, 1.3, retries=False), None, "")]
    with caplog.at_level("INFO", logger="lib.peak_fits"):
        results = run_fits(group, jobs, InlineExecutor())
    assert results["30-45_OO"].backend == "legacy"
    assert "cross-check: 30-45_OO: backend legacy agrees with cpu" in caplog.text

    caplog.clear()
    cpu_jobs = [FitJob(make_task(config, "30-45_OO", masses, spec.model_copy(update={"backend": "cpu"}), 1.3, retries=False), None, "")]
    with caplog.at_level("INFO", logger="lib.peak_fits"):
        run_fits(group, cpu_jobs, InlineExecutor())
    assert "cross-check" not in caplog.text


@pytest.mark.root
def test_restart_rungs_are_skipped_when_only_the_model_failed(root, config: Config):
    """A converged fit failing only a model gate (here an impossible peak-offset limit) skips the restart rungs."""
    from lib.fitting.runner import fit_category
    from lib.fitting.task import FitEvents, FitTask

    masses = z_sample(np.random.default_rng(19), 20_000, 1.5)
    spec = fixed_tails_spec(resolve_fit_spec(config, "30-45_OO", binned=True))
    strict = config.fit.quality.model_copy(update={"max_peak_offset_gev": 1e-6, "peak_offset_n_sigma": 0.0})
    ladder = tuple(retry_specs(config, spec, 1.3))
    result = fit_category(FitTask("30-45_OO", FitEvents(masses), spec, ladder, 1.3, strict))
    assert not result.ok and "peak offset" in result.reason
    tried = [a.label for a in result.attempts]
    restart_labels = {s.label for s in ladder if s.start_from_previous or s.freeze_from_previous}
    assert restart_labels and not restart_labels & set(tried)
    assert len(tried) == 1 + len(ladder) - len(restart_labels)


def test_binning_off_the_histogram_grid_fails_the_attempt_not_the_run(config: Config):
    """A spec whose bins are not sums of the histogram's fine bins is a failed attempt with the reason."""
    from lib.fitting.runner import fit_category
    from lib.fitting.task import FitEvents, FitTask
    from lib.histograms import MassHistogram

    fine = np.linspace(75.0, 105.0, 601)
    histogram = MassHistogram(fine, np.histogram(np.random.default_rng(4).normal(91.2, 2.0, 5000), fine)[0])
    spec = resolve_fit_spec(config, "45-52_BB", binned=True).model_copy(update={"bins": 70})
    result = fit_category(FitTask("45-52_BB", FitEvents(histogram=histogram), spec, (), 1.2, config.fit.quality))
    assert not result.ok and result.chosen.n_events == histogram.n_events
    assert "70 bins over 75-105 GeV do not fall on the 0.05 GeV grid" in result.reason


@pytest.mark.root
def test_the_fit_workers_warm_up_really_fits():
    """The forkserver's warm-up swallows every error by design, so a broken one would go unnoticed: call it directly."""
    pytest.importorskip("ROOT")
    from lib.fitting.warm import _warm_up

    _warm_up()  # raised FitError (acceptance line shape without a table) before it used the plain one


@pytest.mark.root
def test_reported_width_follows_fit_width(root, config: Config):
    """``fit.width: core`` reports the DCB's sigma and its Hesse error; ``effective`` the 68.27 % half-width of the same fit."""
    from lib.fitting.runner import fit_category

    masses = z_sample(np.random.default_rng(22), 200_000, 1.2)
    results = {}
    for width in ("core", "effective"):
        spec = resolve_fit_spec(config, "30-45_BB", binned=True).model_copy(update={"width": width})
        results[width] = fit_category(make_task(config, "30-45_BB", masses, spec, median=1.1, retries=False))
    core, effective = results["core"], results["effective"]
    assert core.ok and effective.ok, (core.reason, effective.reason)
    sigma = core.chosen.param("sigma")
    assert (core.fit_val, core.fit_err, core.width_definition) == (sigma.value, sigma.error, "core")
    # The same minimum either way: the width is computed after the fit.
    assert effective.chosen.param("sigma").value == pytest.approx(sigma.value, rel=1e-9)
    shape = [effective.chosen.param(name).value for name in ("sigma", *TAIL_PARAMS)]
    assert effective.fit_val == pytest.approx(effective_sigma(*shape, config.fit.width_window_sigmas), rel=1e-12)
    assert effective.width_definition == "effective" and 0 < effective.fit_err < 0.05 * effective.fit_val
