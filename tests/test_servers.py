"""Against real servers: a ``dask scheduler`` with ``dask worker`` processes, and a Dask-Gateway.

The workers start in an empty directory with no PYTHONPATH, as on an analysis facility whose
worker image lacks this project: the run passes only because the client uploads ``lib`` to them.
Both runs must give factors identical to the in-process run of the same sample.
"""

from __future__ import annotations

import csv
import logging
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
YEAR = "2018"

pytestmark = [pytest.mark.root, pytest.mark.slow]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _clean_env() -> dict[str, str]:
    """The environment of a worker image: no PYTHONPATH pointing at this checkout."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",) and not k.startswith("DASK_")}
    env["DASK_LOGGING__DISTRIBUTED"] = "warning"
    return env


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> Path:
    pytest.importorskip("ROOT")
    from lib.generator import SampleRequest, WriteOptions, generate_sample

    root = tmp_path_factory.mktemp("sample")
    generate_sample(root, SampleRequest(2018, seed=11, n_data=150_000, n_mc=0, n_signal=0), WriteOptions(files_per_dataset=3))
    return root


def _calibrate(sample: Path, out: Path, *mode: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, str(REPO / "getCalibrationFactor.py"), "--steps", "all", "--ifbinned", "--years", YEAR,
            "--input_path", str(sample), "--output_path", str(out), "--no-plots", *mode]  # fmt: skip
    return subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=600, env=env)


def _factors(out: Path) -> dict[str, str]:
    path = out / "binned" / YEAR / f"Data_{YEAR}" / "calibration_factors.csv"
    with open(path) as handle:
        return {row["cat_name"]: row["calibration_factor"] for row in csv.DictReader(handle)}


@pytest.fixture(scope="module")
def reference(sample, tmp_path_factory) -> dict[str, str]:
    out = tmp_path_factory.mktemp("inline")
    done = _calibrate(sample, out, "--no-dask-client", "--workers", "0")
    assert done.returncode == 0, done.stderr
    return _factors(out)


def _wait_for(path: Path, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} did not appear")
        time.sleep(0.2)


def test_scheduler_with_workers_elsewhere_gives_the_inline_factors(sample, reference, tmp_path):
    dask = BIN / "dask"
    if not dask.exists():
        pytest.skip("the 'dask' command of distributed is not installed")
    nowhere = tmp_path / "worker-home"
    nowhere.mkdir()
    scheduler_file = tmp_path / "scheduler.json"
    env = _clean_env()
    logs = open(tmp_path / "servers.log", "w")
    scheduler = subprocess.Popen([str(dask), "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                                  "--scheduler-file", str(scheduler_file)], cwd=nowhere, env=env,
                                 stdout=logs, stderr=logs)  # fmt: skip
    worker = None
    try:
        _wait_for(scheduler_file)
        worker = subprocess.Popen([str(dask), "worker", "--scheduler-file", str(scheduler_file), "--nworkers", "2",
                                   "--nthreads", "1", "--no-dashboard", "--local-directory", str(nowhere)], cwd=nowhere,
                                  env=env, stdout=logs, stderr=logs)  # fmt: skip
        import json

        address = json.loads(scheduler_file.read_text())["address"]
        done = _calibrate(sample, tmp_path / "out", "--scheduler", address)
        assert done.returncode == 0, done.stderr
        assert _factors(tmp_path / "out") == reference
        assert "Traceback" not in done.stderr
    finally:
        for proc in (worker, scheduler):
            if proc is not None:
                proc.terminate()
                proc.wait(timeout=30)
        logs.close()


def test_no_scheduler_listening_is_one_error_line_naming_the_address(capfd, caplog):
    """Nothing listens: one error naming the address once the connect timeout (1 s here) is over, and no library chatter."""
    from lib.cluster import dask_client
    from lib.errors import CalibrationError

    address = f"tcp://127.0.0.1:{_free_port()}"
    start = time.monotonic()
    with caplog.at_level(logging.WARNING), pytest.raises(CalibrationError) as err:
        with dask_client("scheduler", 1, scheduler=address, connect_timeout_s=1.0):
            pass
    assert time.monotonic() - start < 10
    message = str(err.value)
    assert "\n" not in message and address in message, message
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert capfd.readouterr().err == ""


GATEWAY_CONFIG = """
c.DaskGateway.address = "127.0.0.1:{api}"
c.Proxy.address = "127.0.0.1:{proxy}"
c.DaskGateway.backend_class = "dask_gateway_server.backends.local.UnsafeLocalBackend"
c.DaskGateway.authenticator_class = "dask_gateway_server.auth.SimpleAuthenticator"
c.SimpleAuthenticator.password = "calib"
c.ClusterConfig.scheduler_cmd = ["{dask}", "scheduler"]
c.ClusterConfig.worker_cmd = ["{dask}", "worker"]
c.ClusterConfig.worker_cores = 1
c.ClusterConfig.worker_threads = 1
c.LocalClusterConfig.clusters_directory = "{clusters}"
"""


def _gateway_env(proxy: int) -> dict[str, str]:
    env = _clean_env()
    env |= {
        "DASK_GATEWAY__ADDRESS": f"http://127.0.0.1:{proxy}",
        "DASK_GATEWAY__AUTH__TYPE": "basic",
        "DASK_GATEWAY__AUTH__KWARGS__USERNAME": "physicist",
        "DASK_GATEWAY__AUTH__KWARGS__PASSWORD": "calib",
    }
    return env


def test_gateway_cluster_gives_the_inline_factors(sample, reference, tmp_path):
    server = shutil.which("dask-gateway-server", path=str(BIN))
    if server is None:
        pytest.skip("dask-gateway-server is not installed (pip install 'dask-gateway-server[local]')")
    api, proxy = _free_port(), _free_port()
    home = tmp_path / "gateway"
    home.mkdir()
    config = home / "gateway_config.py"
    config.write_text(GATEWAY_CONFIG.format(api=api, proxy=proxy, dask=BIN / "dask", clusters=home / "clusters"))
    logs = open(home / "gateway.log", "w")
    gateway = subprocess.Popen([server, "-f", str(config)], cwd=home, env=_clean_env(), stdout=logs, stderr=logs)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", proxy), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or gateway.poll() is not None:
                    raise
                time.sleep(0.3)
        done = _calibrate(sample, tmp_path / "out", "--gateway", "--workers", "2", env=_gateway_env(proxy))
        assert done.returncode == 0, done.stderr
        assert _factors(tmp_path / "out") == reference
        assert "Traceback" not in done.stderr
    finally:
        gateway.terminate()
        gateway.wait(timeout=60)
        logs.close()


def test_no_gateway_listening_is_one_error_line_naming_the_address(sample, tmp_path):
    pytest.importorskip("dask_gateway")
    proxy = _free_port()
    done = _calibrate(sample, tmp_path / "out", "--gateway", env=_gateway_env(proxy))
    assert done.returncode == 1
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and f"127.0.0.1:{proxy}" in lines[0], done.stderr
