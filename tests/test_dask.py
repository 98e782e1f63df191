"""Dask gives the same answer as no Dask: a real LocalCluster on loopback against the default executors."""

from __future__ import annotations

from pathlib import Path

import pytest

from lib.errors import ExecutionError
from lib.executor import DaskExecutor
from tests.helpers_faults import square_always_killed, square_killed_once
from tests.helpers_requests import make_request, with_fields
from tests.helpers_tasks import square_or_crash

pytestmark = [pytest.mark.root, pytest.mark.slow]
pytest.importorskip("distributed")


def test_dask_executor_maps_in_order():
    from lib.cluster import dask_client

    tasks = [5, 0, 3, 1, 4, 2, 7, 6]
    with dask_client("local", 2) as client:
        assert len(client.scheduler_info()["workers"]) == 2
        out = DaskExecutor(client).map(square_or_crash, tasks, [f"t{i}" for i in range(len(tasks))])
    assert out == [t * t for t in tasks]


def test_a_dask_worker_killed_once_is_retried_and_gives_the_same_result(tmp_path):
    from lib.cluster import dask_client

    (tmp_path / "never").touch()
    tasks = [(3, str(tmp_path / "never")), (5, str(tmp_path / "kill-once")), (7, str(tmp_path / "never"))]
    with dask_client("local", 2) as client:
        assert DaskExecutor(client).map(square_killed_once, tasks, ["a", "b", "c"]) == [9, 25, 49]


def test_a_task_killing_every_dask_worker_stops_the_map_naming_it_after_the_others():
    from lib.cluster import dask_client

    finished: dict[int, int] = {}
    with dask_client("local", 2) as client, pytest.raises(ExecutionError) as err:
        DaskExecutor(client).map(square_always_killed, [2, -1, 3], ["t0", "30-45_BB", "t2"], on_result=finished.__setitem__)
    assert str(err.value).startswith("could not run 30-45_BB: Dask workers died running it on every try")
    assert finished == {0: 4, 2: 9}


@pytest.fixture(scope="module")
def runs(config, tmp_path_factory):
    """Steps 1-3 (binned) on one sample, once without Dask and once on a local Dask cluster."""
    pytest.importorskip("ROOT")
    from lib.generator import SampleRequest, WriteOptions, generate_sample
    from lib.route import run

    stage1 = generate_sample(
        tmp_path_factory.mktemp("dask_sample"), SampleRequest(2018, seed=5, n_data=300_000, n_mc=0, n_signal=0), WriteOptions(files_per_dataset=2)
    ).parent
    base = make_request(steps="all", years=("2018",), binned=True, input_path=stage1, plot_formats=(), workers=2)
    out = {}
    for mode in (None, "local"):
        options = with_fields(base, dask_mode=mode, output_path=tmp_path_factory.mktemp(f"dask_{mode}"))
        (out[mode],) = run(options, config)
    return out


def _read(path: Path) -> str:
    return path.read_text()


def test_medians_identical(runs):
    plain, dask = runs[None], runs["local"]
    assert _read(dask.output_dir / "median_for_cats.csv") == _read(plain.output_dir / "median_for_cats.csv")


def test_fits_identical(runs):
    from lib.io.tables import read_csv

    plain = read_csv(runs[None].output_dir / "fit_results.csv")
    dask = read_csv(runs["local"].output_dir / "fit_results.csv")
    assert [r["cat_name"] for r in dask] == [r["cat_name"] for r in plain]
    assert sum(r["quality"] == "ok" for r in plain) >= 30
    for a, b in zip(plain, dask):
        for col in ("fit_val", "fit_err", "quality", "chi2_ndf", "attempts", "label"):
            assert b[col] == a[col], (a["cat_name"], col, a[col], b[col])
    assert runs["local"].failed_fits == runs[None].failed_fits


def test_calibration_factors_identical(runs, scheme):
    from lib.correction.writer import load_correction

    plain, dask = runs[None], runs["local"]
    assert [(f.cat_name, f.calibration_factor, f.calibration_factor_err, f.source) for f in dask.factors.rows] == [
        (f.cat_name, f.calibration_factor, f.calibration_factor_err, f.source) for f in plain.factors.rows
    ]
    assert _read(dask.output_dir / "calibration_factors.csv") == _read(plain.output_dir / "calibration_factors.csv")
    assert load_correction(dask.factors.correction_json).factors(scheme) == load_correction(plain.factors.correction_json).factors(scheme)
