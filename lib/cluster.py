"""Where distributed work runs: no Dask, a local cluster, any scheduler, or Dask-Gateway.

Addresses come from the command line or Dask's own configuration (``DASK_SCHEDULER_ADDRESS``,
``DASK_GATEWAY__ADDRESS``), never from code. A scheduler's or Gateway's workers run from an image
without this project: the client uploads ``lib`` as a zip (registered for workers that join later
too) and checks that the workers' ROOT, numpy and pyarrow are the client's.
"""

from __future__ import annotations

import logging
import os
import tempfile
import zipfile
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any, Iterator

from lib import console
from lib.errors import CalibrationError, ExecutionError
from lib.executor import default_workers
from lib.io.cache import source_digest, source_files

# Packages whose versions must agree between client and workers: the fit results and the Arrow
# batches the workers return unpickle only with the client's.
CHECKED_PACKAGES = ("ROOT", "numpy", "pyarrow")

log = logging.getLogger(__name__)


@contextmanager
def dask_client(
    mode: str, workers: int | None = None, scheduler: str | None = None, gateway: str | None = None,
    gateway_options: dict[str, str] | None = None, connect_timeout_s: float | None = None,
) -> Iterator[Any]:  # fmt: skip
    """Yield a ``distributed.Client`` for ``mode`` in {"local", "scheduler", "gateway"}, closed afterwards.

    ``workers``: a local cluster's processes (None: one per core) or a new Gateway cluster's (None:
    ``GATEWAY_WORKERS``). ``connect_timeout_s``: how long a scheduler may take to answer.

    Raises:
        CalibrationError: dask/distributed (or dask-gateway) is missing, no address is known, nothing
            listens there, or the workers' packages differ from the client's.
    """
    try:
        import dask
        import distributed  # noqa: F401 - imported here so that a missing one is this line, not a traceback below
    except ImportError as err:
        raise CalibrationError("dask/distributed is not installed: pip install dask distributed (or use --no-dask-client)") from err
    console.quiet_libraries()  # distributed set up its own loggers on import

    # A worker that dies twice on a task (e.g. ROOT segfault) gives up on it instead of killing the run.
    with dask.config.set({"distributed.scheduler.allowed-failures": 1}):
        if mode == "local":
            with _local_client(workers or default_workers()) as client:
                yield client
        elif mode == "scheduler":
            with _scheduler_client(scheduler, CONNECT_TIMEOUT_S if connect_timeout_s is None else connect_timeout_s) as client:
                yield client
        else:
            where = gateway or "the Dask-Gateway"
            with _gateway_client(gateway, workers or GATEWAY_WORKERS, gateway_options or {}) as client, _lost_scheduler_is_one_line(where):
                prepare_remote_workers(client, where)
                yield client


@contextmanager
def _local_client(workers: int) -> Iterator[Any]:
    """A client of a new cluster of ``workers`` single-threaded processes on this machine.

    ``":0"``: any free dashboard port (with 8787 taken, distributed leaks the probing socket).
    ``silence_logs``: the workers' own loggers print heartbeat warnings and shutdown tracebacks on a
    busy machine, while task failures reach the tool through the client anyway.
    """
    from distributed import Client, LocalCluster

    with LocalCluster(
        n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0", host="127.0.0.1", silence_logs=logging.CRITICAL
    ) as cluster, Client(cluster) as client:  # fmt: skip
        log.info("local Dask cluster with %d worker processes", workers)
        yield client


@contextmanager
def _scheduler_client(address: str | None, timeout_s: float) -> Iterator[Any]:
    """A client of the scheduler at ``address`` (None: ``DASK_SCHEDULER_ADDRESS`` or Dask's configuration), its workers prepared."""
    import dask
    from distributed import Client

    address = address or os.environ.get("DASK_SCHEDULER_ADDRESS") or dask.config.get("scheduler-address", None)
    if not address:
        raise CalibrationError("--scheduler needs an address (or set DASK_SCHEDULER_ADDRESS)")
    try:
        client = Client(address, timeout=timeout_s)
    except OSError as err:
        raise CalibrationError(f"no Dask scheduler answers at {address} ({type(err).__name__})") from err
    with client, _lost_scheduler_is_one_line(address):
        log.info("connected to Dask scheduler %s", address)
        prepare_remote_workers(client, address)
        yield client


@contextmanager
def _lost_scheduler_is_one_line(address: str) -> Iterator[None]:
    """A connection to the scheduler closed under the client outside a map (e.g. during the upload) is one ``ExecutionError`` line."""
    from distributed.comm import CommClosedError

    try:
        yield
    except CommClosedError as err:
        raise ExecutionError(f"lost the Dask scheduler at {address} ({type(err).__name__}); re-run to resume") from err


CONNECT_TIMEOUT_S = 20
# Workers a new Dask-Gateway cluster is scaled to when none are asked for.
GATEWAY_WORKERS = 4
# How long a scheduler or a new Gateway cluster may take to offer its first worker.
WORKER_WAIT_S = 300


def package_versions() -> dict[str, str]:
    """Installed versions of ``CHECKED_PACKAGES`` in this process (client or worker)."""
    found = {}
    for name in CHECKED_PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = _imported_version(name)
    return found


def _imported_version(name: str) -> str:
    """Version of a package installed without pip metadata (ROOT from an LCG view or conda)."""
    try:
        module = __import__(name)
    except ImportError:
        return "not installed"
    if name == "ROOT":
        return str(module.gROOT.GetVersion())
    return str(getattr(module, "__version__", "unknown"))


def _code_zip(directory: Path) -> Path:
    """``lib`` with its C++ sources as ``ebe_calib_<digest of the sources>.zip``: workers never reuse a stale copy."""
    target = directory / f"ebe_calib_{source_digest('lib')}.zip"
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for relative, path in sorted(source_files("lib").items()):
            archive.write(path, f"lib/{relative}")
    return target


def prepare_remote_workers(client: Any, address: str) -> None:
    """Wait for a first worker, ship the code to every worker (present and future), check their packages.

    Raises:
        CalibrationError: no worker joined in time, or a worker's ROOT, numpy or pyarrow differs
            from the client's (named in the line).
    """
    try:
        client.wait_for_workers(1, timeout=WORKER_WAIT_S)
    except TimeoutError as err:
        raise CalibrationError(f"no Dask worker joined {address} within {WORKER_WAIT_S} s") from err
    with tempfile.TemporaryDirectory(prefix="ebe-calib-code-") as tmp:
        client.upload_file(str(_code_zip(Path(tmp))), load=True)
    mine = package_versions()
    for worker, theirs in client.run(package_versions).items():
        differ = [f"{name} {theirs.get(name)} (client {version})" for name, version in mine.items() if theirs.get(name) != version]
        if differ:
            raise CalibrationError(f"Dask worker {worker} has {', '.join(differ)}: use a worker image with the client's versions")
    log.info("code uploaded to %d Dask workers, their packages match", len(client.scheduler_info().get("workers", {})))


@contextmanager
def _gateway_client(address: str | None, n_workers: int, options: dict[str, str]) -> Iterator[Any]:
    """Join the first running Gateway cluster, or create one with ``options`` scaled to ``n_workers``."""
    try:
        from dask_gateway import Gateway
    except ImportError as err:
        raise CalibrationError("dask-gateway is not installed: pip install dask-gateway") from err

    class OnceClosedGateway(Gateway):  # type: ignore[misc,valid-type]
        """dask-gateway 2026.3's ``close`` fails when called twice (again from ``__del__``): close once."""

        def close(self) -> None:
            if not getattr(self, "_ebe_closed", False):
                self._ebe_closed = True
                super().close()

    gateway = OnceClosedGateway(address) if address else OnceClosedGateway()
    where = address or gateway.address
    try:
        running = gateway.list_clusters()
    except (OSError, TimeoutError) as err:
        gateway.close()
        raise CalibrationError(f"no Dask-Gateway answers at {where} ({type(err).__name__}: {err})") from err
    if running:
        cluster = gateway.connect(running[0].name)
        owned = False
        log.info("joined Dask-Gateway cluster %s", running[0].name)
    else:
        cluster = gateway.new_cluster(_cluster_options(gateway, options))
        cluster.scale(n_workers)
        owned = True
        log.info("created Dask-Gateway cluster %s with %d workers", cluster.name, n_workers)
    # The cluster holds a Gateway of its own, which its close() closes and its __del__ would close again.
    cluster.gateway.__class__ = OnceClosedGateway
    client = cluster.get_client()
    try:
        yield client
    finally:
        client.close()
        if owned:
            cluster.shutdown()
        gateway.close()


def _cluster_options(gateway: Any, options: dict[str, str]) -> Any:
    """The Gateway's cluster options with ``options`` (``--gateway-option worker_cores=2``) set, by the server's own names."""
    chosen = gateway.cluster_options()
    for key, value in options.items():
        if key not in chosen:
            known = ", ".join(sorted(chosen)) or "none"
            raise CalibrationError(f"Dask-Gateway has no cluster option '{key}' (it offers: {known})")
        current = chosen[key]
        chosen[key] = type(current)(value) if isinstance(current, (int, float)) and not isinstance(current, bool) else value
    return chosen
