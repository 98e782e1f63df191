"""Preparing remote Dask workers: the code zip, and a refusal naming a package whose version differs."""

from __future__ import annotations

import zipfile

import pytest

from lib import cluster
from lib.errors import CalibrationError, ExecutionError


class FakeClient:
    """Records what the client would send; its one worker reports ``versions``."""

    def __init__(self, versions: dict[str, str]) -> None:
        self.versions = versions
        self.uploaded: list[list[str]] = []

    def wait_for_workers(self, n: int, timeout: float) -> None:
        pass

    def upload_file(self, path: str, load: bool) -> None:
        with zipfile.ZipFile(path) as archive:
            self.uploaded.append(archive.namelist())

    def run(self, func):
        return {"tcp://10.0.0.7:4000": self.versions}

    def scheduler_info(self) -> dict:
        return {"workers": {"tcp://10.0.0.7:4000": {}}}


def test_workers_get_the_whole_package_and_matching_versions_pass():
    client = FakeClient(cluster.package_versions())
    cluster.prepare_remote_workers(client, "tcp://10.0.0.1:8786")
    (names,) = client.uploaded
    assert "lib/__init__.py" in names and "lib/fitting/runner.py" in names and "lib/cluster.py" in names
    assert not any("__pycache__" in n for n in names)


def test_a_worker_with_another_numpy_is_refused_in_one_line_naming_it():
    theirs = cluster.package_versions() | {"numpy": "1.0.0"}
    with pytest.raises(CalibrationError, match=r"Dask worker tcp://10.0.0.7:4000 has numpy 1.0.0 \(client .+\)") as err:
        cluster.prepare_remote_workers(FakeClient(theirs), "tcp://10.0.0.1:8786")
    assert "\n" not in str(err.value)


def test_no_worker_joining_is_refused_naming_the_address():
    class Empty(FakeClient):
        def wait_for_workers(self, n: int, timeout: float) -> None:
            raise TimeoutError

    with pytest.raises(CalibrationError, match="no Dask worker joined tcp://10.0.0.1:8786"):
        cluster.prepare_remote_workers(Empty({}), "tcp://10.0.0.1:8786")


def _log_an_error_on_the_worker() -> None:
    import logging

    logging.getLogger("distributed.worker").error("worker-side error probe 4711")


def test_worker_processes_print_nothing_of_their_own(capfd):
    """The local cluster's workers log nothing to the terminal (a shutdown race printed tracebacks under load)."""
    with cluster.dask_client("local", 1) as client:
        client.run(_log_an_error_on_the_worker)
    assert "probe 4711" not in capfd.readouterr().err


def test_a_scheduler_lost_while_preparing_the_workers_is_one_line_naming_it():
    from distributed.comm import CommClosedError

    class Lost(FakeClient):
        def upload_file(self, path: str, load: bool) -> None:
            raise CommClosedError("in <TCP (closed) ConnectionPool.upload_file local=tcp://127.0.0.1:50000>: Stream is closed")

    with pytest.raises(ExecutionError, match=r"^lost the Dask scheduler at tcp://10.0.0.1:8786 \(CommClosedError\); re-run to resume$"):
        with cluster._lost_scheduler_is_one_line("tcp://10.0.0.1:8786"):
            cluster.prepare_remote_workers(Lost({}), "tcp://10.0.0.1:8786")
