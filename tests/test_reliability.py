"""Bad inputs through the CLI: one line naming the problem, exit code 1, and nothing half-written.

Rows already covered elsewhere (message only) are listed in ``REFUSALS`` too, because here each
refusal is also checked to leave no output file behind. Inputs are a few thousand generated
events; no test fits a peak.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Callable

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from getCalibrationFactor import main
from lib.config import DEFAULT_CONFIG, load_config
from lib.executor import ProcessExecutor
from lib.io.cache import inputs_fingerprint
from lib.io.reader import FileReduction
from lib.io.tables import read_csv, write_csv
from lib.run.reduction import FileReading, Keep, ReadTask, read_task
from tests.helpers_tables import random_stage1_table

YEAR = "2018"
FAST = ["--no-dask-client", "--workers", "0", "--no-plots"]


def _table(n: int = 3000, seed: int = 1) -> pa.Table:
    """Events spread over every category, mostly inside the Z window."""
    return random_stage1_table(n, seed, mass_range=(76.0, 104.0))


def _write(root: Path, name: str, table: pa.Table) -> Path:
    """One parquet file where the default data glob finds it."""
    path = root / YEAR / "compacted" / "data_A" / "0" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, row_group_size=1000)
    return path


def _corrupt(root: Path) -> Path:
    """A file that is not parquet at all."""
    path = _write(root, "corrupt.parquet", _table(10))
    path.write_bytes(b"PAR1 this is not parquet")
    return path


def _truncated(root: Path) -> Path:
    """A file cut in half: its footer is gone."""
    path = _write(root, "trunc.parquet", _table())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def _damaged_pages(root: Path) -> Path:
    """A file whose footer is intact but whose data pages are garbage: it opens, then fails to read."""
    path = _write(root, "pages.parquet", _table())
    data = bytearray(path.read_bytes())
    data[4 : len(data) // 2] = b"\xff" * (len(data) // 2 - 4)
    path.write_bytes(bytes(data))
    return path


def _with_column(table: pa.Table, name: str, values: list[float]) -> pa.Table:
    return table.set_column(table.schema.get_field_index(name), name, pa.array(np.array(values, dtype=np.float32)))


def _argv(inputs: Path, out: Path, *extra: str) -> list[str]:
    return ["--input_path", str(inputs), "--output_path", str(out), *FAST, *extra]


def _config_variant(tmp_path: Path, mutate: Callable[[dict], None]) -> Path:
    raw = yaml.safe_load(DEFAULT_CONFIG.read_text())
    mutate(raw)
    path = tmp_path / "variant.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _refused(capsys: pytest.CaptureFixture[str], argv: list[str], fragment: str) -> str:
    """Run the CLI, expect exit code 1 and exactly one ``error:`` line containing ``fragment``; return it."""
    assert main(argv) == 1
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and fragment in lines[0], lines
    return lines[0]


def _files_under(path: Path) -> list[Path]:
    return sorted(p for p in path.rglob("*") if p.is_file()) if path.exists() else []


def _snapshot(path: Path) -> dict[Path, bytes]:
    """Every output under ``path`` (the ``.lock`` that each run rewrites with its process id aside)."""
    return {p: p.read_bytes() for p in _files_under(path) if p.name != ".lock"}


def _output_dir(out: Path) -> Path:
    return out / "unbinned" / YEAR / f"Data_{YEAR}"


# ---------------------------------------------------------------------------------------------
# Refusals: (setup(tmp_path) -> (argv, expected fragment)); the output root must stay empty.


def _no_input_files(tmp: Path) -> tuple[list[str], str]:
    (tmp / "in").mkdir()
    return ["--steps", "step2", *_argv(tmp / "in", tmp / "out")], f"no input files match {tmp / 'in'}/{YEAR}/compacted/data_*/*/*.parquet"


def _bad_file(make: Callable[[Path], Path], message: str) -> Callable[[Path], tuple[list[str], str]]:
    def setup(tmp: Path) -> tuple[list[str], str]:
        _write(tmp / "in", "good.parquet", _table())
        path = make(tmp / "in")
        return ["--steps", "step2", *_argv(tmp / "in", tmp / "out")], f"{path}: {message}"

    return setup


def _missing_column(root: Path) -> Path:
    return _write(root, "nocol.parquet", _table().drop(["mu2_ptErr"]))


def _string_column(root: Path) -> Path:
    table = _table(100)
    return _write(root, "str.parquet", table.set_column(table.schema.get_field_index("mu1_eta"), "mu1_eta", pa.array(["x"] * 100)))


def _all_outside_categories(tmp: Path) -> tuple[list[str], str]:
    table = _table()
    _write(tmp / "in", "soft.parquet", _with_column(table, "mu1_pt", [29.0] * table.num_rows))
    return ["--steps", "step2", *_argv(tmp / "in", tmp / "out")], "no events of 1 files under"


def _unknown_fixcat(tmp: Path) -> tuple[list[str], str]:
    _write(tmp / "in", "good.parquet", _table())
    return ["--steps", "step1", "--fixCat", "30-45_ZZ", *_argv(tmp / "in", tmp / "out")], "unknown category '30-45_ZZ'; valid: 30-45_BB, "


def _closure_without_json(tmp: Path) -> tuple[list[str], str]:
    _write(tmp / "in", "good.parquet", _table())
    return ["--closure_test", *_argv(tmp / "in", tmp / "out")], "no calibration JSON"


def _malformed_yaml(tmp: Path) -> tuple[list[str], str]:
    config = tmp / "bad.yaml"
    config.write_text("fit: [\n")
    return ["--config", str(config), *_argv(tmp / "in", tmp / "out")], "not valid YAML at line"


def _unknown_override_parameter(tmp: Path) -> tuple[list[str], str]:
    config = _config_variant(tmp, lambda r: r["fit"]["overrides"].update({"30-45_*": {"params": {"nn": {"value": 2}}}}))
    return ["--config", str(config), *_argv(tmp / "in", tmp / "out")], "unknown fit parameter"


def _unwritable_output(tmp: Path) -> tuple[list[str], str]:
    _write(tmp / "in", "good.parquet", _table())
    (tmp / "out").write_text("")
    return ["--steps", "step2", *_argv(tmp / "in", tmp / "out" / "sub")], "is a file, not a directory"


REFUSALS = {
    "no_input_files": _no_input_files,
    "not_parquet": _bad_file(_corrupt, "not a readable parquet file"),
    "truncated": _bad_file(_truncated, "not a readable parquet file"),
    "damaged_pages": _bad_file(_damaged_pages, "read failed, file truncated or corrupt"),
    "missing_column": _bad_file(_missing_column, "missing column 'mu2_ptErr'"),
    "non_numeric_column": _bad_file(_string_column, "column 'mu1_eta' has non-numeric type string"),
    "all_outside_categories": _all_outside_categories,
    "unknown_fixcat": _unknown_fixcat,
    "closure_without_json": _closure_without_json,
    "malformed_yaml": _malformed_yaml,
    "unknown_override_parameter": _unknown_override_parameter,
    "unwritable_output": _unwritable_output,
}


@pytest.mark.parametrize("row", list(REFUSALS))
def test_refusal_is_one_line_and_leaves_no_output(row, tmp_path, capsys):
    argv, fragment = REFUSALS[row](tmp_path)
    _refused(capsys, argv, fragment)
    out = tmp_path / "out"
    assert not (out.is_dir() and _files_under(out)), _files_under(out)


# ---------------------------------------------------------------------------------------------
# --skip-bad-files


def test_skip_bad_files_warns_counts_and_proceeds(tmp_path, caplog, capsys):
    inputs = tmp_path / "in"
    good = [_write(inputs, f"good{i}.parquet", _table(seed=i)) for i in range(2)]
    bad = sorted([_corrupt(inputs), _truncated(inputs), _damaged_pages(inputs)])
    assert main(["--steps", "step2", "--skip-bad-files", *_argv(inputs, tmp_path / "out")]) == 0
    for path in bad:
        assert f"skipping {path}: " in caplog.text
    assert f"skipped 3 of 5 files: {', '.join(map(str, bad))}" in caplog.text
    out_dir = _output_dir(tmp_path / "out")
    assert (out_dir / "median_for_cats.csv").exists()
    provenance = json.loads((out_dir / "provenance.json").read_text())
    assert provenance["skipped_files"] == [str(p) for p in bad]
    assert provenance["inputs_fingerprint"] == inputs_fingerprint(good)
    assert not list((out_dir / ".cache").glob("reduction-*")), "a reduction missing files must not be cached"
    _refused(capsys, ["--steps", "step2", *_argv(inputs, tmp_path / "out")], "corrupt.parquet: not a readable parquet file")


def test_skip_bad_files_with_every_file_bad_is_one_line(tmp_path, capsys):
    _corrupt(tmp_path / "in")
    _truncated(tmp_path / "in")
    _refused(capsys, ["--steps", "step2", "--skip-bad-files", *_argv(tmp_path / "in", tmp_path / "out")],
             "all 2 input files are unreadable, e.g. ")  # fmt: skip
    assert not _files_under(tmp_path / "out")


@pytest.mark.parametrize(("make", "fragment"), [(_missing_column, "missing column"), (_string_column, "non-numeric type")])
def test_skip_bad_files_keeps_schema_errors_fatal(tmp_path, capsys, make, fragment):
    _write(tmp_path / "in", "good.parquet", _table())
    make(tmp_path / "in")
    _refused(capsys, ["--steps", "step2", "--skip-bad-files", *_argv(tmp_path / "in", tmp_path / "out")], fragment)


def test_skipping_task_runs_in_a_worker_process(tmp_path, scheme, config):
    """The task must stay picklable and its skip must survive the trip back from a worker."""
    good, bad = _write(tmp_path, "good.parquet", _table()), _corrupt(tmp_path)
    reading = FileReading(scheme, config.selection.z_window_gev, None, 1000, Keep(events=True))
    tasks = [ReadTask(str(p), reading, skip_bad=True) for p in (good, bad)]
    assert pickle.loads(pickle.dumps(read_task)) is read_task
    reduction, message = ProcessExecutor(1).map(read_task, tasks, ["good", "bad"])
    assert isinstance(reduction, FileReduction) and reduction.n_read == 3000
    assert message == f"{bad}: not a readable parquet file (ArrowInvalid)"


# ---------------------------------------------------------------------------------------------
# Bad rows are dropped and counted per file and column; the run goes on


def test_bad_values_in_every_kinematic_column_are_dropped_and_counted(tmp_path, caplog, scheme):
    table = _table()
    bad_values = {
        "mu1_pt": float("nan"), "mu1_ptErr": -0.5, "mu1_eta": float("inf"), "mu2_pt": -40.0,
        "mu2_ptErr": float("inf"), "mu2_eta": float("nan"), "dimuon_mass": -91.0,
    }  # fmt: skip
    for row, (name, value) in enumerate(bad_values.items()):
        values = table.column(name).to_numpy().copy()
        values[row] = value
        table = _with_column(table, name, values.tolist())
    _write(tmp_path / "in", "bad.parquet", table)
    assert main(["--steps", "step2", *_argv(tmp_path / "in", tmp_path / "out")]) == 0
    detail = ", ".join(f"{name}: 1" for name in sorted(bad_values))
    assert f"bad.parquet: dropped 7 rows with NaN/inf or non-positive values ({detail})" in caplog.text
    rows = table.slice(len(bad_values)).to_pydict()
    kept = scheme.assign(np.array(rows["mu1_pt"]), np.abs(rows["mu1_eta"]), np.abs(rows["mu2_eta"])) >= 0
    n_events = sum(int(r["n_events"]) for r in read_csv(_output_dir(tmp_path / "out") / "median_for_cats.csv"))
    assert n_events == int(kept.sum()), "negative eta is valid and must be kept"


# ---------------------------------------------------------------------------------------------
# An empty category is reported, not fitted, and gets the step-3 fallback


def _fit_rows(out_dir: Path, factor: float = 1.2) -> list[dict[str, object]]:
    """``fit_results.csv`` rows as step 1 would write them, sigma_fit = factor x median, for every filled category."""
    return [
        {
            "cat_name": m["cat_name"], "fit_val": factor * float(m["median_val_NonCal"]), "fit_err": 0.01, "status": 0,
            "cov_qual": 3, "quality": "ok", "reason": "", "chi2_ndf": 1.0, "n_events": int(m["n_events"]),
            "sum_weights": float(m["n_events"]), "attempts": 1, "label": "nominal",
        }
        for m in read_csv(out_dir / "median_for_cats.csv")
        if int(m["n_events"])
    ]  # fmt: skip


@pytest.mark.parametrize("kept", [0, 40], ids=["empty", "too_few"])
def test_empty_category_is_reported_not_fitted_and_falls_back(tmp_path, caplog, scheme, config, kept: int):
    table = _table(6000)
    category = scheme.assign(table.column("mu1_pt").to_numpy(), np.abs(table.column("mu1_eta").to_numpy()),
                             np.abs(table.column("mu2_eta").to_numpy()))  # fmt: skip
    target = category == scheme.index_of("62-200_EE")
    assert np.count_nonzero(target) > kept
    keep = ~target | (np.cumsum(target) <= kept)
    _write(tmp_path / "in", "part.parquet", table.filter(pa.array(keep)))
    argv = _argv(tmp_path / "in", tmp_path / "out")
    assert main(["--steps", "step2", *argv]) == 0
    out_dir = _output_dir(tmp_path / "out")
    write_csv(out_dir / "fit_results.csv", _fit_rows(out_dir))
    assert main(["--steps", "step1", "--fixCat", "62-200_EE", *argv]) == 0
    minimum = config.fit.min_events
    assert f"category 62-200_EE has {kept} events (fit.min_events {minimum}): not fitted, step 3 applies its fallback" in caplog.text
    fits = {r["cat_name"]: r for r in read_csv(out_dir / "fit_results.csv")}
    assert len(fits) == 36 and fits["62-200_EE"]["reason"] == f"{kept} events, fewer than fit.min_events = {minimum}: not fitted"
    assert main(["--steps", "step3", *argv]) == 0
    factors = {r["cat_name"]: r for r in read_csv(out_dir / "calibration_factors.csv")}
    assert factors["62-200_EE"]["source"].startswith("fallback:neighbour_average(")
    assert float(factors["62-200_EE"]["calibration_factor"]) == pytest.approx(1.2)


# ---------------------------------------------------------------------------------------------
# An output directory holds one configuration


@pytest.fixture()
def filled(tmp_path: Path) -> tuple[list[str], Path]:
    """argv of a step-2 run with the default configuration, and the output directory it filled."""
    _write(tmp_path / "in", "good.parquet", _table())
    argv = ["--steps", "step2", *_argv(tmp_path / "in", tmp_path / "out")]
    assert main(argv) == 0
    return argv, _output_dir(tmp_path / "out")


def _bins_variant(tmp_path: Path) -> Path:
    return _config_variant(tmp_path, lambda r: r["fit"].update(bins=60))


@pytest.mark.parametrize(
    ("field", "value", "fragment"),
    [("config_fingerprint", "0123456789abcdef", "(config 0123456789abcdef vs "), ("binned", True, "(binned True vs False)"),
     ("sample", "MC", "(sample MC vs Data)")],
)  # fmt: skip
def test_other_configuration_is_refused_and_left_untouched(filled, capsys, field, value, fragment):
    argv, out_dir = filled
    provenance = out_dir / "provenance.json"
    provenance.write_text(json.dumps(json.loads(provenance.read_text()) | {field: value}))
    before = _snapshot(out_dir)
    line = _refused(capsys, argv, fragment)
    assert line.startswith(f"error: output directory {out_dir} holds results of a different configuration")
    assert line.endswith("; use another --extraString/--output_path or --overwrite")
    assert _snapshot(out_dir) == before


def test_changed_config_file_is_refused(filled, tmp_path, capsys):
    argv, out_dir = filled
    old = json.loads((out_dir / "provenance.json").read_text())["config_fingerprint"]
    _refused(capsys, [*argv, "--config", str(_bins_variant(tmp_path))], f"(config {old} vs ")


def test_overwrite_replaces_the_other_configuration(filled, tmp_path):
    argv, out_dir = filled
    stale = out_dir / "closure_verdict.txt"
    stale.write_text("PASS\n")
    variant = _bins_variant(tmp_path)
    assert main([*argv, "--config", str(variant), "--overwrite", "--backup"]) == 0
    assert not stale.exists(), "an output of the old configuration outlived --overwrite"
    assert [p.name for p in out_dir.glob("backup_*/closure_verdict.txt")] == ["closure_verdict.txt"]
    assert json.loads((out_dir / "provenance.json").read_text())["config_fingerprint"] == load_config(variant).fingerprint()
    assert (out_dir / "median_for_cats.csv").exists()


def test_fixcat_into_other_configuration_is_refused_even_with_overwrite(filled, tmp_path, capsys):
    argv, out_dir = filled
    before = _snapshot(out_dir)
    fix = ["--steps", "step1", "--fixCat", "30-45_BB", "--overwrite", "--config", str(_bins_variant(tmp_path))]
    _refused(capsys, [*argv[2:], *fix], "--fixCat cannot merge into it")
    assert _snapshot(out_dir) == before


def test_new_inputs_with_the_same_configuration_are_accepted(filled, tmp_path):
    argv, out_dir = filled
    old = json.loads((out_dir / "provenance.json").read_text())["inputs_fingerprint"]
    _write(tmp_path / "in", "more.parquet", _table(seed=9))
    assert main(argv) == 0
    assert json.loads((out_dir / "provenance.json").read_text())["inputs_fingerprint"] != old
