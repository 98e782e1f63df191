"""Radiation parameters shared by a group of fits (``fit.fsr_parameters``, issue 34).

- The pooled fit's input: histograms summed, events concatenated, the acceptance averaged with
  the fits' shares of the events, the specs fixed inside their limits.
- Real fits of categories that differ in their detector resolution and share one radiation
  (a Breit-Wigner, an exponential loss, Gaussian detectors): the pooled fit recovers the
  radiation the sample was made with, each category takes it fixed (no longer floating, two
  fewer free parameters) and reports its own detector width; ``per_fit`` fits exactly as each
  category fitted alone; the closure and Higgs groups make their own pooled fit; a refit of one
  category takes the pooled fit of all of them; on the generator's exponential FSR the pooled fit
  finds the share of radiating events and their mean loss of the per-event truth.
- ``shared_scale`` fixes the scale alone: each category floats its fraction.
- ``fit.fsr: none`` leaves the jobs and the output directory as they were.
"""

from __future__ import annotations

import numpy as np
import pytest

from lib.config import Config, load_config
from lib.fitting.fsr import TIED_TAILS
from lib.fitting.shared_fsr import pooled_acceptance, pooled_events, pooled_median, with_fixed_radiation
from lib.fitting.task import AcceptanceTable, FitEvents
from lib.histograms import MassHistogram
from lib.outputs import OutputDir
from tests.helpers_fsr import GAMMA_Z, M_Z, generator_fsr_events, quiet_root, radiating_sample

FRACTION, SCALE = 0.2, 1.8  # the radiation every sample below shares
SIGMAS = {"30-45_BB": 1.1, "30-45_OO": 1.5, "30-45_EE": 2.1}  # each category's detector resolution


def fsr_config(fsr: str, **fit_update: object) -> Config:
    payload = load_config().model_dump(mode="json")
    payload["fit"] |= {"fsr": fsr, **fit_update}
    return Config.model_validate(payload)


# ---- the pooled fit's input ---------------------------------------------------------------------


def test_pooled_events_sum_histograms_and_concatenate_events():
    edges = np.linspace(75.0, 105.0, 601)
    one, two = np.arange(600), 2 * np.arange(600)
    pooled = pooled_events([FitEvents(histogram=MassHistogram(edges, one)), FitEvents(histogram=MassHistogram(edges, two))])
    np.testing.assert_array_equal(pooled.histogram.counts, 3 * np.arange(600))
    assert pooled.histogram.sumw is None and not pooled.weighted
    weighted = pooled_events([FitEvents(np.array([90.0, 91.0]), np.array([0.5, 2.0])), FitEvents(np.array([92.0]))])
    np.testing.assert_array_equal(weighted.masses, [90.0, 91.0, 92.0])
    np.testing.assert_array_equal(weighted.weights, [0.5, 2.0, 1.0])
    with pytest.raises(Exception, match="different grids"):
        pooled_events([FitEvents(histogram=MassHistogram(edges, one)), FitEvents(histogram=MassHistogram(edges[:-1], one[:-1]))])


def test_pooled_acceptance_weights_each_window_by_its_share_of_the_events():
    """Two windows, one keeping the low side of the peak and one the high side: the pooled acceptance is their
    events-weighted mixture, each normalised over the Breit-Wigner, at most 1."""
    knots = np.linspace(75.0, 105.0, 31)
    low, high = (knots < M_Z).astype(float), (knots >= M_Z).astype(float)
    tables = [AcceptanceTable(tuple(low), (75.0, 105.0)), AcceptanceTable(tuple(high), (75.0, 105.0))]
    bw = 1.0 / ((knots**2 - M_Z**2) ** 2 + (M_Z * GAMMA_Z) ** 2)
    pooled = np.array(pooled_acceptance(tables, [300, 100], M_Z, GAMMA_Z).values)
    expected = 300 * low / np.sum(low * bw) + 100 * high / np.sum(high * bw)
    np.testing.assert_allclose(pooled, expected / expected.max())
    assert pooled_median([1.0, 2.0], [100, 300]) == 2.0


def test_fixed_radiation_stays_inside_its_limits():
    from lib.config import resolve_fit_spec

    spec = resolve_fit_spec(fsr_config("exponential"), "30-45_BB", binned=True)
    fixed = with_fixed_radiation(spec, {"fsr_fraction": 0.137, "fsr_scale": 12.0})
    assert fixed.params["fsr_fraction"].constant and fixed.params["fsr_fraction"].value == 0.137
    assert fixed.params["fsr_scale"].value == spec.params["fsr_scale"].max  # the fit's limit, not beyond
    assert fixed.params["sigma"] == spec.params["sigma"] and not spec.params["fsr_fraction"].constant


# ---- fits --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def root():
    return quiet_root()


@pytest.fixture(scope="module")
def samples() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(341)
    return {name: radiating_sample(rng, 60_000, "z", sigma, FRACTION, SCALE) for name, sigma in SIGMAS.items()}


def _jobs(group, samples: dict[str, np.ndarray]) -> list:
    return [group.job(group.spec_for(name), FitEvents(masses), SIGMAS[name], None) for name, masses in samples.items()]


def _group(kind, config: Config, directory):
    from lib.peak_fits import FitGroup

    return FitGroup(kind, config, OutputDir(directory / "Data_2018"), binned=True)


@pytest.fixture(scope="module")
def category_fits(root, samples, tmp_path_factory):
    """The categories fitted with shared radiation, and with radiation per fit."""
    from lib.executor import InlineExecutor
    from lib.peak_fits import CATEGORIES, run_fits

    fits = {}
    for mode in ("shared", "shared_scale", "per_fit"):
        group = _group(CATEGORIES, fsr_config("exponential", line_shape="breit_wigner", fsr_parameters=mode), tmp_path_factory.mktemp(mode))
        fits[mode] = (group, run_fits(group, _jobs(group, samples), InlineExecutor()))
    return fits


@pytest.mark.root
@pytest.mark.slow
def test_pooled_fit_recovers_the_radiation_of_the_sample(category_fits):
    group, _ = category_fits["shared"]
    pooled = group.out.read_shared_fsr()["categories"]
    assert pooled["shared"] and pooled["n_events"] > 0.95 * 3 * 60_000
    # A mixture of three resolutions under one symmetric DCB: the one-sided radiation is still told apart, within 3 errors.
    for name, truth in (("fsr_fraction", FRACTION), ("fsr_scale", SCALE)):
        param = pooled["params"][name]
        assert not param["constant"] and abs(param["val"] - truth) < 3.0 * param["err"], (name, param)
    assert pooled["chi2_ndf"] < 1.5


@pytest.mark.root
@pytest.mark.slow
def test_categories_take_the_pooled_radiation_fixed(category_fits):
    group, shared = category_fits["shared"]
    _, per_fit = category_fits["per_fit"]
    pooled = group.out.read_shared_fsr()["categories"]["params"]
    for name, sigma in SIGMAS.items():
        fit = shared[name]
        assert fit.ok, (name, fit.reason)
        for param in (fit.chosen.param("fsr_fraction"), fit.chosen.param("fsr_scale")):
            assert param.constant and param.error == 0.0 and param.value == pooled[param.name]["val"], (name, param)
        row = fit.summary_row().row()
        assert (row["fsr_fraction"], row["fsr_fraction_err"]) == (pooled["fsr_fraction"]["val"], 0.0)
        # The NDF counts the floating parameters alone (the tied left tails once): the radiation is not among them.
        floating = {p.name for p in fit.chosen.params if not p.constant} - set(TIED_TAILS)
        assert fit.chosen.n_float == len(floating) and not floating & {"fsr_fraction", "fsr_scale"}, (name, floating)
        own = per_fit[name].chosen
        assert own.n_float == len({p.name for p in own.params if not p.constant} - set(TIED_TAILS))
        # The category's own detector resolution, within 3 of its errors.
        assert abs(fit.fit_val - sigma) < 3.0 * fit.fit_err, (name, fit.fit_val, fit.fit_err, sigma)


@pytest.mark.root
@pytest.mark.slow
def test_per_fit_is_each_category_fitted_alone(category_fits, samples):
    from lib.fitting.runner import fit_category

    group, per_fit = category_fits["per_fit"]
    assert group.out.read_shared_fsr() == {}
    name = "30-45_OO"
    (job,) = [j for j in _jobs(group, samples) if j.task.name == name]
    alone = fit_category(job.task)
    strip = lambda record: {k: v for k, v in record.items() if k not in ("seconds", "attempts")}  # noqa: E731
    assert strip(per_fit[name].to_dict()) == strip(alone.to_dict())
    assert not per_fit[name].chosen.param("fsr_fraction").constant


@pytest.mark.root
@pytest.mark.slow
def test_a_refit_of_one_category_takes_the_pooled_fit_of_all(category_fits, samples):
    from lib.executor import InlineExecutor
    from lib.peak_fits import run_fits

    group, shared = category_fits["shared"]
    jobs = _jobs(group, samples)
    before = group.out.read_shared_fsr()["categories"]
    one = [j for j in jobs if j.task.name == "30-45_EE"]
    refitted = run_fits(group, one, InlineExecutor(), refit=frozenset(["30-45_EE"]), pooled=jobs)
    assert group.out.read_shared_fsr()["categories"]["params"] == before["params"]
    assert refitted["30-45_EE"].chosen.param("fsr_scale").value == shared["30-45_EE"].chosen.param("fsr_scale").value


@pytest.mark.root
@pytest.mark.slow
def test_closure_and_higgs_groups_make_their_own_pooled_fit(root, samples, tmp_path):
    from lib.executor import InlineExecutor
    from lib.peak_fits import CLOSURE, HIGGS, run_fits

    config = fsr_config("exponential", line_shape="breit_wigner", fsr_parameters="shared")
    rng = np.random.default_rng(342)
    closure = _group(CLOSURE, config, tmp_path)
    bins = {"closure_1-1.5": samples["30-45_OO"], "closure_2-2.5": samples["30-45_EE"]}
    closure_jobs = [closure.job(closure.spec_for(name), FitEvents(masses), 1.5, None) for name, masses in bins.items()]
    higgs = _group(HIGGS, config, tmp_path)
    higgs_bins = {"higgs_1.4-1.9": 1.6, "higgs_1.9-2.3": 2.1}
    higgs_events = {name: FitEvents(radiating_sample(rng, 30_000, "higgs", s, FRACTION, SCALE)) for name, s in higgs_bins.items()}
    higgs_jobs = [higgs.job(higgs.spec_for(name), higgs_events[name], s, None) for name, s in higgs_bins.items()]
    results = run_fits(closure, closure_jobs, InlineExecutor()) | run_fits(higgs, higgs_jobs, InlineExecutor())
    pooled = OutputDir(tmp_path / "Data_2018").read_shared_fsr()
    assert set(pooled) == {"closure", "higgs"} and pooled["closure"]["n_events"] != pooled["higgs"]["n_events"]
    for kind, names in (("closure", bins), ("higgs", higgs_bins)):
        fraction = pooled[kind]["params"]["fsr_fraction"]
        assert pooled[kind]["shared"] and abs(fraction["val"] - FRACTION) < 3.0 * fraction["err"], (kind, fraction)
        taken = [results[n].chosen.param("fsr_fraction") for n in names]
        assert all(param.value == fraction["val"] and param.constant for param in taken)


def test_without_radiation_nothing_is_shared(tmp_path):
    """fit.fsr: none: the jobs are returned as they came and no file is written (the pooled fit is never built)."""
    from lib.executor import InlineExecutor
    from lib.peak_fits import CATEGORIES, with_shared_radiation

    group = _group(CATEGORIES, fsr_config("none"), tmp_path)
    jobs = _jobs(group, {"30-45_BB": np.array([91.0, 92.0])})
    assert with_shared_radiation(group, jobs, InlineExecutor(), jobs) == jobs
    assert not group.out.path.exists()


def _pooled_result(status: int, fraction: tuple[float, bool], scale: tuple[float, bool]):
    """A pooled fit's result by hand: its Minuit status and (value, came out fixed) of each radiation parameter."""
    import dataclasses

    from lib.fitting.result import ParamResult
    from tests.test_fitting import synthetic_result

    base = synthetic_result()
    radiation = (
        ParamResult("fsr_fraction", fraction[0], 0.0 if fraction[1] else 0.01, 0.0, 0.5, fraction[1], fraction[0] < 1e-3),
        ParamResult("fsr_scale", scale[0], 0.0 if scale[1] else 0.05, 0.5, 10.0, scale[1], False),
    )
    chosen = dataclasses.replace(base.chosen, status=status, params=(*base.chosen.params, *radiation))
    return dataclasses.replace(base, chosen=chosen, attempts=(chosen,))


@pytest.mark.parametrize(
    "mode,status,fraction,scale,shared,why",
    [
        ("shared_scale", 0, (0.15, False), (1.8, False), ("fsr_scale",), None),
        ("shared_scale", -1, (0.15, False), (1.8, False), (), ""),  # the failed fit's own reason
        ("shared_scale", 0, (0.15, False), (10.0, True), (), "fsr_scale came out fixed (the data did not determine it)"),
        ("shared", 0, (0.15, False), (10.0, True), (), "fsr_scale came out fixed"),
    ],
)
def test_the_pooled_fit_is_shared_only_where_it_measured_the_parameters(tmp_path, monkeypatch, mode, status, fraction, scale, shared, why):
    """A failed pooled fit, or one whose shared parameter came out fixed (never measured), leaves each fit its own radiation:
    the jobs come back as they were, the record and a warning say why."""
    import lib.peak_fits as peak_fits
    from lib.executor import InlineExecutor

    result = _pooled_result(status, fraction, scale)
    monkeypatch.setattr(peak_fits, "fit_job", lambda job: result)
    group = _group(peak_fits.CATEGORIES, fsr_config("exponential", line_shape="breit_wigner", fsr_parameters=mode), tmp_path)
    jobs = _jobs(group, {"30-45_BB": np.array([90.0, 91.0, 92.0])})
    taken = peak_fits.with_shared_radiation(group, jobs, InlineExecutor(), jobs)
    record = group.out.read_shared_fsr()["categories"]
    assert record["shared"] == bool(shared) and tuple(record["shared_parameters"]) == shared
    assert record["radiation_found"] is (True if shared else None)  # None: a pooled fit whose values were not shared did not say
    assert taken[0].shared == shared
    assert all(taken[0].task.nominal.params[name].constant for name in shared)
    if why is None:
        assert record["not_shared_because"] is None
    else:
        assert record["not_shared_because"] and why in record["not_shared_because"] and taken == jobs


@pytest.mark.root
@pytest.mark.slow
def test_shared_scale_fixes_the_scale_and_floats_the_fraction(category_fits):
    group, fits = category_fits["shared_scale"]
    pooled = group.out.read_shared_fsr()["categories"]
    assert pooled["shared_parameters"] == ["fsr_scale"]
    for name, sigma in SIGMAS.items():
        fit = fits[name]
        assert fit.ok, (name, fit.reason)
        scale = fit.chosen.param("fsr_scale")
        assert scale.constant and scale.value == pooled["params"]["fsr_scale"]["val"]
        fraction = fit.chosen.param("fsr_fraction")
        assert not fraction.constant and abs(fraction.value - FRACTION) < 3.0 * fraction.error, (name, fraction)
        assert abs(fit.fit_val - sigma) < 3.0 * fit.fit_err, (name, fit.fit_val, fit.fit_err, sigma)


@pytest.mark.root
@pytest.mark.slow
def test_pooled_fit_recovers_the_generators_radiation(root, tmp_path):
    """On the generator's events with exponential FSR, split by the |eta| regions of their muons into fits of different
    resolutions, the pooled fit finds the share of the window's events that lost mass to FSR and their mean loss
    (the generator's per-event truth), within 3 of its errors. Gaussian residuals and no pT cuts: a flat acceptance."""
    from lib.executor import InlineExecutor
    from lib.peak_fits import CATEGORIES, run_fits

    events = generator_fsr_events("exponential", 0.1, 200_000, 343)
    mass = events["dimuon_mass"].astype(np.float64)
    inside = (mass > 75.0) & (mass < 105.0)
    signal = inside & ~events["truth_is_background"]
    loss = (events["truth_gen_mass"] - events["truth_mass"]).astype(np.float64)[signal]
    radiating = loss > 1e-3  # below: the float32 masses' rounding
    truth = {"fsr_fraction": radiating.mean(), "fsr_scale": loss[radiating].mean()}
    endcap = (np.abs(events["mu1_eta"]) > 1.2).astype(int) + (np.abs(events["mu2_eta"]) > 1.2)
    group = _group(CATEGORIES, fsr_config("exponential", line_shape="breit_wigner", fsr_parameters="shared"), tmp_path)
    jobs = [group.job(group.spec_for(name), FitEvents(mass[inside & (endcap == n)]), 1.5, None) for n, name in enumerate(SIGMAS)]
    with_shared = run_fits(group, jobs, InlineExecutor())
    pooled = group.out.read_shared_fsr()["categories"]
    assert pooled["shared"] and all(r.ok for r in with_shared.values()), [r.reason for r in with_shared.values()]
    for name, value in truth.items():
        param = pooled["params"][name]
        assert abs(param["val"] - value) < 3.0 * param["err"], (name, param["val"], param["err"], value)


@pytest.mark.parametrize("mode", ["shared", "shared_scale"])
def test_a_pooled_fit_without_radiation_leaves_its_fits_none(tmp_path, monkeypatch, mode):
    """The pooled fit converged with the radiating share at 0: all the group's events show no radiation, so its fits
    take the line shape of fit.fsr: none (a DCB with its own position and two tails) in every attempt."""
    import lib.peak_fits as peak_fits
    from lib.executor import InlineExecutor

    monkeypatch.setattr(peak_fits, "fit_job", lambda job: _pooled_result(0, (0.0, True), (1.5, True)))
    group = _group(peak_fits.CATEGORIES, fsr_config("exponential", line_shape="breit_wigner", fsr_parameters=mode), tmp_path)
    jobs = _jobs(group, {"30-45_BB": np.array([90.0, 91.0, 92.0])})
    (taken,) = peak_fits.with_shared_radiation(group, jobs, InlineExecutor(), jobs)
    record = group.out.read_shared_fsr()["categories"]
    assert not record["shared"] and not record["radiation_found"] and record["not_shared_because"] == "it found no radiation"
    assert taken.shared == () and all(spec.fsr == "none" for spec in (taken.task.nominal, *taken.task.retries))
    assert taken.task.nominal == jobs[0].task.nominal.model_copy(update={"fsr": "none"})



@pytest.mark.parametrize(
    "case", ["failed", "above its lower limit", "fixed by the configuration", "without limits"],
)
def test_only_a_measured_zero_is_no_radiation(tmp_path, monkeypatch, case):
    """A pooled fit that failed, whose fraction was fixed above its limit or by fit.params (never measured), or
    has no limits to be at: no finding of no radiation, and the jobs keep their radiation."""
    import dataclasses

    import lib.peak_fits as peak_fits
    from lib.executor import InlineExecutor

    result = _pooled_result(-1 if case == "failed" else 0, (0.01 if case == "above its lower limit" else 0.0, True), (1.5, True))
    if case == "without limits":
        params = tuple(dataclasses.replace(p, min=None, max=None) if p.name == "fsr_fraction" else p for p in result.chosen.params)
        chosen = dataclasses.replace(result.chosen, params=params)
        result = dataclasses.replace(result, chosen=chosen, attempts=(chosen,))
    monkeypatch.setattr(peak_fits, "fit_job", lambda job: result)
    config = fsr_config("exponential", line_shape="breit_wigner")
    if case == "fixed by the configuration":
        params = config.fit.params | {"fsr_fraction": config.fit.params["fsr_fraction"].model_copy(update={"value": 0.0, "constant": True})}
        config = config.model_copy(update={"fit": config.fit.model_copy(update={"params": params})})
    group = _group(peak_fits.CATEGORIES, config, tmp_path)
    jobs = _jobs(group, {"30-45_BB": np.array([90.0, 91.0, 92.0])})
    taken = peak_fits.with_shared_radiation(group, jobs, InlineExecutor(), jobs)
    assert all(job.task.nominal.fsr == "exponential" for job in taken)
    assert group.out.read_shared_fsr()["categories"]["radiation_found"] is not False


@pytest.mark.root
@pytest.mark.slow
def test_without_radiation_in_the_sample_the_fits_are_those_of_fsr_none(root, tmp_path):
    """Categories without any radiation: the pooled fit finds none, and every category's fit is the one fit.fsr: none makes."""
    from lib.executor import InlineExecutor
    from lib.peak_fits import CATEGORIES, run_fits

    rng = np.random.default_rng(345)
    samples = {name: radiating_sample(rng, 40_000, "z", sigma, 0.0, SCALE) for name, sigma in SIGMAS.items()}
    fits = {}
    for fsr in ("exponential", "none"):
        group = _group(CATEGORIES, fsr_config(fsr, line_shape="breit_wigner", fsr_parameters="shared_scale"), tmp_path / fsr)
        fits[fsr] = run_fits(group, _jobs(group, samples), InlineExecutor())
    assert not OutputDir(tmp_path / "exponential" / "Data_2018").read_shared_fsr()["categories"]["radiation_found"]
    for name in SIGMAS:
        radiating, plain = fits["exponential"][name], fits["none"][name]
        assert radiating.ok and (radiating.fit_val, radiating.fit_err) == (plain.fit_val, plain.fit_err), name
        assert "fsr_fraction" not in {p.name for p in radiating.chosen.params}
