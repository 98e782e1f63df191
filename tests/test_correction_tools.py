"""Correction tools: audit, legacy ROOT import, applying to parquet, installing, and their CLI."""

from __future__ import annotations

import datetime
import difflib
import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import uproot
import yaml

from lib.correction.__main__ import main
from lib.correction.apply import apply_correction
from lib.config import DEFAULT_CONFIG, load_config
from lib.correction.auditor import audit_correction
from lib.correction.importer import LEGACY_PT_EDGES_GEV, import_root
from lib.correction.install import FILELIST, install_correction, set_filelist_entry
from lib.correction.writer import ULP_TOLERANCE, build_correction, load_correction, write_correction
from lib.errors import ConfigError, CorrectionError, InputError
from lib.factors import neighbour_median

REPO = Path(__file__).resolve().parent.parent
LEGACY = Path("/work/shared/reference/legacy_corrections")
DATA_2018 = LEGACY / "res_calib_BS_correction_2018_nanoAODv12.json"
MC_2018 = LEGACY / "res_calib_BS_correction_2018_nanoAODv12_MC.json"
DATA_2017 = LEGACY / "res_calib_BS_correction_2017_nanoAODv12.json"
TH2_FILE = LEGACY / "ebe_mass_uncertaintiy_calibration_2018.root"
NAME = "BS_ebe_mass_res_calibration"


def assert_ulp_equal(got: np.ndarray, want: np.ndarray) -> None:
    got, want = np.asarray(got, dtype=float), np.asarray(want, dtype=float)
    assert np.all(np.abs(got - want) <= ULP_TOLERANCE * np.spacing(np.abs(want))), (got, want)


def centres(edges: np.ndarray) -> np.ndarray:
    return 0.5 * (edges[:-1] + edges[1:])


# --- audit -------------------------------------------------------------------------------------


def test_audit_flags_exactly_the_failed_2018_fit(config):
    report = audit_correction(DATA_2018, config)
    assert report.flagged == ["30-45_EE"]
    assert {r for _, r in report.flags} == {
        "outside plausible band [0.5, 2.5]",
        "x0.061 the median of its neighbours (1.0310)",
    }
    assert {c.name: c.value for c in report.categories}["30-45_EE"] == pytest.approx(0.0629, abs=1e-4)
    assert "FLAGGED 1 of 36 categories: 30-45_EE" in report.to_text()


@pytest.mark.parametrize("path", [DATA_2017, MC_2018], ids=["2017-data", "2018-mc"])
def test_audit_finds_nothing_in_the_other_original_files(config, path):
    report = audit_correction(path, config)
    assert report.ok, report.to_text()
    assert report.notes == ()


def test_audit_flags_an_in_band_outlier_and_reports_the_diff(tmp_path, scheme, config):
    factors = load_correction(MC_2018).factors(scheme) | {"52-62_OO": 2.4}
    path = tmp_path / "c.json"
    write_correction(build_correction(factors, scheme, NAME, "test"), path)
    report = audit_correction(path, config, previous=MC_2018)
    assert report.flagged == ["52-62_OO"]
    assert "neighbours" in report.flags[0][1]
    change = {c.name: c.relative_change for c in report.categories}
    assert change["52-62_OO"] == pytest.approx(2.4 / 1.1930570808865335 - 1, rel=1e-9)
    assert change["30-45_BB"] == pytest.approx(0.0, abs=1e-15)
    assert "previous" in report.to_text()


def test_audit_flags_a_nan_factor(tmp_path, config):
    text = DATA_2017.read_text().replace("1.1511110708875287", "NaN")
    path = tmp_path / "nan.json"
    path.write_text(text)
    report = audit_correction(path, config)
    assert report.flagged == ["52-62_OO"]
    assert report.flags[0][1] == "factor is nan"


def _tamper(kind: str) -> str:
    data = json.loads(DATA_2017.read_text())
    node = data["corrections"][0]["data"]
    if kind == "content_length":
        node["content"].pop()
    elif kind == "edges_not_increasing":
        node["edges"][1] = [0.0, 1.8, 0.9, 2.4]
    elif kind == "renamed_input":
        data["corrections"][0]["inputs"][0]["name"] = "mu_pt"
        node["inputs"][0] = "mu_pt"
    elif kind == "string_factor":
        node["content"][5] = "1.1"
    elif kind == "not_json":
        return DATA_2017.read_text()[:-40]
    return json.dumps(data)


@pytest.mark.parametrize("kind", ["content_length", "edges_not_increasing", "renamed_input", "string_factor", "not_json"])
def test_audit_of_a_tampered_file_is_a_one_line_correction_error(tmp_path, config, kind):
    path = tmp_path / f"{kind}.json"
    path.write_text(_tamper(kind))
    with pytest.raises(CorrectionError) as err:
        audit_correction(path, config)
    message = str(err.value)
    assert "\n" not in message and str(path) in message


def test_audit_cli_exit_codes_and_one_line_errors(tmp_path, capsys):
    assert main(["audit", str(DATA_2017)]) == 0
    assert "OK: all 36 categories pass" in capsys.readouterr().out
    assert main(["audit", str(DATA_2018)]) == 1
    captured = capsys.readouterr()
    assert "30-45_EE" in captured.out and captured.err.count("\n") == 1
    bad = tmp_path / "bad.json"
    bad.write_text(_tamper("content_length"))
    assert main(["audit", str(bad)]) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1 and captured.err.startswith("error: ")
    assert "Traceback" not in captured.err


def _with_outlier(tmp_path: Path, scheme, name: str, ratio: float) -> Path:
    """The 2018 MC factors with ``name`` set to ``ratio`` times the median of its neighbours."""
    factors = load_correction(MC_2018).factors(scheme)
    usable = {i: factors[n] for i, n in enumerate(scheme.names) if n != name}
    factors[name] = ratio * neighbour_median(scheme, scheme.index_of(name), usable)
    path = tmp_path / f"outlier_{ratio:g}.json"
    write_correction(build_correction(factors, scheme, NAME, "test"), path)
    return path


def test_audit_thresholds_are_the_configuration_s_everywhere(tmp_path, scheme, config):
    """A factor x1.8 its neighbours' median: above step3.neighbour_outlier_ratio (1.6), so the command line, the
    report's audit and install all flag it; a configuration with 2.0 clears it for all of them."""
    assert config.step3.neighbour_outlier_ratio == 1.6
    path = _with_outlier(tmp_path, scheme, "52-62_OO", 1.8)

    def cli(*extra: str) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "lib.correction", "audit", str(path), *extra]
        return subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=120)

    strict = cli()
    assert strict.returncode == 1, strict.stdout + strict.stderr
    assert "outside [1/1.6, 1.6]" in strict.stdout and strict.stderr.endswith("1 of 36 categories flagged: 52-62_OO\n")
    assert audit_correction(path, config).flagged == ["52-62_OO"]  # what the report shows
    repo = tmp_path / "repo"
    with pytest.raises(CorrectionError, match="52-62_OO = "):
        install_correction(path, 2018, True, repo, config)

    raw = yaml.safe_load(DEFAULT_CONFIG.read_text())
    raw["step3"]["neighbour_outlier_ratio"] = 2.0
    loose = tmp_path / "loose.yaml"
    loose.write_text(yaml.safe_dump(raw))
    cleared = cli("--config", str(loose))
    assert cleared.returncode == 0 and "outside [1/2, 2]" in cleared.stdout, cleared.stdout + cleared.stderr
    assert audit_correction(path, load_config(loose)).ok
    assert cli("--outlier-threshold", "1.9").returncode == 0  # an explicit threshold still wins


def test_cli_runs_as_a_module_without_traceback(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    result = subprocess.run(
        [sys.executable, "-m", "lib.correction", "audit", str(bad)], cwd=REPO, capture_output=True, text=True
    )
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0 and "not valid JSON" in result.stderr


# --- import ------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["Data", "MC"])
def test_import_th3_equals_the_histogram_bin_for_bin(tmp_path, kind):
    root_path = LEGACY / f"res_calib_{kind}_2018.root"
    path = tmp_path / "th3.json"
    write_correction(import_root(root_path, NAME), path)
    hist = uproot.open(root_path)[f"res_calib_{kind}_2018"]
    values = hist.values(flow=False)
    edges = [hist.axis(i).edges() for i in range(3)]

    node = json.loads(path.read_text())["corrections"][0]["data"]
    assert node["edges"] == [e.tolist() for e in edges]
    assert node["edges"][0] == list(LEGACY_PT_EDGES_GEV)
    assert node["content"] == values.ravel().tolist()
    mesh = np.meshgrid(*(centres(e) for e in edges), indexing="ij")
    got = load_correction(path).evaluate(*(m.ravel() for m in mesh))
    assert_ulp_equal(got, values.ravel())


@pytest.mark.parametrize("kind", ["Data", "MC"])
def test_import_th2_set_equals_every_histogram_bin_for_bin(tmp_path, kind):
    path = tmp_path / "th2.json"
    write_correction(import_root(TH2_FILE, NAME, kind=kind), path)
    loaded = load_correction(path)
    assert loaded.model.data.edges[0] == list(LEGACY_PT_EDGES_GEV)
    root = uproot.open(TH2_FILE)
    pt_centres = centres(np.array(LEGACY_PT_EDGES_GEV))
    for i_pt, pt in enumerate(pt_centres):
        hist = root[f"correction{kind}_pt_{i_pt}"]
        x, y = np.meshgrid(centres(hist.axis(0).edges()), centres(hist.axis(1).edges()), indexing="ij")
        got = loaded.evaluate(np.full(x.size, pt), x.ravel(), y.ravel())
        assert_ulp_equal(got, hist.values(flow=False).ravel().astype(np.float64))


def test_th2_and_th3_imports_agree_on_the_2018_data_maps(scheme):
    th3 = import_root(LEGACY / "res_calib_Data_2018.root", NAME).corrections[0].to_evaluator()
    th2 = import_root(TH2_FILE, NAME, kind="Data").corrections[0].to_evaluator()
    x = np.array([scheme.center(i) for i in range(scheme.n_categories)]).T
    np.testing.assert_allclose(th2.evaluate(*x), th3.evaluate(*x), rtol=1e-6)


def test_import_errors_are_input_errors(tmp_path):
    with pytest.raises(InputError, match="kind"):
        import_root(TH2_FILE, NAME)
    with pytest.raises(InputError, match="pt_2"):
        import_root(TH2_FILE, NAME, kind="MC", pt_edges=[0.0, 45.0, 9999.0])
    fake = tmp_path / "fake.root"
    fake.write_text("not ROOT")
    with pytest.raises(InputError) as err:
        import_root(fake, NAME)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("edges", [["0", "52", "45", "62", "9999"], ["0", "45", "52", "62", "inf"]])
def test_import_cli_refuses_edges_that_are_no_binning_in_one_line(tmp_path, capsys, edges):
    """--pt-edges reach correctionlib's schema: a decreasing or infinite edge is the user's input, said in one line."""
    out = tmp_path / "imported.json"
    assert main(["import", str(TH2_FILE), "--kind", "MC", "--pt-edges", *edges, "-o", str(out)]) == 1
    err = capsys.readouterr().err.strip()
    assert "is invalid" in err and "\n" not in err and "Traceback" not in err and not out.exists(), err


def test_import_cli_writes_a_file_that_audits_clean(tmp_path, capsys):
    out = tmp_path / "imported.json"
    assert main(["import", str(LEGACY / "res_calib_MC_2018.root"), "-o", str(out)]) == 0
    assert main(["audit", str(out)]) == 0
    assert "differ from the categories'" in capsys.readouterr().out


# --- apply -------------------------------------------------------------------------------------


def _stage1_table(n: int, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    pt1 = rng.uniform(20.0, 250.0, n)
    pt2 = rng.uniform(0.15, 1.0, n) * pt1
    return pa.table(
        {
            "event": np.arange(n, dtype=np.int64) * 7 + seed,
            "mu1_pt": pt1.astype(np.float32),
            "mu1_ptErr": (pt1 * rng.uniform(0.005, 0.03, n)).astype(np.float32),
            "mu1_eta": rng.uniform(-2.4, 2.4, n),
            "mu2_pt": pt2,
            "mu2_ptErr": pt2 * rng.uniform(0.005, 0.03, n),
            "mu2_eta": rng.uniform(-2.4, 2.4, n),
            "dimuon_mass": rng.uniform(75.0, 105.0, n),
            "dataset": pa.array([f"data_{i % 3}" for i in range(n)]),
        }
    )


@pytest.fixture()
def stage1(tmp_path: Path) -> Path:
    root = tmp_path / "stage1" / "2018" / "compacted"
    for sub, seed in (("data_A/0", 1), ("data_B/3", 2)):
        (root / sub).mkdir(parents=True)
        pq.write_table(_stage1_table(250, seed), root / sub / "part0.parquet", row_group_size=100)
    return tmp_path / "stage1"


def test_apply_adds_the_resolution_columns_and_keeps_everything_else(tmp_path, stage1, scheme):
    inputs = sorted(stage1.rglob("*.parquet"))
    before = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in inputs}
    done = apply_correction(inputs, tmp_path / "out", load_correction(DATA_2018), input_root=stage1, batch_rows=64)

    assert [d.output for d in done] == [
        (tmp_path / "out" / p.relative_to(stage1)).resolve() for p in inputs
    ]
    assert before == {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in inputs}
    factors = load_correction(DATA_2018).factors(scheme)
    for item in done:
        original = pq.read_table(item.source)
        result = pq.read_table(item.output)
        assert item.rows == original.num_rows == result.num_rows
        assert result.column_names == original.column_names + [
            "uncalibrated_dimuon_ebe_mass_res",
            "dimuon_ebe_mass_res",
            "dimuon_ebe_mass_res_rel",
        ]
        assert result.select(original.column_names).equals(original)
        c = {n: original.column(n).to_numpy().astype(np.float64) for n in original.column_names if n != "dataset"}
        sigma = c["dimuon_mass"] / 2 * np.sqrt((c["mu1_ptErr"] / c["mu1_pt"]) ** 2 + (c["mu2_ptErr"] / c["mu2_pt"]) ** 2)
        pt = np.clip(c["mu1_pt"], 30.0, 199.999)
        index = scheme.assign(pt, np.abs(c["mu1_eta"]), np.abs(c["mu2_eta"]))
        factor = np.array([factors[scheme.names[i]] for i in index])
        np.testing.assert_allclose(result.column("uncalibrated_dimuon_ebe_mass_res").to_numpy(), sigma, rtol=1e-13)
        np.testing.assert_allclose(result.column("dimuon_ebe_mass_res").to_numpy(), sigma * factor, rtol=1e-13)
        np.testing.assert_allclose(result.column("dimuon_ebe_mass_res_rel").to_numpy(), sigma * factor / c["dimuon_mass"], rtol=1e-13)
        provenance = json.loads(pq.read_schema(item.output).metadata[b"ebe_calib.correction"])
        assert provenance["file"] == DATA_2018.name and provenance["correction"] == NAME
        # The input's row groups of 100, 100 and 50 rows, read in batches of 64 that never span two of them.
        groups = pq.ParquetFile(item.output).metadata
        assert [groups.row_group(i).num_rows for i in range(groups.num_row_groups)] == [64, 36, 64, 36, 50]


def test_apply_replaces_an_earlier_calibration_in_place(tmp_path, stage1):
    source = next(stage1.rglob("*.parquet"))
    table = pq.read_table(source)
    table = table.add_column(2, "dimuon_ebe_mass_res", pa.array(np.zeros(table.num_rows)))
    old = tmp_path / "old" / "f.parquet"
    old.parent.mkdir()
    pq.write_table(table, old)
    (done,) = apply_correction([old], tmp_path / "new", load_correction(MC_2018))
    result = pq.read_table(done.output)
    assert result.column_names[2] == "dimuon_ebe_mass_res"
    assert result.column_names.count("dimuon_ebe_mass_res") == 1
    assert np.all(result.column("dimuon_ebe_mass_res").to_numpy() > 0)


def test_apply_names_the_file_and_the_missing_column(tmp_path, stage1):
    source = next(stage1.rglob("*.parquet"))
    broken = tmp_path / "broken.parquet"
    pq.write_table(pq.read_table(source).drop_columns(["mu2_ptErr"]), broken)
    with pytest.raises(InputError, match=r"broken\.parquet lacks column mu2_ptErr"):
        apply_correction([broken], tmp_path / "out", load_correction(DATA_2018))
    assert not (tmp_path / "out").exists()


def test_apply_refuses_to_overwrite_inputs_and_existing_outputs(tmp_path, stage1):
    inputs = sorted(stage1.rglob("*.parquet"))
    with pytest.raises(InputError, match="refusing to overwrite input"):
        apply_correction(inputs, stage1, load_correction(DATA_2018), input_root=stage1)
    apply_correction(inputs, tmp_path / "out", load_correction(DATA_2018))
    with pytest.raises(InputError, match="already exists"):
        apply_correction(inputs, tmp_path / "out", load_correction(DATA_2018))
    assert len(apply_correction(inputs, tmp_path / "out", load_correction(DATA_2018), overwrite=True)) == 2


def test_apply_cli(tmp_path, stage1, capsys):
    inputs = [str(p) for p in sorted(stage1.rglob("*.parquet"))]
    assert main(["apply", *inputs, "--correction", str(DATA_2017), "--output-dir", str(tmp_path / "o")]) == 0
    assert capsys.readouterr().out.count("(250 rows)") == 2
    assert main(["apply", *inputs, "--correction", str(DATA_2017), "--output-dir", str(tmp_path / "o")]) == 1
    assert capsys.readouterr().err.count("\n") == 1


# --- install -----------------------------------------------------------------------------------


@pytest.fixture()
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "analysis"
    (root / FILELIST.parent).mkdir(parents=True)
    shutil.copy(REPO / FILELIST, root / FILELIST)
    return root


def _diff(before: str, after: str) -> list[str]:
    return [
        line
        for line in difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm="", n=0)
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]


def test_install_copies_and_changes_only_the_one_key(repo, tmp_path, config):
    """A good 2018 Data file replaces the failed one: the value and its stale comment change, nothing else."""
    good = tmp_path / "res_calib_BS_correction_2018_nanoAODv12.json"
    shutil.copy(MC_2018, good)  # the 2018 MC factors pass the audit; under a Data name they are a Data file here
    before = (repo / FILELIST).read_text()
    target = install_correction(good, 2018, False, repo, config)
    assert target == repo / "data" / "res_calib" / good.name
    assert target.read_bytes() == good.read_bytes()
    after = (repo / FILELIST).read_text()
    today = datetime.date.today().isoformat()
    assert _diff(before, after) == [
        "-    Data: data/res_calib/res_calib_BS_correction_2018_nanoAODv12.json # 30-45_EE holds 0.0629 (failed fit)",
        f"+    Data: data/res_calib/{good.name}  # {good.name}, installed {today}: audit OK",
    ]
    assert yaml.safe_load(after)["BS_res_calib_path"]["2018"]["Data"] == f"data/res_calib/{good.name}"


@pytest.mark.parametrize(
    "source,year,is_mc,reason",
    [(DATA_2018, 2018, False, r"30-45_EE = 0.06287 \(outside plausible band"),
     (MC_2018, 2018, False, "its name says MC"),
     (DATA_2017, 2018, False, "its name says year 2017")],
)  # fmt: skip
def test_install_refuses_a_flagged_or_mismatched_file_unless_forced(repo, source, year, is_mc, reason, caplog, config):
    before = (repo / FILELIST).read_bytes()
    with pytest.raises(CorrectionError, match=reason) as err:
        install_correction(source, year, is_mc, repo, config)
    assert "--force" in str(err.value) and "\n" not in str(err.value)
    assert (repo / FILELIST).read_bytes() == before and not (repo / "data").exists()
    install_correction(source, year, is_mc, repo, config, force=True)
    assert "installing" in caplog.text and "despite" in caplog.text
    kind = "MC" if is_mc else "Data"
    (entry,) = [line for line in (repo / FILELIST).read_text().splitlines() if f"{kind}: data/res_calib/{source.name}  #" in line]
    assert "audit OK" in entry or "installed with --force" in entry


def test_install_adds_a_missing_year_without_touching_the_rest(repo, config):
    before = (repo / FILELIST).read_text()
    install_correction(DATA_2017, "2024", True, repo, config, force=True)  # its name says 2017: forced on purpose
    after = (repo / FILELIST).read_text()
    assert _diff(before, after) == ["+  2024:", f"+    MC: data/res_calib/{DATA_2017.name}"]
    loaded = yaml.safe_load(after)
    assert loaded["BS_res_calib_path"][2024] == {"MC": f"data/res_calib/{DATA_2017.name}"}
    assert loaded["zpt_weights_file"] == yaml.safe_load(before)["zpt_weights_file"]
    # The new year joins its block: the blank line still separates the block from the next key.
    assert f"  2024:\n    MC: data/res_calib/{DATA_2017.name}\n\nzpt_weights_file:" in after


def test_install_refuses_a_scalar_year_and_a_tampered_json(repo, tmp_path, config):
    before = (repo / FILELIST).read_bytes()
    with pytest.raises(ConfigError, match="2018_RERECO"):
        install_correction(DATA_2017, "2018_RERECO", False, repo, config, force=True)
    bad = tmp_path / "bad.json"
    bad.write_text(_tamper("content_length"))
    with pytest.raises(CorrectionError):
        install_correction(bad, 2018, False, repo, config)
    assert (repo / FILELIST).read_bytes() == before
    assert not (repo / "data" / "res_calib" / "bad.json").exists()


def test_filelist_edit_keeps_crlf_quotes_and_comments():
    text = "# top\r\nBS_res_calib_path:\r\n  \"2018\": # c\r\n    MC: 'old.json'   # why\r\nother: [1, 2]\r\n"
    new = set_filelist_entry(text, 2018, "MC", "data/res_calib/n'ew.json")
    assert new == "# top\r\nBS_res_calib_path:\r\n  \"2018\": # c\r\n    MC: 'data/res_calib/n''ew.json'   # why\r\nother: [1, 2]\r\n"
    added = set_filelist_entry(text, 2018, "Data", "d.json")
    assert added.endswith("    MC: 'old.json'   # why\r\n    Data: d.json\r\nother: [1, 2]\r\n")


def test_filelist_edit_keeps_the_files_own_indentation_and_comment_gaps():
    text = "a:\n    b: 1   # bee\n    c:\n        - 1\n        - 2\nBS_res_calib_path:\n    '2018':\n        Data:    # none yet\n\n# end\n"
    new = set_filelist_entry(text, 2018, "Data", "a: b.json")
    assert new == text.replace("Data:    # none yet", "Data: 'a: b.json'    # none yet")
    added = set_filelist_entry(text, 2017, "MC", "m.json")
    assert added == text.replace("\n\n# end", "\n    2017:\n        MC: m.json\n\n# end")


def test_filelist_edit_refuses_flow_style():
    with pytest.raises(ConfigError, match="block style"):
        set_filelist_entry("BS_res_calib_path: {2018: {MC: a.json}}\n", 2018, "Data", "b.json")


def test_install_cli(repo, capsys):
    assert main(["install", str(DATA_2017), "--year", "2017", "--data", "--repo-root", str(repo)]) == 0
    assert "installed" in capsys.readouterr().out
    assert (repo / "data" / "res_calib" / DATA_2017.name).exists()
