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
    _sample_cos_theta,
    builtin_k_map,
    generate_events,
    generate_sample,
    load_k_override,
    load_settings,
    resolve_k_map,
)
from lib.resolution import sigma_pred

REPO = Path(__file__).resolve().parent.parent
N_EVENTS = 100_000
MZ = 91.1880


@pytest.fixture(scope="module")
def settings():
    return load_settings()


@pytest.fixture(scope="module")
def data_events(settings, scheme):
    return generate_events("data", N_EVENTS, 7, settings=settings, scheme=scheme, with_truth=True)


@pytest.fixture(scope="module")
def uniform_k_events(settings, scheme):
    """Same seed as ``data_events`` but k = 1 everywhere."""
    return generate_events("data", N_EVENTS, 7, 1.0, settings, scheme=scheme, with_truth=True)


@pytest.fixture(scope="module")
def signal_events(settings, scheme):
    return generate_events("signal", 30_000, 8, settings=settings, scheme=scheme, with_truth=True)


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
    assert np.all((data_events["truth_mass_k1"] > 60.0) & (data_events["truth_mass_k1"] < 150.0))
    # k > 1 only stretches deviations, so the written mass stays close to the window.
    assert mass.min() > 55.0 and mass.max() < 155.0
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
    assert abs(np.median(signal_events["dimuon_mass"]) - 125.2) < 1.0
    assert np.all((signal_events["truth_mass_k1"] > 110.0) & (signal_events["truth_mass_k1"] < 150.0))


def test_decay_angle_follows_one_plus_cos2():
    c = _sample_cos_theta("one_plus_cos2", 200_000, np.random.default_rng(1))
    assert np.all(np.abs(c) <= 1.0)
    assert np.mean(c * c) == pytest.approx(0.4, abs=0.005)  # <c^2> of (1 + c^2) on [-1, 1]


def test_predicted_resolution_is_right_up_to_k(settings, scheme):
    """With one fixed r, (m - m_true) / (k sigma_pred) is (z1 + z2)/sqrt(2) of the residual mixture."""
    ev = generate_events("data", N_EVENTS, 11, 1.25, settings, scheme=scheme, fixed_relative_resolution=0.01, with_truth=True)
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


def test_k_changes_only_the_mass(data_events, uniform_k_events):
    a, b = _public(data_events), _public(uniform_k_events)
    assert a.keys() == b.keys()
    for name in a:
        if name != "dimuon_mass":
            np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    assert not np.array_equal(a["dimuon_mass"], b["dimuon_mass"])


def test_mass_deviation_scales_by_k(data_events, uniform_k_events, scheme):
    ev = data_events
    np.testing.assert_allclose(
        ev["dimuon_mass"], ev["truth_mass"] + ev["truth_k"] * (ev["truth_mass_k1"] - ev["truth_mass"]), atol=2e-5 * 150
    )
    dev_k = ev["dimuon_mass"] - ev["truth_mass"]
    dev_1 = uniform_k_events["dimuon_mass"] - uniform_k_events["truth_mass"]
    for name in ("30-45_BB", "45-52_OE", "30-45_EE"):
        cat = ev["truth_category"] == scheme.index_of(name)
        k = builtin_k_map("data", load_settings(), scheme)[name]
        assert np.all(ev["truth_k"][cat] == k)
        iqr_ratio = np.subtract(*np.quantile(dev_k[cat], [0.75, 0.25])) / np.subtract(*np.quantile(dev_1[cat], [0.75, 0.25]))
        assert iqr_ratio == pytest.approx(k, rel=1e-3)


def test_k_category_matches_a_reader_of_the_written_columns(data_events, scheme):
    ev = data_events
    read = scheme.assign(ev["mu1_pt"].astype(np.float64), np.abs(ev["mu1_eta"]), np.abs(ev["mu2_eta"]))
    inside = read >= 0
    np.testing.assert_array_equal(read[inside], ev["truth_category"][inside])
    # Out-of-range leading pT takes the nearest pT bin's k.
    low = ev["mu1_pt"] < scheme.pt_edges[0]
    assert low.any() and np.all(ev["truth_category"][low] < scheme.n_eta**2)


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
    again = generate_events("data", N_EVENTS, 7, settings=settings, scheme=scheme, with_truth=True)
    for name, values in data_events.items():
        np.testing.assert_array_equal(values, again[name], err_msg=name)
    other = generate_events("data", 1000, 8, settings=settings, scheme=scheme)
    assert not np.array_equal(other["mu1_pt"], data_events["mu1_pt"][:1000])


def test_weights_only_for_simulation(data_events, signal_events, settings, scheme):
    assert "wgt_nominal" not in data_events
    mc = generate_events("mc", 5000, 3, settings=settings, scheme=scheme)
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
        generate_events("dy", 10, 1, settings=settings, scheme=scheme)
    with pytest.raises(ConfigError, match="files_per_dataset"):
        generate_sample("/nonexistent", files_per_dataset=0)


def test_empty_mass_window_fails_instead_of_looping(settings, scheme):
    signal = settings.samples.signal.model_copy(update={"process": "z", "mass_window_gev": (200.0, 210.0)})
    broken = settings.model_copy(update={"samples": settings.samples.model_copy(update={"signal": signal})})
    with pytest.raises(ConfigError, match="mass window"):
        generate_events("signal", 10, 1, settings=broken, scheme=scheme)


# --- written sample --------------------------------------------------------------------------


SMALL = dict(n_data=30_000, n_mc=12_000, n_signal=6_000, files_per_dataset=2, row_group_rows=1_500, workers=1)


@pytest.fixture(scope="module")
def written(tmp_path_factory, settings):
    root = tmp_path_factory.mktemp("stage1")
    return generate_sample(root, year=2018, seed=5, settings=settings, **SMALL)


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
    assert truth["settings"] == settings.model_dump(mode="json")
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


def test_same_seed_two_k_maps_differ_only_in_mass(written, tmp_path, settings):
    other = generate_sample(tmp_path, year=2018, seed=5, settings=settings, k_data=1.0, k_mc={"30-45_BB": 1.5}, **SMALL)
    for rel in ("compacted/data_A/0/part0.parquet", "compacted/dyTo2L_M-50_incl/0/part0.parquet"):
        a, b = pq.read_table(written / rel), pq.read_table(other / rel)
        for name in a.column_names:
            same = a.column(name).equals(b.column(name))
            assert same == (name != "dimuon_mass"), (rel, name)
    truth = json.loads((other / "truth.json").read_text())
    assert set(truth["k_data"].values()) == {1.0} and truth["k_mc"]["30-45_BB"] == 1.5
    assert truth["k_source"] == {"data": "uniform 1", "mc": "builtin with 1 categories overridden"}


@pytest.mark.slow
def test_bytes_do_not_depend_on_the_number_of_workers(tmp_path, settings):
    args = dict(seed=3, n_data=3000, n_mc=1000, n_signal=0, files_per_dataset=2, row_group_rows=500, settings=settings)
    one = generate_sample(tmp_path / "one", workers=1, **args)
    two = generate_sample(tmp_path / "two", workers=2, **args)
    files = sorted(p.relative_to(one) for p in one.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(two) for p in two.rglob("*") if p.is_file())
    for rel in files:
        assert (one / rel).read_bytes() == (two / rel).read_bytes(), rel


def test_regeneration_replaces_stale_files(tmp_path, settings):
    common = dict(seed=1, n_data=4000, n_signal=1000, row_group_rows=500, settings=settings, workers=1)
    generate_sample(tmp_path, n_mc=2000, files_per_dataset=3, **common)
    year_dir = generate_sample(tmp_path, n_mc=0, files_per_dataset=1, **common)
    truth = json.loads((year_dir / "truth.json").read_text())
    listed = {f for ds in truth["datasets"].values() for f in ds["files"]}
    on_disk = {p.relative_to(year_dir).as_posix() for p in year_dir.glob("compacted/*/*/*.parquet")}
    assert on_disk == listed and not any("dyTo2L" in f for f in on_disk)


# --- command line ----------------------------------------------------------------------------


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lib.generate", *args], cwd=REPO, capture_output=True, text=True, timeout=120)


def test_cli_help():
    result = _cli("--help")
    assert result.returncode == 0 and "--n-data" in result.stdout and "--k-data" in result.stdout


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
    truth = json.loads((tmp_path / "2018" / "truth.json").read_text())
    assert set(truth["k_data"].values()) == {1.2}
