"""Streaming reader: column projection, Z window, categories, bad rows and bad files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lib.errors import InputError
from lib.io.reader import FileReading, FileReduction, Keep, find_files, reduce_file
from lib.resolution import sigma_pred
from tests.helpers_tables import random_stage1_table

WINDOW = (75.0, 105.0)


def _table(n: int, seed: int, weights: bool = False) -> pa.Table:
    """Events over 70-110 GeV (some outside the window) with a column the reader must ignore."""
    return random_stage1_table(n, seed, unrelated=True, weights=weights)


def _reduce(path: Path, scheme, weight: str | None = None, batch_rows: int = 500_000, threads: int | None = None) -> FileReduction:
    """The file's skim and counts, as the unbinned steps read it."""
    return reduce_file(path, FileReading(scheme, WINDOW, weight, batch_rows, Keep(events=True)), threads)


def _write(path: Path, table: pa.Table, row_group: int = 1000) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, row_group_size=row_group)
    return path


def test_reduce_matches_direct_computation(tmp_path, scheme, config):
    table = _table(5000, 1)
    path = _write(tmp_path / "a.parquet", table)
    red = _reduce(path, scheme, None, batch_rows=700)
    d = {k: table.column(k).to_numpy() for k in table.column_names}
    cat = scheme.assign(d["mu1_pt"], np.abs(d["mu1_eta"]), np.abs(d["mu2_eta"]))
    keep = (d["dimuon_mass"] > 75) & (d["dimuon_mass"] < 105) & (cat >= 0)
    assert red.n_read == 5000 and len(red.skim) == keep.sum()
    np.testing.assert_array_equal(red.skim.category, cat[keep])
    np.testing.assert_array_equal(red.skim.mass, d["dimuon_mass"][keep])
    expected = sigma_pred(d["dimuon_mass"], d["mu1_pt"], d["mu1_ptErr"], d["mu2_pt"], d["mu2_ptErr"])[keep]
    np.testing.assert_allclose(red.skim.sigma_pred, expected, rtol=1e-6)
    assert red.skim.weight is None


def test_weights_are_read_for_mc(tmp_path, scheme):
    path = _write(tmp_path / "mc.parquet", _table(3000, 4, weights=True))
    red = _reduce(path, scheme, "wgt_nominal")
    assert red.skim.weight is not None and red.skim.weight.shape == red.skim.mass.shape
    assert not np.all(red.skim.weight == 1)


def test_bad_rows_are_dropped_and_counted(tmp_path, scheme, caplog):
    table = _table(1000, 2).to_pydict()
    table["mu1_pt"][0] = float("nan")
    table["mu2_ptErr"][1] = -1.0
    table["dimuon_mass"][2] = float("inf")
    table["mu1_ptErr"][3] = 0.0
    path = _write(tmp_path / "bad.parquet", pa.table(table))
    red = _reduce(path, scheme)
    assert red.n_bad == 4
    assert red.bad_by_column == {"mu1_pt": 1, "mu2_ptErr": 1, "dimuon_mass": 1, "mu1_ptErr": 1}
    assert "bad.parquet: dropped 4 rows" in caplog.text


def test_missing_column_names_file_and_column(tmp_path, scheme):
    path = _write(tmp_path / "nocol.parquet", _table(100, 3).drop(["mu2_ptErr"]))
    with pytest.raises(InputError, match=r"nocol\.parquet: missing column 'mu2_ptErr'"):
        _reduce(path, scheme)


def test_non_numeric_column_is_refused(tmp_path, scheme):
    table = _table(100, 3)
    table = table.set_column(table.schema.get_field_index("mu1_eta"), "mu1_eta", pa.array(["x"] * 100))
    path = _write(tmp_path / "str.parquet", table)
    with pytest.raises(InputError, match="column 'mu1_eta' has non-numeric type string"):
        _reduce(path, scheme)


def test_corrupt_file_is_named(tmp_path, scheme):
    path = tmp_path / "corrupt.parquet"
    path.write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(InputError, match="corrupt.parquet: not a readable parquet file"):
        _reduce(path, scheme)


def test_truncated_file_is_named(tmp_path, scheme):
    path = _write(tmp_path / "trunc.parquet", _table(5000, 5))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="trunc.parquet"):
        _reduce(path, scheme)


def test_no_files_shows_glob(tmp_path):
    with pytest.raises(InputError, match=r"no input files match .*2018/compacted/data_\*/\*/\*\.parquet"):
        find_files(tmp_path, "{year}/compacted/data_*/*/*.parquet", "2018")


def test_missing_root_is_named(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        find_files(tmp_path / "nope", "*.parquet", "2018")


def _table_with_bad_rows(n: int) -> tuple[pa.Table, list[int]]:
    """A table whose bad rows sit in different chunks and batches; returns it and the bad row indices."""
    table = _table(n, 6).to_pydict()
    bad = {
        0: {"mu1_pt": float("nan"), "mu2_ptErr": -1.0},  # two bad columns: counted once, under the first
        1: {"mu1_eta": float("inf"), "dimuon_mass": 50.0},  # bad and outside the window: counted as bad
        2: {"dimuon_mass": float("nan")},
        3: {"mu2_pt": None},  # a null reads as NaN
        n // 2: {"mu1_ptErr": 0.0},
        n - 1: {"mu2_eta": float("-inf")},
    }
    for row, values in bad.items():
        for col, value in values.items():
            table[col][row] = value
    return pa.table(table, schema=_table(1, 0).schema), sorted(bad)


def test_bad_rows_counted_by_first_bad_column_before_the_window(tmp_path, scheme, monkeypatch):
    n = 3000
    table, bad_rows = _table_with_bad_rows(n)
    path = _write(tmp_path / "bad.parquet", table, row_group=400)
    mass = table.column("dimuon_mass").to_numpy(zero_copy_only=False)
    good_mass = np.delete(mass, bad_rows)
    expected_window = int(np.count_nonzero(~((good_mass > 75) & (good_mass < 105))))
    monkeypatch.setattr("lib.io.reader.CHUNK_ROWS", 128)
    reductions = [_reduce(path, scheme, None, batch_rows=b, threads=t) for b, t in ((500_000, 1), (700, 3))]
    for red in reductions:
        assert red.bad_by_column == {c: 1 for c in ("mu1_pt", "mu1_eta", "dimuon_mass", "mu2_pt", "mu1_ptErr", "mu2_eta")}
        assert red.n_bad == len(bad_rows) and red.n_outside_window == expected_window
        assert red.n_read == n == red.n_bad + red.n_outside_window + red.n_outside_categories + len(red.skim)


def test_skim_independent_of_batches_chunks_and_threads(tmp_path, scheme, monkeypatch):
    path = _write(tmp_path / "mc.parquet", _table(5000, 7, weights=True), row_group=900)
    whole = _reduce(path, scheme, "wgt_nominal", threads=1)
    monkeypatch.setattr("lib.io.reader.CHUNK_ROWS", 97)
    pieces = _reduce(path, scheme, "wgt_nominal", batch_rows=1000, threads=4)
    for name in ("category", "mass", "sigma_pred", "weight"):
        assert getattr(whole.skim, name).dtype == getattr(pieces.skim, name).dtype
        np.testing.assert_array_equal(getattr(whole.skim, name), getattr(pieces.skim, name))
    assert (whole.n_outside_window, whole.n_outside_categories) == (pieces.n_outside_window, pieces.n_outside_categories)


@pytest.mark.slow
def test_one_reduction_thread_on_a_dask_worker():
    """A Dask worker already runs one task per core: a file's reduction must not add threads there."""
    pytest.importorskip("distributed")
    from lib.cluster import dask_client
    from lib.executor import default_workers
    from lib.io.reader import _reduction_threads

    assert _reduction_threads() == default_workers()
    with dask_client("local", 1) as client:
        assert client.submit(_reduction_threads, pure=False).result() == 1


def test_null_in_an_integer_column_is_a_bad_row(tmp_path, scheme):
    table = _table(500, 8)
    pt = pa.array([None] + [40] * 499, pa.int32())
    path = _write(tmp_path / "int.parquet", table.set_column(table.schema.get_field_index("mu1_pt"), "mu1_pt", pt))
    red = _reduce(path, scheme)
    assert red.bad_by_column == {"mu1_pt": 1} and red.n_bad == 1
    assert red.n_read == 500 == red.n_bad + red.n_outside_window + red.n_outside_categories + len(red.skim)
