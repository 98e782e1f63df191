"""The sample generator: physics sanity, exact k truth, determinism, layout, truth file and CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from math import erf, sqrt
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from lib.errors import ConfigError, InputError
from lib.generator import (
    GENERATOR_VERSION,
    EventModel,
    SampleRequest,
    WriteOptions,
    builtin_k_map,
    generate_events,
    generate_sample,
    load_k_override,
    load_settings,
    resolve_k_map,
)
from lib.generator.kinematics import sample_cos_theta
from lib.generator.settings import settings_record
from lib.resolution import sigma_pred

REPO = Path(__file__).resolve().parent.parent
N_EVENTS = 100_000
MZ = 91.1880


@pytest.fixture(scope="module")
def settings():
    return load_settings()


@pytest.fixture(scope="module")
def data_events(settings, scheme):
    return generate_events("data", N_EVENTS, 7, EventModel(settings, scheme), with_truth=True)


@pytest.fixture(scope="module")
def uniform_k_events(settings, scheme):
    """Same seed as ``data_events`` but k = 1 everywhere."""
    return generate_events("data", N_EVENTS, 7, EventModel(settings, scheme, k_map=1.0), with_truth=True)


@pytest.fixture(scope="module")
def signal_events(settings, scheme):
    return generate_events("signal", 30_000, 8, EventModel(settings, scheme), with_truth=True)


def _public(events):
    return {k: v for k, v in events.items() if not k.startswith("truth_")}


# --- physics -------------------------------------------------------------------------------


@pytest.mark.parametrize("sample", ["data_events", "signal_events"])
def test_acceptance_and_leading_order(sample, request, settings):
    ev = request.getfixturevalue(sample)
    acc = settings.acceptance
    assert np.all(ev["mu1_pt"] > acc.lead_pt_min_gev)
    assert np.all(ev["mu2_pt"] > acc.sublead_pt_min_gev)
    assert np.all(ev["mu1_pt"] >= ev["mu2_pt"])
    for mu in ("mu1", "mu2"):
        assert np.all(np.abs(ev[f"{mu}_eta"]) < acc.abseta_max)
        assert np.all(ev[f"{mu}_ptErr"] > 0)
    assert np.all(ev["mu1_charge"] == -ev["mu2_charge"])


def test_z_peak_and_mass_window(data_events):
    mass = data_events["dimuon_mass"].astype(np.float64)
    # The window is applied to the written mass, as a Stage-1 selection would.
    assert mass.min() > 60.0 and mass.max() < 150.0
    counts, edges = np.histogram(mass, bins=np.arange(85.0, 97.0, 0.5))
    assert abs(0.5 * (edges[counts.argmax()] + edges[counts.argmax() + 1]) - MZ) < 0.6
    z = (mass > 75) & (mass < 105)
    assert 0.85 < z.mean() < 0.99
    assert abs(np.median(mass[z]) - MZ) < 0.6
    # FSR pulls the true mass below the generated one for roughly the configured share.
    assert 0.05 < np.mean(data_events["truth_gen_mass"] - data_events["truth_mass"] > 0.5) < 0.25


def test_background_fraction_under_the_peak(data_events):
    m = data_events["dimuon_mass"]
    z = (m > 75) & (m < 105)
    assert 0.01 < data_events["truth_is_background"][z].mean() < 0.03


def test_signal_peak(signal_events):
    mass = signal_events["dimuon_mass"]
    assert abs(np.median(mass) - 125.2) < 1.0
    assert np.all((mass > 110.0) & (mass < 150.0))


def test_decay_angle_follows_one_plus_cos2():
    c = sample_cos_theta("one_plus_cos2", 200_000, np.random.default_rng(1))
    assert np.all(np.abs(c) <= 1.0)
    assert np.mean(c * c) == pytest.approx(0.4, abs=0.005)  # <c^2> of (1 + c^2) on [-1, 1]


def test_predicted_resolution_is_right_up_to_k(settings, scheme):
    """With one fixed r, (m - m_true) / (k sigma_pred) is (z1 + z2)/sqrt(2) of the residual mixture."""
    ev = generate_events("data", N_EVENTS, 11, EventModel(settings, scheme, k_map=1.25, fixed_relative_resolution=0.01), with_truth=True)
    sp = sigma_pred(ev["dimuon_mass"], ev["mu1_pt"], ev["mu1_ptErr"], ev["mu2_pt"], ev["mu2_ptErr"])
    z = (ev["dimuon_mass"] > 75) & (ev["dimuon_mass"] < 105)
    assert np.subtract(*np.quantile(sp[z], [0.75, 0.25])) / np.median(sp[z]) < 0.1
    pull = (ev["dimuon_mass"] - ev["truth_mass"]) / (1.25 * sp)
    f, t = settings.smearing.core_fraction, settings.smearing.tail_sigma

    def inside(sigma: float) -> float:
        return erf(1.0 / (sigma * sqrt(2.0)))

    # P(|pull| < 1) summed over both-core, one-tail and both-tail muon pairs of the mixture.
    expected = f * f * inside(1.0) + 2 * f * (1 - f) * inside(sqrt((1 + t * t) / 2)) + (1 - f) ** 2 * inside(t)
    assert np.mean(np.abs(pull) < 1.0) == pytest.approx(expected, abs=0.01)


# --- the k truth -----------------------------------------------------------------------------


def _mass_of_written_muons(ev: dict[str, np.ndarray], muon_mass: float) -> np.ndarray:
    """Invariant mass of the written float32 muon columns."""
    p = {}
    for mu in ("mu1", "mu2"):
        pt, eta, phi = (ev[f"{mu}_{c}"].astype(np.float64) for c in ("pt", "eta", "phi"))
        p[mu] = (pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta), np.sqrt((pt * np.cosh(eta)) ** 2 + muon_mass**2))
    e = p["mu1"][3] + p["mu2"][3]
    px, py, pz = (p["mu1"][i] + p["mu2"][i] for i in range(3))
    return np.sqrt(np.maximum(e * e - px * px - py * py - pz * pz, 0.0))


def test_mass_is_the_mass_of_the_written_muons(data_events, settings):
    """mass_model muons (the default): what a reader rebuilds from the muons is the written mass."""
    rebuilt = _mass_of_written_muons(data_events, settings.muon_mass_gev)
    np.testing.assert_allclose(data_events["dimuon_mass"], rebuilt, rtol=2e-6)


def test_independent_mass_model_decouples_mass_and_muons(settings, scheme):
    """mass_model independent: the mass is smeared on its own, with the same resolution."""
    independent = settings.model_copy(update={"mass_model": "independent"})
    ev = generate_events("data", 50_000, 7, EventModel(independent, scheme), with_truth=True)
    muons = _mass_of_written_muons(ev, settings.muon_mass_gev) - ev["truth_mass"]
    mass = ev["dimuon_mass"] - ev["truth_mass"]
    core = (np.abs(mass) < 5) & (np.abs(muons) < 5) & ~ev["truth_is_background"]
    assert abs(np.corrcoef(mass[core], muons[core])[0, 1]) < 0.03
    iqr = np.subtract(*np.quantile(mass[core], [0.75, 0.25])) / np.subtract(*np.quantile(muons[core], [0.75, 0.25]))
    assert iqr == pytest.approx(1.0, abs=0.03)


def test_mass_deviation_scales_by_k(data_events, uniform_k_events, scheme):
    """Each muon is smeared k times its ptErr: the pull (m - m_true) / sigma_pred is k times wider than at k = 1."""

    def pull_iqr(ev, cat):
        sp = sigma_pred(ev["dimuon_mass"], ev["mu1_pt"], ev["mu1_ptErr"], ev["mu2_pt"], ev["mu2_ptErr"])
        pull = ((ev["dimuon_mass"] - ev["truth_mass"]) / sp)[cat]
        return np.subtract(*np.quantile(pull, [0.75, 0.25])), int(cat.sum())

    for name in ("30-45_BB", "45-52_OE", "30-45_EE"):
        k = builtin_k_map("data", load_settings(), scheme)[name]
        cat_k = (data_events["truth_category"] == scheme.index_of(name)) & ~data_events["truth_is_background"]
        cat_1 = (uniform_k_events["truth_category"] == scheme.index_of(name)) & ~uniform_k_events["truth_is_background"]
        assert np.all(data_events["truth_k"][cat_k] == k)
        (iqr_k, n_k), (iqr_1, n_1) = pull_iqr(data_events, cat_k), pull_iqr(uniform_k_events, cat_1)
        # The IQR of n draws has a relative error of about 1.2 / sqrt(n): 4 sigma of the ratio.
        tolerance = 4 * 1.2 * sqrt(1 / n_k + 1 / n_1)
        assert iqr_k / iqr_1 == pytest.approx(k, rel=tolerance)


def test_k_category_is_the_true_kinematics_category(data_events, scheme):
    """The k category comes from the true kinematics; a reader of the written columns agrees except near pT edges."""
    ev = data_events
    read = scheme.assign(ev["mu1_pt"].astype(np.float64), np.abs(ev["mu1_eta"]), np.abs(ev["mu2_eta"]))
    inside = read >= 0
    # Migration (a pT edge crossed, or the two muons swapped as leading) moves about a tenth of the events.
    assert np.mean(read[inside] == ev["truth_category"][inside]) > 0.85
    # Out-of-range leading pT takes the nearest pT bin's k.
    low = ev["mu1_pt"] < scheme.pt_edges[0] - 3
    assert low.any() and np.mean(ev["truth_category"][low] < scheme.n_eta**2) > 0.95


def test_builtin_k_maps_in_documented_ranges(settings, scheme):
    data, mc = builtin_k_map("data", settings, scheme), builtin_k_map("mc", settings, scheme)
    assert list(data) == scheme.names and list(mc) == scheme.names
    assert 1.05 <= min(data.values()) and max(data.values()) <= 1.30
    assert 1.00 <= min(mc.values()) and max(mc.values()) <= 1.12
    assert len(set(data.values())) > 10 and data != mc


def test_k_override_merges_and_validates(scheme):
    base = {name: 1.1 for name in scheme.names}
    merged = resolve_k_map(base, {"62-200_EB": 1.4}, scheme)
    assert merged["62-200_EB"] == 1.4 and merged["30-45_BB"] == 1.1
    assert set(resolve_k_map(base, 1.2, scheme).values()) == {1.2}
    with pytest.raises(ConfigError, match="unknown category"):
        resolve_k_map(base, {"30-45_XX": 1.2}, scheme)
    with pytest.raises(ConfigError, match="positive"):
        resolve_k_map(base, {"30-45_BB": -1.0}, scheme)


def test_load_k_override(tmp_path):
    assert load_k_override("1.15") == 1.15
    path = tmp_path / "k.json"
    path.write_text(json.dumps({"30-45_BB": 1.2}))
    assert load_k_override(str(path)) == {"30-45_BB": 1.2}
    with pytest.raises(InputError, match="cannot read"):
        load_k_override(str(tmp_path / "missing.json"))
    path.write_text("[1, 2]")
    with pytest.raises(InputError, match="JSON object"):
        load_k_override(str(path))


# --- determinism and settings ----------------------------------------------------------------


def test_same_seed_same_arrays_other_seed_differs(data_events, settings, scheme):
    again = generate_events("data", N_EVENTS, 7, EventModel(settings, scheme), with_truth=True)
    for name, values in data_events.items():
        np.testing.assert_array_equal(values, again[name], err_msg=name)
    other = generate_events("data", 1000, 8, EventModel(settings, scheme))
    assert not np.array_equal(other["mu1_pt"], data_events["mu1_pt"][:1000])


def test_weights_only_for_simulation(data_events, signal_events, settings, scheme):
    assert "wgt_nominal" not in data_events
    mc = generate_events("mc", 5000, 3, EventModel(settings, scheme))
    for ev in (mc, signal_events):
        w = ev["wgt_nominal"]
        assert w.dtype == np.float32 and np.all(w > 0) and 0.05 < np.std(w) < 0.2
    assert np.all(mc["run"] == 1)


def test_bad_settings_are_rejected(tmp_path):
    text = (REPO / "configs" / "generator.yaml").read_text()
    bad = tmp_path / "bad.yaml"
    bad.write_text(text + "\nunexpected_key: 1\n")
    with pytest.raises(ConfigError, match="unexpected_key"):
        load_settings(bad)
    bad.write_text(text.replace("core_fraction: 0.93", "core_fraction: 1.5"))
    with pytest.raises(ConfigError, match="smearing.core_fraction"):
        load_settings(bad)


def test_bad_arguments_are_rejected(settings, scheme):
    with pytest.raises(ConfigError, match="kind"):
        generate_events("dy", 10, 1, EventModel(settings, scheme))
    with pytest.raises(ConfigError, match="files_per_dataset"):
        generate_sample("/nonexistent", options=WriteOptions(files_per_dataset=0))


def test_empty_mass_window_fails_instead_of_looping(settings, scheme):
    signal = settings.samples.signal.model_copy(update={"process": "z", "mass_window_gev": (200.0, 210.0)})
    broken = settings.model_copy(update={"samples": settings.samples.model_copy(update={"signal": signal})})
    with pytest.raises(ConfigError, match="mass window"):
        generate_events("signal", 10, 1, EventModel(broken, scheme))


# --- written sample --------------------------------------------------------------------------


SMALL = dict(n_data=30_000, n_mc=12_000, n_signal=6_000)
SMALL_FILES = WriteOptions(files_per_dataset=2, row_group_rows=1_500, workers=1)


@pytest.fixture(scope="module")
def written(tmp_path_factory, settings):
    root = tmp_path_factory.mktemp("stage1")
    return generate_sample(root, SampleRequest(2018, seed=5, **SMALL), SMALL_FILES, settings)


def test_layout_and_row_groups(written):
    files = sorted(written.glob("compacted/*/*/*.parquet"))
    datasets = {f.parts[-3] for f in files}
    assert datasets == {"data_A", "data_B", "data_C", "data_D", "dyTo2L_M-50_incl", "ggh_powhegPS"}
    for f in files:
        meta = pq.ParquetFile(f).metadata
        assert meta.num_row_groups >= 2, f
    assert not list(written.glob(".staging-*"))


def test_truth_json(written, settings, scheme):
    truth = json.loads((written / "truth.json").read_text())
    assert truth["generator_version"] == GENERATOR_VERSION and truth["seed"] == 5 and truth["year"] == 2018
    assert truth["events"] == {"data": 30_000, "mc": 12_000, "signal": 6_000}
    assert truth["k_data"] == builtin_k_map("data", settings, scheme)
    assert truth["k_mc"] == builtin_k_map("mc", settings, scheme)
    assert truth["categories"]["names"] == scheme.names
    assert truth["settings"] == settings_record(settings)
    for kind, n in truth["events"].items():
        assert sum(truth["category_counts"][kind].values()) == n
    for name, ds in truth["datasets"].items():
        rows = sum(pq.ParquetFile(written / f).metadata.num_rows for f in ds["files"])
        assert rows == ds["events"], name


def test_written_columns(written, settings):
    data = pq.read_table(sorted(written.glob("compacted/data_B/*/*.parquet"))[0])
    mc = pq.read_table(sorted(written.glob("compacted/dy*/*/*.parquet"))[0])
    assert "wgt_nominal" not in data.column_names and "wgt_nominal" in mc.column_names
    for col in ("mu1_pt", "mu1_ptErr", "mu2_pt", "mu2_ptErr", "mu1_eta", "mu2_eta", "dimuon_mass"):
        assert str(data.schema.field(col).type) == "float"
    assert str(data.schema.field("event").type) == "int64"
    lo, hi = settings.eras["B"].runs
    runs = data.column("run").to_numpy()
    assert runs.min() >= lo and runs.max() <= hi
    events = data.column("event").to_numpy()
    assert len(np.unique(events)) == len(events)


def test_two_k_maps_smear_the_muons_differently(written, tmp_path, settings):
    request = SampleRequest(2018, seed=5, k_data=1.0, k_mc={"30-45_BB": 1.5}, **SMALL)
    other = generate_sample(tmp_path, request, SMALL_FILES, settings)
    for rel in ("compacted/data_A/0/part0.parquet", "compacted/dyTo2L_M-50_incl/0/part0.parquet"):
        a, b = pq.read_table(written / rel), pq.read_table(other / rel)
        for name in ("mu1_pt", "dimuon_mass"):
            assert not a.column(name).equals(b.column(name)), (rel, name)
    truth = json.loads((other / "truth.json").read_text())
    assert set(truth["k_data"].values()) == {1.0} and truth["k_mc"]["30-45_BB"] == 1.5
    assert truth["k_source"] == {"data": "uniform 1", "mc": "builtin with 1 categories overridden"}


@pytest.mark.slow
def test_bytes_do_not_depend_on_the_number_of_workers(tmp_path, settings):
    request = SampleRequest(seed=3, n_data=3000, n_mc=1000, n_signal=0)
    one = generate_sample(tmp_path / "one", request, WriteOptions(files_per_dataset=2, row_group_rows=500, workers=1), settings)
    two = generate_sample(tmp_path / "two", request, WriteOptions(files_per_dataset=2, row_group_rows=500, workers=2), settings)
    files = sorted(p.relative_to(one) for p in one.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(two) for p in two.rglob("*") if p.is_file())
    for rel in files:
        assert (one / rel).read_bytes() == (two / rel).read_bytes(), rel


def test_regeneration_replaces_stale_files(tmp_path, settings):
    common = dict(seed=1, n_data=4000, n_signal=1000)
    generate_sample(tmp_path, SampleRequest(n_mc=2000, **common), WriteOptions(3, row_group_rows=500, workers=1), settings)
    year_dir = generate_sample(tmp_path, SampleRequest(n_mc=0, **common), WriteOptions(1, row_group_rows=500, workers=1), settings)
    truth = json.loads((year_dir / "truth.json").read_text())
    listed = {f for ds in truth["datasets"].values() for f in ds["files"]}
    on_disk = {p.relative_to(year_dir).as_posix() for p in year_dir.glob("compacted/*/*/*.parquet")}
    assert on_disk == listed and not any("dyTo2L" in f for f in on_disk)


# --- command line ----------------------------------------------------------------------------


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lib.generate", *args], cwd=REPO, capture_output=True, text=True, timeout=120)


def test_cli_help():
    result = _cli("--help")
    assert result.returncode == 0 and "--n-data" in result.stdout and "--k-data" in result.stdout and "--analysis-config" in result.stdout


@pytest.mark.parametrize("args", [["--n-data", "-5"], ["--bogus"], ["--k-data", "/nonexistent/k.json"]])
def test_cli_bad_argument_is_one_line(args, tmp_path):
    result = _cli("--output", str(tmp_path), "--n-data", "10", "--n-mc", "0", "--n-signal", "0", *args)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "error" in lines[0] and "Traceback" not in result.stderr


def test_cli_writes_a_sample(tmp_path):
    sizes = ["--n-data", "2000", "--n-mc", "1000", "--n-signal", "500", "--files-per-dataset", "1", "--workers", "1"]
    result = _cli("--output", str(tmp_path), *sizes, "--k-data", "1.2")
    assert result.returncode == 0, result.stderr
    # A normal run prints its one closing line, not a line per file written.
    assert result.stderr == "" and result.stdout.count("\n") == 1 and "sample written" in result.stdout
    truth = json.loads((tmp_path / "2018" / "truth.json").read_text())
    assert set(truth["k_data"].values()) == {1.2}


def test_cli_default_seed_differs_per_year(tmp_path):
    """Two years generated with the default seed are two samples, and truth.json says which seed made each."""
    sizes = ["--n-data", "500", "--n-mc", "0", "--n-signal", "0", "--files-per-dataset", "1", "--workers", "1"]
    for year in ("2017", "2018"):
        assert _cli("--output", str(tmp_path), "--year", year, *sizes).returncode == 0
    seeds = [json.loads((tmp_path / y / "truth.json").read_text())["seed"] for y in ("2017", "2018")]
    assert seeds[0] != seeds[1]
    first = pq.read_table(sorted((tmp_path / "2017").glob("compacted/data_*/*/*.parquet"))[0]).column("mu1_pt")
    second = pq.read_table(sorted((tmp_path / "2018").glob("compacted/data_*/*/*.parquet"))[0]).column("mu1_pt")
    assert not first.equals(second)
    # From Python the same: a request without a seed takes its year's, the one the command line wrote.
    from lib.generator import SampleRequest

    assert [SampleRequest(year=int(y)).seed for y in ("2017", "2018")] == seeds


def _analysis_config(tmp_path: Path, pt_edges: str) -> Path:
    """The default analysis config with other leading-muon pT edges."""
    text = (REPO / "configs" / "default.yaml").read_text()
    default_edges = "pt_edges_gev: [30.0, 45.0, 52.0, 62.0, 200.0]"
    assert default_edges in text
    path = tmp_path / "analysis.yaml"
    path.write_text(text.replace(default_edges, f"pt_edges_gev: {pt_edges}"))
    return path


def test_cli_analysis_config_defines_the_categories(tmp_path):
    """The k maps and truth.json are defined on the categories of the analysis config given."""
    analysis = _analysis_config(tmp_path, "[30.0, 45.0, 55.0, 80.0, 200.0]")
    sizes = ["--n-data", "2000", "--n-mc", "1000", "--n-signal", "0", "--files-per-dataset", "1", "--workers", "1"]
    result = _cli("--output", str(tmp_path / "out"), *sizes, "--analysis-config", str(analysis), "--k-data", "1.2")
    assert result.returncode == 0, result.stderr
    truth = json.loads((tmp_path / "out" / "2018" / "truth.json").read_text())
    names = truth["categories"]["names"]
    assert truth["categories"]["pt_edges_gev"] == [30.0, 45.0, 55.0, 80.0, 200.0]
    assert "45-55_BB" in names and "80-200_EE" in names and not any(n.startswith("45-52") for n in names)
    assert list(truth["k_data"]) == names and set(truth["k_data"].values()) == {1.2}
    assert list(truth["k_mc"]) == names and list(truth["category_counts"]["data"]) == names
    assert sum(truth["category_counts"]["data"].values()) == 2000


def test_cli_analysis_config_with_other_pt_bin_count_is_one_line(tmp_path):
    """The built-in k maps have one value per pT bin: another count is a one-line error, not a traceback."""
    analysis = _analysis_config(tmp_path, "[30.0, 45.0, 62.0, 200.0]")
    result = _cli("--output", str(tmp_path / "out"), "--n-data", "10", "--n-mc", "0", "--n-signal", "0", "--analysis-config", str(analysis))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "k_maps.data.pt_bin needs 3 values, got 4" in lines[0] and "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


def test_generator_override_of_a_category_the_scheme_lacks_names_the_generator_settings(settings):
    """The built-in overrides name 30-45_EE: a scheme without it must say that the name comes from the generator's YAML."""
    from lib.categories import CategoryScheme
    from lib.config import CategoryConfig

    other = CategoryScheme.from_config(CategoryConfig(pt_edges_gev=[30, 50, 60, 80, 200], abseta_edges=[0, 0.9, 1.8, 2.4],
                                                      region_names=["B", "O", "E"]))  # fmt: skip
    with pytest.raises(ConfigError, match=r"^k_maps\.data\.overrides of the generator settings: unknown category '30-45_EE'"):
        builtin_k_map("data", settings, other)
