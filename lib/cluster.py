"""Where distributed work runs: no Dask, a local cluster, any scheduler, or Dask-Gateway.

No site URL lives in code: addresses come from the command line or Dask's own configuration
(``DASK_SCHEDULER_ADDRESS``, ``DASK_GATEWAY__ADDRESS``, ``DASK_GATEWAY__PROXY_ADDRESS``).
"""

from __future__ import annotations

import logging
import os
from contextlib import contextmanager
from typing import Any, Iterator

from lib.errors import CalibrationError

__all__ = ["dask_client"]

log = logging.getLogger(__name__)


@contextmanager
def dask_client(
    mode: str, workers: int, scheduler: str | None = None, gateway: str | None = None, gateway_workers: int = 4
) -> Iterator[Any]:
    """Yield a ``distributed.Client`` for ``mode`` in {"local", "scheduler", "gateway"}, closed afterwards.

    Raises:
        CalibrationError: dask/distributed (or dask-gateway) is missing, or no address is known.
    """
    try:
        import dask
        from distributed import Client, LocalCluster
    except ImportError as err:
        raise CalibrationError("dask/distributed is not installed: pip install dask distributed (or use --no-dask-client)") from err

    # A worker that dies twice on a task (e.g. ROOT segfault) gives up on it instead of killing the run.
    with dask.config.set({"distributed.scheduler.allowed-failures": 1}):
        if mode == "local":
            # ":0": any free port for the scheduler's HTTP endpoints; with the default 8787 taken by
            # another cluster on the node, distributed leaks the probing socket before falling back.
            with LocalCluster(
                n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0", host="127.0.0.1"
            ) as cluster, Client(cluster) as client:
                log.info("local Dask cluster with %d worker processes", workers)
                yield client
        elif mode == "scheduler":
            address = scheduler or os.environ.get("DASK_SCHEDULER_ADDRESS") or dask.config.get("scheduler-address", None)
            if not address:
                raise CalibrationError("--scheduler needs an address (or set DASK_SCHEDULER_ADDRESS)")
            with Client(address) as client:
                log.info("connected to Dask scheduler %s", address)
                yield client
        elif mode == "gateway":
            with _gateway_client(gateway, gateway_workers) as client:
                yield client
        else:
            raise CalibrationError(f"unknown Dask mode '{mode}'")


@contextmanager
def _gateway_client(address: str | None, n_workers: int) -> Iterator[Any]:
    """Join the first running Gateway cluster, or create one scaled to ``n_workers``."""
    try:
        from dask_gateway import Gateway
    except ImportError as err:
        raise CalibrationError("dask-gateway is not installed: pip install dask-gateway") from err
    gateway = Gateway(address) if address else Gateway()
    running = gateway.list_clusters()
    if running:
        cluster = gateway.connect(running[0].name)
        owned = False
        log.info("joined Dask-Gateway cluster %s", running[0].name)
    else:
        cluster = gateway.new_cluster()
        cluster.scale(n_workers)
        owned = True
        log.info("created Dask-Gateway cluster %s with %d workers", cluster.name, n_workers)
    client = cluster.get_client()
    try:
        yield client
    finally:
        client.close()
        if owned:
            cluster.shutdown()
