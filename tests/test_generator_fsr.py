"""The generator's opt-in physics: per-muon resolution scales, FSR shapes and recovery, the generator-level mass.

Every test compares a statistic of generated events with the value the settings imply, within a
tolerance from the sample size; the default settings must keep giving the arrays they always gave.
"""

from __future__ import annotations

import json
import subprocess
import sys
from math import sqrt
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from lib.generator import EventModel, SampleRequest, WriteOptions, generate_events, generate_sample, load_settings
from lib.generator.kinematics import photon_fractions, qed_beta, qed_density, recovered
from lib.generator.kmaps import muon_k, parse_muon_k_map
from lib.generator.settings import FsrSettings, GeneratorSettings, MuonKMapSettings, settings_record

REPO = Path(__file__).resolve().parent.parent
MZ = 91.1880
REGION_K = (1.08, 1.16, 1.30)
# The keys of the settings record (truth.json "settings") of a sample made without the opt-in features.
RECORD_KEYS = {
    "muon_mass_gev", "processes", "samples", "eras", "fsr", "resolution", "smearing", "acceptance", "k_maps", "weights",
    "extra_columns", "mass_model",
}  # fmt: skip


def _update(settings: GeneratorSettings, **sections: dict | object) -> GeneratorSettings:
    """Settings with some sections changed (a dict updates that section's keys), validated again."""
    raw = settings.model_dump()
    for key, value in sections.items():
        raw[key] = raw[key] | value if isinstance(value, dict) else value
    return GeneratorSettings(**raw)


def _muon_map(settings: GeneratorSettings, scheme, text: str = "1.08,1.16,1.30") -> dict:
    return {"data": parse_muon_k_map(text, scheme).model_dump(), "mc": None}


# A sample whose acceptance does not depend on FSR: no pT cuts and a mass window no event leaves.
def _loose(settings: GeneratorSettings, **fsr) -> GeneratorSettings:
    samples = settings.model_dump()["samples"]
    samples["data"] |= {"mass_window_gev": (1.0, 1000.0), "background_fraction": 0.0}
    return _update(settings, fsr=fsr, acceptance={"lead_pt_min_gev": 0.0, "sublead_pt_min_gev": 0.0}, samples=samples)


@pytest.fixture(scope="module")
def settings():
    return load_settings()


# --- the default sample is what it was ---------------------------------------------------------


def test_opt_in_keys_at_their_defaults_change_nothing(settings, scheme, tmp_path):
    """The shipped YAML spells out the opt-in keys at their defaults: without them, the same events and settings record."""
    opt_in = ("  shape:", "  min_fraction:", "  recovery:", "muon_k_maps:", "gen_mass_column:", "truth_columns:")
    text = (REPO / "configs" / "generator.yaml").read_text()
    without = "".join(line for line in text.splitlines(keepends=True) if not line.startswith(opt_in))
    assert len(text.splitlines()) - len(without.splitlines()) == len(opt_in)
    path = tmp_path / "without.yaml"
    path.write_text(without)
    bare = load_settings(path)
    assert settings.fsr.shape == "exponential" and bare == settings
    assert set(settings_record(settings)) == RECORD_KEYS
    assert set(settings_record(settings)["fsr"]) == {"probability", "mean_fraction", "max_fraction"}
    for kind in ("data", "mc"):
        a = generate_events(kind, 20_000, 4, EventModel(settings, scheme), with_truth=True)
        b = generate_events(kind, 20_000, 4, EventModel(bare, scheme), with_truth=True)
        assert a.keys() == b.keys()
        for name in a:
            np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def test_uniform_per_muon_k_gives_the_arrays_of_a_uniform_category_k(settings, scheme):
    """The per-muon path draws the same random numbers: with one k for every muon it is the category path exactly."""
    per_muon = _update(settings, muon_k_maps=_muon_map(settings, scheme, "1.1"))
    a = generate_events("data", 30_000, 5, EventModel(settings, scheme, k_map=1.1), with_truth=True)
    b = generate_events("data", 30_000, 5, EventModel(per_muon, scheme), with_truth=True)
    for name in a:
        if name != "truth_k":
            np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    np.testing.assert_allclose(b["truth_k"], 1.1, rtol=1e-12)


def test_extra_columns_do_not_change_the_others(settings, scheme):
    with_columns = _update(settings, gen_mass_column=True, truth_columns=True)
    for kind in ("data", "mc", "signal"):
        a = generate_events(kind, 10_000, 6, EventModel(settings, scheme), with_truth=True)
        b = generate_events(kind, 10_000, 6, EventModel(with_columns, scheme), with_truth=True)
        assert set(b) - set(a) == (set() if kind == "data" else {"dimuon_mass_gen"})
        for name in a:
            np.testing.assert_array_equal(a[name], b[name], err_msg=name)
        if kind != "data":
            np.testing.assert_array_equal(b["dimuon_mass_gen"], a["truth_gen_mass"].astype(np.float32))


# --- per-muon resolution scales --------------------------------------------------------------


def test_muon_k_lookup_by_region_and_pt():
    spec = MuonKMapSettings(abseta_edges=[0.0, 0.9, 2.4], pt_edges_gev=[40.0, 60.0], k=[[1.0, 1.1, 1.2], [1.3, 1.4, 1.5]])
    abseta = np.array([0.0, 0.89, 0.9, 2.39, 2.4, 1.0])
    pt = np.array([10.0, 40.0, 59.9, 60.0, 500.0, 39.9])
    assert muon_k(spec, abseta, pt).tolist() == [1.0, 1.1, 1.4, 1.5, 1.5, 1.3]


@pytest.fixture(scope="module")
def per_muon_events(settings, scheme):
    """Gaussian residuals and k per |eta| region and pT bin, so each muon's pull has width k exactly."""
    k = [[1.05, 1.10], [1.15, 1.20], [1.25, 1.35]]
    spec = {"abseta_edges": list(scheme.abseta_edges), "pt_edges_gev": [42.0], "k": k}
    gaussian = _update(settings, muon_k_maps={"data": spec, "mc": None}, smearing={"core_fraction": 1.0})
    return generate_events("data", 250_000, 21, EventModel(gaussian, scheme), with_truth=True), k


def _clean(ev: dict[str, np.ndarray]) -> np.ndarray:
    """Events no cut can bias: both true pT far above the thresholds, the true mass far inside the window."""
    return (ev["truth_mu1_pt"] > 32) & (ev["truth_mu2_pt"] > 32) & (np.abs(ev["truth_mass"] - MZ) < 10)


def test_each_muon_is_smeared_with_the_k_of_its_region_and_pt(per_muon_events, scheme):
    """Pull (pT_reco/pT_true - 1) / (ptErr/pT_reco) of both muons: its width is k of the muon's |eta| region and pT bin."""
    ev, k = per_muon_events
    clean = _clean(ev)
    muons = ("mu1", "mu2")
    pull = np.concatenate([((ev[f"{m}_pt"] / ev[f"truth_{m}_pt"] - 1) * ev[f"{m}_pt"] / ev[f"{m}_ptErr"])[clean] for m in muons])
    abseta = np.concatenate([np.abs(ev[f"{m}_eta"])[clean] for m in muons])
    true_pt = np.concatenate([ev[f"truth_{m}_pt"][clean] for m in muons])
    edges = scheme.abseta_edges
    for i_region in range(len(edges) - 1):
        for i_pt, pt_bin in enumerate((true_pt < 42.0, true_pt >= 42.0)):
            sel = (abseta >= edges[i_region]) & (abseta < edges[i_region + 1]) & pt_bin
            n, expected = int(sel.sum()), k[i_region][i_pt]
            assert n > 5000
            # The standard deviation of n Gaussian draws has a relative error 1/sqrt(2n): 4 sigma.
            assert np.std(pull[sel]) == pytest.approx(expected, rel=4 / sqrt(2 * n)), (i_region, i_pt)


def test_true_mass_resolution_is_the_spread_of_the_mass(per_muon_events):
    """(m_reco - m_after_fsr) / truth_sigma_m has unit width, also in each quartile of truth_sigma_m."""
    ev, _ = per_muon_events
    clean = _clean(ev)
    pull = ((ev["dimuon_mass"] - ev["truth_mass"]) / ev["truth_sigma_m"])[clean]
    sigma = ev["truth_sigma_m"][clean]
    assert np.std(pull) == pytest.approx(1.0, abs=4 / sqrt(2 * len(pull)))
    edges = np.quantile(sigma, [0.0, 0.25, 0.5, 0.75, 1.0])
    widths = []
    for lo, hi in zip(edges, edges[1:]):
        part = pull[(sigma >= lo) & (sigma <= hi)]
        assert np.std(part) == pytest.approx(1.0, abs=4 / sqrt(2 * len(part)))
        widths.append(np.std(part * sigma[(sigma >= lo) & (sigma <= hi)]))
    assert widths == sorted(widths) and widths[-1] > 1.5 * widths[0]  # the per-event truth follows the events


def test_truth_k_is_the_events_resolution_over_the_prediction(per_muon_events):
    ev, k = per_muon_events
    r1, r2 = ev["mu1_ptErr"] / ev["mu1_pt"], ev["mu2_ptErr"] / ev["mu2_pt"]
    expected = 0.5 * ev["truth_mass"] * np.hypot(ev["truth_mu1_k"] * r1, ev["truth_mu2_k"] * r2)
    np.testing.assert_allclose(ev["truth_sigma_m"], expected, rtol=1e-6)
    np.testing.assert_allclose(ev["truth_k"], ev["truth_sigma_m"] / (0.5 * ev["truth_mass"] * np.hypot(r1, r2)), rtol=1e-6)
    assert set(np.unique(ev["truth_mu1_k"])) == {v for row in k for v in row}


def test_parse_muon_k_map_errors(scheme, tmp_path):
    from lib.errors import ConfigError, InputError

    assert parse_muon_k_map("1.2", scheme).k == [[1.2]]
    with pytest.raises(InputError, match="one value per"):
        parse_muon_k_map("1.1,1.2", scheme)
    with pytest.raises(ConfigError, match="positive"):
        parse_muon_k_map("1.1,1.2,0", scheme)
    with pytest.raises(InputError, match="cannot read"):
        parse_muon_k_map(str(tmp_path / "missing.json"), scheme)
    path = tmp_path / "map.json"
    path.write_text(json.dumps({"abseta_edges": [0, 1.2, 2.4], "pt_edges_gev": [50], "k": [[1.1, 1.2]]}))
    with pytest.raises(ConfigError, match="2 rows"):
        parse_muon_k_map(str(path), scheme)


# --- FSR shapes --------------------------------------------------------------------------------


def _tail_exponential(t: float, fsr: FsrSettings) -> float:
    """P(x > t) of a radiating muon, exponential shape."""
    mu, top = fsr.mean_fraction, fsr.max_fraction
    return max(np.exp(-t / mu) - np.exp(-top / mu), 0.0) / -np.expm1(-top / mu)


def _tail_qed(t: np.ndarray | float, fsr: FsrSettings, beta: float) -> np.ndarray:
    """P(x > t) of a radiating muon, qed shape: the radiator integrated on a fine logarithmic grid."""
    x = np.geomspace(fsr.min_fraction, fsr.max_fraction, 20_001)
    f = qed_density(x, beta) * x  # density in ln x
    cumulative = np.concatenate([[0.0], np.cumsum(0.5 * (f[1:] + f[:-1]) * np.diff(np.log(x)))])
    t = np.clip(t, fsr.min_fraction, fsr.max_fraction)
    return 1.0 - np.interp(t, x, cumulative) / cumulative[-1]


FRACTIONS = (0.002, 0.01, 0.03, 0.1, 0.3)


@pytest.mark.parametrize("shape", ["exponential", "qed"])
def test_photon_fractions_follow_the_shape(shape, settings):
    fsr = settings.fsr.model_copy(update={"shape": shape})
    n = 400_000
    beta = float(qed_beta(np.array(MZ), settings.muon_mass_gev))
    x = photon_fractions(n, fsr, np.random.default_rng(9), np.full(n, beta))
    p = fsr.probability
    assert np.mean(x > 0) == pytest.approx(p, abs=4 * sqrt(p * (1 - p) / n))
    assert x.max() <= fsr.max_fraction and (shape == "exponential" or x[x > 0].min() >= fsr.min_fraction)
    for t in FRACTIONS:
        expected = p * (_tail_exponential(t, fsr) if shape == "exponential" else float(_tail_qed(t, fsr, beta)))
        assert np.mean(x > t) == pytest.approx(expected, abs=4 * sqrt(expected * (1 - expected) / n) + 1e-5), t


def test_qed_beta_is_the_leading_log_exponent():
    # Half of the pair's beta = (2 alpha / pi)(ln(m^2/m_mu^2) - 1) at the Z: about 0.058.
    assert float(qed_beta(np.array(MZ), 0.1056583755)) == pytest.approx(0.0581 / 2, rel=0.01)


def test_recovery_takes_back_harder_photons_with_its_efficiency(settings):
    recovery = settings.fsr.recovery
    n = 200_000
    photon_pt = np.random.default_rng(3).uniform(0.0, 10.0, n)
    back = recovered(photon_pt, recovery, np.random.default_rng(4))
    hard = photon_pt > recovery.min_photon_pt_gev
    assert not back[~hard].any()
    e = recovery.efficiency
    assert np.mean(back[hard]) == pytest.approx(e, abs=4 * sqrt(e * (1 - e) / hard.sum()))


def _expected_muon_tail(t: float, ev: dict[str, np.ndarray], fsr: FsrSettings, muon_mass: float) -> float:
    """Mean over the events' muons of P(unrecovered fraction > t), from the settings alone."""
    if fsr.shape == "exponential":
        return fsr.probability * _tail_exponential(t, fsr)
    betas = qed_beta(ev["truth_gen_mass"], muon_mass)
    grid = np.linspace(betas.min(), betas.max(), 9)
    tails = []
    for mu in ("mu1", "mu2"):
        gen_pt = ev[f"truth_{mu}_pt"] / (1.0 - ev[f"truth_{mu}_fsr_fraction"])
        tail = np.interp(betas, grid, [float(_tail_qed(t, fsr, b)) for b in grid])
        if fsr.shape == "recovered":
            # Photons above the pT threshold (x > threshold / pT) are added back with the efficiency.
            threshold = fsr.recovery.min_photon_pt_gev / gen_pt
            hard = np.array([_tail_qed(np.maximum(t, threshold), fsr, b) for b in grid])
            hard_tail = np.array([np.interp(b, grid, hard[:, i]) for i, b in enumerate(betas)])
            tail = tail - fsr.recovery.efficiency * np.where(threshold < fsr.max_fraction, hard_tail, 0.0)
        tails.append(tail)
    return fsr.probability * float(np.mean(np.concatenate(tails)))


@pytest.fixture(scope="module")
def fsr_samples(settings, scheme):
    """Events of each shape whose selection does not depend on FSR."""
    return {
        shape: generate_events("data", 60_000, 12, EventModel(_loose(settings, shape=shape), scheme), with_truth=True)
        for shape in ("exponential", "qed", "recovered")
    }


@pytest.mark.parametrize("shape", ["exponential", "qed", "recovered"])
def test_fsr_in_the_events_follows_the_settings(shape, fsr_samples, settings):
    ev = fsr_samples[shape]
    fsr = settings.fsr.model_copy(update={"shape": shape})
    x1, x2 = ev["truth_mu1_fsr_fraction"], ev["truth_mu2_fsr_fraction"]
    # The true mass is the generated one with each muon's momentum scaled: m^2 = m_gen^2 (1 - x1)(1 - x2).
    np.testing.assert_allclose((ev["truth_mass"] / ev["truth_gen_mass"]) ** 2, (1 - x1) * (1 - x2), rtol=1e-4)
    n = 2 * len(x1)
    for t in (0.01, 0.05, 0.2):
        expected = _expected_muon_tail(t, ev, fsr, settings.muon_mass_gev)
        observed = np.mean(np.concatenate([x1, x2]) > t)
        assert observed == pytest.approx(expected, abs=4 * sqrt(expected * (1 - expected) / n)), t


def test_recovery_leaves_less_tail(fsr_samples):
    """The low-mass tail (true mass 2 % or more below the generated one) shrinks with recovery."""
    tails = {shape: np.mean(ev["truth_mass"] < 0.98 * ev["truth_gen_mass"]) for shape, ev in fsr_samples.items()}
    n = len(fsr_samples["qed"]["truth_mass"])
    error = sqrt(tails["qed"] * (1 - tails["qed"]) / n)
    assert tails["recovered"] < tails["qed"] - 5 * error
    assert tails["exponential"] > 0.02


def test_no_fsr_leaves_the_generated_mass(settings, scheme):
    ev = generate_events("data", 5_000, 2, EventModel(_loose(settings, probability=0.0, shape="qed"), scheme), with_truth=True)
    assert not ev["truth_mu1_fsr_fraction"].any() and not ev["truth_mu2_fsr_fraction"].any()
    np.testing.assert_allclose(ev["truth_mass"], ev["truth_gen_mass"], rtol=1e-5)


def test_bad_fsr_settings_are_rejected(settings):
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="min_fraction"):
        FsrSettings(**(settings.fsr.model_dump() | {"shape": "qed", "min_fraction": 0.7}))
    with pytest.raises(ValidationError, match="abseta_max"):
        _update(settings, muon_k_maps={"data": {"abseta_edges": [0.0, 2.0], "k": [[1.1]]}, "mc": None})


# --- written samples and the command line ------------------------------------------------------


def test_default_files_and_truth_keep_their_layout(tmp_path, settings):
    request = SampleRequest(2018, seed=2, n_data=2000, n_mc=1000, n_signal=0)
    year_dir = generate_sample(tmp_path, request, WriteOptions(files_per_dataset=1, workers=1))
    mc = pq.read_schema(next(year_dir.glob("compacted/dy*/*/*.parquet")))
    assert "dimuon_mass_gen" not in mc.names and not any(name.startswith("truth_") for name in mc.names)
    truth = json.loads((year_dir / "truth.json").read_text())
    assert set(truth["settings"]) == RECORD_KEYS and "k_muon_data" not in truth


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lib.generate", *args], cwd=REPO, capture_output=True, text=True, timeout=120)


def test_cli_per_muon_k_fsr_shape_and_gen_mass(tmp_path, scheme):
    sizes = ["--n-data", "40000", "--n-mc", "3000", "--n-signal", "500", "--files-per-dataset", "1", "--workers", "1"]
    result = _cli("--output", str(tmp_path), *sizes, "--muon-k-data", "1.08,1.16,1.30", "--fsr-shape", "recovered", "--gen-mass-column")
    assert result.returncode == 0, result.stderr
    year_dir = tmp_path / "2018"
    truth = json.loads((year_dir / "truth.json").read_text())
    assert truth["k_source"]["data"] == "per-muon map" and truth["k_muon_data"]["k"] == [[k] for k in REGION_K]
    assert truth["settings"]["fsr"]["shape"] == "recovered" and truth["settings"]["gen_mass_column"] is True
    # A category whose muons share one region has that region's k (up to the reco/true mass ratio of its events).
    for name, k in (("30-45_BB", REGION_K[0]), ("45-52_OO", REGION_K[1]), ("45-52_EE", REGION_K[2])):
        assert truth["k_data"][name] == pytest.approx(k, rel=0.01), name
    assert truth["k_data"]["45-52_BE"] < truth["k_data"]["45-52_EE"]
    data = pq.read_table(next(year_dir.glob("compacted/data_D/*/*.parquet")))
    mc = pq.read_table(next(year_dir.glob("compacted/dy*/*/*.parquet")))
    assert "truth_sigma_m" in data.column_names and "dimuon_mass_gen" not in data.column_names
    assert "dimuon_mass_gen" in mc.column_names and "truth_sigma_m" in mc.column_names  # truth columns in every file
    gen, reco = mc.column("dimuon_mass_gen").to_numpy(), mc.column("dimuon_mass").to_numpy()
    assert np.all(gen > 50.0) and np.median(gen - reco) > 0  # FSR pulls the reco mass below the generated one


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--muon-k-data", "1.1,1.2"], "one value per"),
        (["--muon-k-data", "1.1", "--k-data", "1.2"], "each muon its own k"),
        (["--fsr-probability", "1.5"], "probability"),
        (["--fsr-shape", "cone"], "invalid choice"),
    ],
)
def test_cli_bad_generator_option_is_one_line(args, message, tmp_path):
    result = _cli("--output", str(tmp_path), "--n-data", "10", "--n-mc", "0", "--n-signal", "0", *args)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in result.stderr
