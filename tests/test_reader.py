"""Streaming reader: column projection, Z window, categories, bad rows and bad files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lib.errors import InputError
from lib.io.reader import find_files, merge_reductions, reduce_file
from lib.medians import compute_medians, split_by_category
from lib.resolution import sigma_pred

WINDOW = (75.0, 105.0)


def _table(n: int, seed: int, weights: bool = False) -> pa.Table:
    rng = np.random.default_rng(seed)
    cols = {
        "mu1_pt": rng.uniform(31, 150, n),
        "mu1_ptErr": rng.uniform(0.3, 3.0, n),
        "mu1_eta": rng.uniform(-2.39, 2.39, n),
        "mu2_pt": rng.uniform(21, 60, n),
        "mu2_ptErr": rng.uniform(0.2, 1.5, n),
        "mu2_eta": rng.uniform(-2.39, 2.39, n),
        "dimuon_mass": rng.uniform(70, 110, n),
        "unrelated": rng.normal(size=n),
    }
    if weights:
        cols["wgt_nominal"] = rng.uniform(0.5, 1.5, n)
    return pa.table({k: pa.array(v.astype(np.float32)) for k, v in cols.items()})


def _write(path: Path, table: pa.Table, row_group: int = 1000) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, row_group_size=row_group)
    return path


def test_reduce_matches_direct_computation(tmp_path, scheme, config):
    table = _table(5000, 1)
    path = _write(tmp_path / "a.parquet", table)
    red = reduce_file(path, scheme, WINDOW, None, batch_rows=700)
    d = {k: table.column(k).to_numpy() for k in table.column_names}
    cat = scheme.assign(d["mu1_pt"], np.abs(d["mu1_eta"]), np.abs(d["mu2_eta"]))
    keep = (d["dimuon_mass"] > 75) & (d["dimuon_mass"] < 105) & (cat >= 0)
    assert red.n_read == 5000 and len(red.skim) == keep.sum()
    np.testing.assert_array_equal(red.skim.category, cat[keep])
    np.testing.assert_array_equal(red.skim.mass, d["dimuon_mass"][keep])
    expected = sigma_pred(d["dimuon_mass"], d["mu1_pt"], d["mu1_ptErr"], d["mu2_pt"], d["mu2_ptErr"])[keep]
    np.testing.assert_allclose(red.skim.sigma_pred, expected, rtol=1e-6)
    assert red.skim.weight is None


def test_medians_equal_numpy_exactly(tmp_path, scheme, config):
    reds = [reduce_file(_write(tmp_path / f"{i}.parquet", _table(4000, i)), scheme, WINDOW, None) for i in range(3)]
    skim = merge_reductions(reds)
    groups = split_by_category(skim, scheme.n_categories)
    medians = compute_medians(skim, scheme, config.step2, groups)
    for index, med in enumerate(medians):
        values = skim.sigma_pred[skim.category == index].astype(np.float64)
        assert med.n_events == values.size
        if values.size:
            assert med.median_val_NonCal == np.median(values)
            assert med.median_err_NonCal > 0 or values.size < 2


def test_weights_are_read_for_mc(tmp_path, scheme):
    path = _write(tmp_path / "mc.parquet", _table(3000, 4, weights=True))
    red = reduce_file(path, scheme, WINDOW, "wgt_nominal")
    assert red.skim.weight is not None and red.skim.weight.shape == red.skim.mass.shape
    assert not np.all(red.skim.weight == 1)


def test_bad_rows_are_dropped_and_counted(tmp_path, scheme, caplog):
    table = _table(1000, 2).to_pydict()
    table["mu1_pt"][0] = float("nan")
    table["mu2_ptErr"][1] = -1.0
    table["dimuon_mass"][2] = float("inf")
    table["mu1_ptErr"][3] = 0.0
    path = _write(tmp_path / "bad.parquet", pa.table(table))
    red = reduce_file(path, scheme, WINDOW, None)
    assert red.n_bad == 4
    assert red.bad_by_column == {"mu1_pt": 1, "mu2_ptErr": 1, "dimuon_mass": 1, "mu1_ptErr": 1}
    assert "bad.parquet: dropped 4 rows" in caplog.text


def test_missing_column_names_file_and_column(tmp_path, scheme):
    path = _write(tmp_path / "nocol.parquet", _table(100, 3).drop(["mu2_ptErr"]))
    with pytest.raises(InputError, match=r"nocol\.parquet: missing column 'mu2_ptErr'"):
        reduce_file(path, scheme, WINDOW, None)


def test_non_numeric_column_is_refused(tmp_path, scheme):
    table = _table(100, 3)
    table = table.set_column(table.schema.get_field_index("mu1_eta"), "mu1_eta", pa.array(["x"] * 100))
    path = _write(tmp_path / "str.parquet", table)
    with pytest.raises(InputError, match="column 'mu1_eta' has non-numeric type string"):
        reduce_file(path, scheme, WINDOW, None)


def test_corrupt_file_is_named(tmp_path, scheme):
    path = tmp_path / "corrupt.parquet"
    path.write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(InputError, match="corrupt.parquet: not a readable parquet file"):
        reduce_file(path, scheme, WINDOW, None)


def test_truncated_file_is_named(tmp_path, scheme):
    path = _write(tmp_path / "trunc.parquet", _table(5000, 5))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="trunc.parquet"):
        reduce_file(path, scheme, WINDOW, None)


def test_no_files_shows_glob(tmp_path):
    with pytest.raises(InputError, match=r"no input files match .*2018/compacted/data_\*/\*/\*\.parquet"):
        find_files(tmp_path, "{year}/compacted/data_*/*/*.parquet", "2018")


def test_missing_root_is_named(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        find_files(tmp_path / "nope", "*.parquet", "2018")
