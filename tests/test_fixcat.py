"""The users' tuning loop: a fit is not good, change that category's override, ``--fixCat`` it, and only it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from getCalibrationFactor import main
from lib.config import DEFAULT_CONFIG, WIDTH_DEFINITIONS
from lib.io.tables import read_csv

pytestmark = [pytest.mark.root, pytest.mark.slow]

CAT = "45-52_BB"
FAST = ["--years", "2018", "--ifbinned", "--no-plots", "--no-dask-client", "--workers", "0"]


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> Path:
    pytest.importorskip("ROOT")
    from lib.generator import SampleRequest, WriteOptions, generate_sample

    root = tmp_path_factory.mktemp("fixcat")
    generate_sample(root, SampleRequest(2018, seed=5, n_data=250_000, n_mc=0, n_signal=0), WriteOptions(files_per_dataset=2))
    return root


def _config(tmp_path: Path, overrides: dict) -> Path:
    raw = yaml.safe_load(DEFAULT_CONFIG.read_text())
    raw["fit"]["overrides"] = overrides
    path = tmp_path / f"config_{len(list(tmp_path.glob('config_*')))}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _rows(out: Path) -> dict[str, dict[str, str]]:
    return {r["cat_name"]: r for r in read_csv(out / "binned" / "2018" / "Data_2018" / "fit_results.csv")}


def test_fixcat_refits_with_a_changed_override_and_records_it(sample, tmp_path, capsys):
    out = tmp_path / "out"
    base = ["--input_path", str(sample), "--output_path", str(out), *FAST]
    assert main(["--steps", "all", *base]) == 0
    before = _rows(out)
    capsys.readouterr()

    # Unchanged configuration: the category is refitted anyway (not taken from the fit cache).
    assert main(["--steps", "step1", "--fixCat", CAT, "--log-level", "INFO", *base]) == 0
    err = capsys.readouterr().err
    assert "re-using" not in err and "fits: 1/1 done" in err
    assert _rows(out) == before

    # A narrower range for this category only: refitted with it, merged, recorded as tuned.
    tuned = _config(tmp_path, {CAT: {"range_gev": [80.0, 102.0]}})
    assert main(["--steps", "step1", "--fixCat", CAT, "--config", str(tuned), *base]) == 0
    printed = capsys.readouterr().out
    after = _rows(out)
    old_sigma, new_sigma = float(before[CAT]["fit_val"]), float(after[CAT]["fit_val"])
    assert f"{CAT} refitted (ok): sigma_fit {old_sigma:.4f} -> {new_sigma:.4f}" in printed, printed
    assert "the correction JSON still holds the earlier fit: refresh it with  python getCalibrationFactor.py --steps step3" in printed
    assert int(after[CAT]["n_events"]) < int(before[CAT]["n_events"])
    assert {n: r for n, r in after.items() if n != CAT} == {n: r for n, r in before.items() if n != CAT}
    provenance = json.loads((out / "binned" / "2018" / "Data_2018" / "provenance.json").read_text())
    assert provenance["tuned_categories"] == {CAT: [CAT]}
    # The next full step 3 with the tuned configuration is consistent with the directory, and says what moved.
    assert main(["--steps", "step3", "--config", str(tuned), *base]) == 0
    printed = capsys.readouterr().out
    assert f"{CAT}: " in printed and " -> " in printed and "error" in printed, printed
    # The same refit with every step (the default --steps all): the refit's lines and step 3's, both.
    assert main(["--fixCat", CAT, "--config", str(tuned), *base]) == 0
    printed = capsys.readouterr().out
    assert f"{CAT} refitted (ok): sigma_fit {new_sigma:.4f} -> {new_sigma:.4f}" in printed, printed
    assert "the refit gives the same fit as before: nothing else to refresh" in printed
    assert "every factor is unchanged against the previous step 3" in printed


def test_step3_alone_describes_the_width_of_the_fits_not_of_its_own_configuration(sample, tmp_path):
    """The JSON says what sigma_fit is in the fits its factors come from, whatever fit.width step 3 alone was given."""
    out = tmp_path / "out"
    base = ["--input_path", str(sample), "--output_path", str(out), *FAST]
    assert main(["--steps", "all", *base]) == 0
    raw = yaml.safe_load(DEFAULT_CONFIG.read_text())
    assert raw["fit"]["width"] == "effective"
    raw["fit"]["width"] = "core"
    core = tmp_path / "core.yaml"
    core.write_text(yaml.safe_dump(raw))
    assert main(["--steps", "step3", "--config", str(core), *base]) == 0
    (path,) = (out / "binned" / "2018" / "Data_2018").glob("res_calib_*.json")
    (correction,) = json.loads(path.read_text())["corrections"]
    description = correction["description"]
    assert f"sigma_fit({WIDTH_DEFINITIONS['effective']})" in description, description


def test_fixcat_refuses_an_override_that_changes_other_categories(sample, tmp_path, capsys):
    out = tmp_path / "out"
    base = ["--input_path", str(sample), "--output_path", str(out), *FAST]
    assert main(["--steps", "all", *base]) == 0
    capsys.readouterr()
    wildcard = _config(tmp_path, {"45-52_*": {"range_gev": [80.0, 102.0]}})
    assert main(["--steps", "step1", "--fixCat", CAT, "--config", str(wildcard), *base]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "fit.overrides change the fits of 45-52_BE, 45-52_BO" in err[0] and "not only 45-52_BB" in err[0]
