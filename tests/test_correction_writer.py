"""Correction writer: layout, round trip through correctionlib, [lo, hi) look-ups, clamp, errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import correctionlib
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lib.categories import NO_CATEGORY, CategoryScheme
from lib.config import Config
from lib.correction.writer import (
    ULP_TOLERANCE,
    build_correction,
    load_correction,
    write_correction,
)
from lib.errors import CorrectionError
from lib.outputs import OutputDir

LEGACY = Path("/work/shared/reference/legacy_corrections")
LEGACY_2018 = LEGACY / "res_calib_BS_correction_2018_nanoAODv12.json"


def assert_ulp_equal(got: np.ndarray, want: np.ndarray) -> None:
    """Equal up to correctionlib's JSON parsing, which may round a decimal 1 ulp differently."""
    got, want = np.asarray(got, dtype=float), np.asarray(want, dtype=float)
    assert np.all(np.abs(got - want) <= ULP_TOLERANCE * np.spacing(np.abs(want))), (got, want)


def ramp_factors(scheme: CategoryScheme) -> dict[str, float]:
    """Distinct factors, so any layout mix-up shows."""
    return {name: 0.9 + 0.01 * i for i, name in enumerate(scheme.names)}


@pytest.fixture()
def written(tmp_path: Path, scheme: CategoryScheme, config: Config) -> tuple[Path, dict[str, float]]:
    factors = ramp_factors(scheme)
    cset = build_correction(factors, scheme, config.step3.correction_name, "test factors; config abc123")
    path = tmp_path / "res_calib_BS_correction_2018_Data_nanoAODv12.json"
    write_correction(cset, path)
    return path, factors


def evaluator(path: Path, name: str = "BS_ebe_mass_res_calibration") -> correctionlib.highlevel.Correction:
    return correctionlib.CorrectionSet.from_file(str(path))[name]


def test_round_trip_gives_every_factor_at_its_category_centre(written, scheme):
    path, factors = written
    centres = np.array([scheme.center(i) for i in range(scheme.n_categories)])
    got = evaluator(path).evaluate(centres[:, 0], centres[:, 1], centres[:, 2])
    assert_ulp_equal(got, [factors[n] for n in scheme.names])
    assert load_correction(path).factors(scheme) == pytest.approx(factors, rel=1e-15)


def test_layout_matches_the_original_file(written):
    ours = json.loads(written[0].read_text())
    legacy = json.loads(LEGACY_2018.read_text())
    assert ours["schema_version"] == legacy["schema_version"] == 2
    mine, theirs = ours["corrections"][0], legacy["corrections"][0]
    assert mine["name"] == theirs["name"] and mine["version"] == theirs["version"] == 1
    assert mine["inputs"] == theirs["inputs"]
    assert mine["output"]["name"] == theirs["output"]["name"] and mine["output"]["type"] == "real"
    assert mine["description"] == "test factors; config abc123"
    for key in ("nodetype", "inputs", "edges", "flow"):
        assert mine["data"][key] == theirs["data"][key]
    assert len(mine["data"]["content"]) == 36


def test_content_is_row_major_9_pt_3_eta1_eta2(written, scheme):
    path, factors = written
    content = json.loads(path.read_text())["corrections"][0]["data"]["content"]
    assert content[9 * 1 + 3 * 2 + 0] == factors["45-52_EB"]
    assert content[9 * 3 + 3 * 0 + 1] == factors["62-200_BO"]


def test_correction_validate_cli_accepts_the_file(written):
    cli = Path(sys.executable).parent / "correction"
    result = subprocess.run([str(cli), "validate", str(written[0])], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("pt", "eta1", "eta2", "category"),
    [
        (30.0, 0.0, 0.0, "30-45_BB"),
        (44.999, 0.899, 0.899, "30-45_BB"),
        (45.0, 0.9, 0.0, "45-52_OB"),  # lower edges belong to the upper bin: [lo, hi)
        (52.0, 1.8, 1.8, "52-62_EE"),
        (62.0, 0.0, 1.8, "62-200_BE"),
        (199.999, 2.399, 2.399, "62-200_EE"),
        (200.0, 2.4, 2.4, "62-200_EE"),  # the upper edge and beyond are clamped into the last bin
        (1.0e4, 3.0, 0.1, "62-200_EB"),
        (10.0, 0.1, 5.0, "30-45_BE"),  # below the first edge: clamped into the first bin
    ],
)
def test_boundary_lookups_follow_lo_hi_and_clamp(written, pt, eta1, eta2, category):
    path, factors = written
    got = evaluator(path).evaluate(pt, eta1, eta2)
    assert_ulp_equal(got, factors[category])


def test_missing_category_is_an_error_never_one(scheme):
    factors = ramp_factors(scheme)
    del factors["30-45_EE"]
    with pytest.raises(CorrectionError, match="30-45_EE"):
        build_correction(factors, scheme, "BS_ebe_mass_res_calibration", "test")


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_factor_is_an_error(scheme, bad):
    factors = ramp_factors(scheme) | {"52-62_OE": bad}
    with pytest.raises(CorrectionError, match="52-62_OE"):
        build_correction(factors, scheme, "BS_ebe_mass_res_calibration", "test")


def test_unknown_category_is_an_error(scheme):
    factors = ramp_factors(scheme) | {"30-45_XX": 1.0}
    with pytest.raises(CorrectionError, match="30-45_XX"):
        build_correction(factors, scheme, "BS_ebe_mass_res_calibration", "test")


def test_gzip_copy_and_no_temporary_files_left(tmp_path, scheme):
    cset = build_correction(ramp_factors(scheme), scheme, "BS_ebe_mass_res_calibration", "test")
    paths = write_correction(cset, tmp_path / "c.json", gzip=True)
    assert [p.name for p in paths] == ["c.json", "c.json.gz"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.json", "c.json.gz"]
    assert load_correction(paths[1]).factors(scheme) == load_correction(paths[0]).factors(scheme)


def test_writing_into_a_missing_directory_is_a_correction_error(tmp_path, scheme):
    cset = build_correction(ramp_factors(scheme), scheme, "BS_ebe_mass_res_calibration", "test")
    with pytest.raises(CorrectionError, match="cannot write"):
        write_correction(cset, tmp_path / "nope" / "c.json")


def test_factors_are_read_from_the_original_files(scheme):
    factors = load_correction(LEGACY_2018).factors(scheme)
    assert factors["30-45_EE"] == pytest.approx(0.06286799248413275, rel=1e-15)
    assert load_correction(LEGACY_2018).name == "BS_ebe_mass_res_calibration"


def test_correction_filename():
    path = OutputDir.of(Path("out"), True, "2022preEE", "MC", "x").correction_json("15")
    assert path.name == "res_calib_BS_correction_2022preEE_MC_nanoAODv15.json"


def _values_with_edges(edges: tuple[float, ...], lo: float, hi: float) -> st.SearchStrategy[float]:
    return st.one_of(st.sampled_from(edges), st.floats(lo, hi, allow_nan=False))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_written_file_looks_up_the_category_that_assign_gives(data, scheme, tmp_path_factory):
    table = data.draw(st.lists(st.floats(0.05, 20.0), min_size=36, max_size=36), label="factors")
    factors = dict(zip(scheme.names, table))
    muons = data.draw(
        st.lists(
            st.tuples(
                _values_with_edges(scheme.pt_edges, 0.0, 400.0),
                _values_with_edges(scheme.abseta_edges, 0.0, 3.0),
                _values_with_edges(scheme.abseta_edges, 0.0, 3.0),
            ),
            min_size=1,
            max_size=40,
        ),
        label="muons",
    )
    path = tmp_path_factory.mktemp("prop") / "c.json"
    write_correction(build_correction(factors, scheme, "BS_ebe_mass_res_calibration", "property test"), path)
    pt, eta1, eta2 = (np.array(col, dtype=float) for col in zip(*muons))
    got = load_correction(path).evaluate(pt, eta1, eta2)

    index = scheme.assign(pt, eta1, eta2)
    inside = index != NO_CATEGORY
    assert_ulp_equal(got[inside], [table[i] for i in index[inside]])

    def clamp(x: np.ndarray, edges: tuple[float, ...]) -> np.ndarray:
        return np.clip(x, edges[0], np.nextafter(edges[-1], -np.inf))

    clamped = scheme.assign(clamp(pt, scheme.pt_edges), clamp(eta1, scheme.abseta_edges), clamp(eta2, scheme.abseta_edges))
    assert_ulp_equal(got, [table[i] for i in clamped])
