"""Run a module-level function over picklable tasks: in-process, on a local process pool, or on Dask; and own every local pool.

A ROOT segfault or a killed worker must neither take the other tasks with it nor turn into a
result: the local pool re-runs every task in flight at the crash once, alone in a fresh process;
Dask re-runs a dead worker's tasks itself. A task that still cannot run stops the run with one
``ExecutionError`` naming every such task, after the others have finished.

Every local process the tool starts (fit workers, figure processes, sample writers) comes from
``worker_pool`` and ends with the run: on Ctrl-C, SIGTERM or SIGHUP, and by itself when the main
process is gone (killed with SIGKILL), without writing anything more.
"""

from __future__ import annotations

import functools
import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
from concurrent.futures import FIRST_COMPLETED, CancelledError, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.connection import wait as wait_for_sentinels
from typing import Any, Callable, Sequence

from lib import console
from lib.errors import CalibrationError, ExecutionError

log = logging.getLogger(__name__)

PROGRESS_ENV = "EBE_PROGRESS"  # "1" forces the live progress line, "0" silences it
# How long a stopped worker may take to unwind its task (a figure's temp file removed) before it is killed.
STOP_GRACE_S = 2.0


@dataclass(frozen=True)
class TaskFailure:
    """An expected failure (a ``CalibrationError``: damaged file, missing column) handed back as a value.

    Raised in a Dask worker it would log a "Compute Failed" traceback while the other tasks keep
    running; as a value, the client cancels what is pending and raises it once, as one line.
    """

    error_type: type[CalibrationError]
    message: str


def _captured(func: Callable[[Any], Any], level: int, task: Any) -> Any:
    """Run ``func(task)`` in a worker, logging like the client (set up here: a worker plugin would precede the code upload)."""
    console.configure_once(level)
    try:
        return func(task)
    except CalibrationError as err:
        return TaskFailure(type(err), str(err))


# ---- local worker pools: one mechanism for fits, figures and sample writing ----

# The read end of this process's lifeline, which every worker holds; the write end stays here alone,
# so a worker reads end-of-file exactly when this process is gone, however it ended.
_LIFELINE: list[Connection] = []
# Whether this worker process is inside a task (a stop then unwinds it first) or idle (it exits at once).
_IN_TASK = threading.Event()


class _Stopped(SystemExit):
    """Raised in a worker's task by SIGTERM: the task unwinds (its temp files removed), then the process exits."""

    def __init__(self, signum: int) -> None:
        super().__init__(128 + signum)
        self.signum = signum

    @staticmethod
    def handler(signum: int, _frame: object) -> None:
        """A worker's SIGTERM: a task unwinds first, an idle worker exits at once."""
        if _IN_TASK.is_set():
            raise _Stopped(signum)
        os._exit(128 + signum)


def _lifeline() -> Connection:
    if not _LIFELINE:
        _LIFELINE.extend(multiprocessing.Pipe(duplex=False))
    return _LIFELINE[0]


def _watch_parent(lifeline: Connection) -> None:
    """Block until the process that started the pool is gone, then stop this worker like SIGTERM does (killed if its task does not unwind in time)."""
    try:
        lifeline.recv_bytes()
    except (EOFError, OSError):
        pass
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(STOP_GRACE_S)  # a task inside C++ (a fit) runs no Python signal handler until it returns
    os._exit(128 + signal.SIGTERM)


def _start_worker(lifeline: Connection, level: int, initializer: Callable[[], None] | None) -> None:
    """Every worker's start: stop with the parent (SIGTERM, or its end), leave Ctrl-C to the parent, log like it, then ``initializer``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole process group: the parent stops the pool
    signal.signal(signal.SIGTERM, _Stopped.handler)
    sys.unraisablehook = console.signal_again_if_swallowed
    threading.Thread(target=_watch_parent, args=(lifeline,), name="parent-watch", daemon=True).start()
    console.configure_once(level)
    if initializer is not None:
        initializer()


def run_in_worker(func: Callable[..., Any], *args: Any) -> Any:
    """Run one task of a ``worker_pool``: a stop during it unwinds it, then ends the process without sending anything back."""
    _IN_TASK.set()
    try:
        return func(*args)
    except _Stopped as stop:
        os._exit(stop.code if isinstance(stop.code, int) else 1)
    finally:
        _IN_TASK.clear()


def worker_pool(workers: int, start_method: str, initializer: Callable[[], None] | None = None) -> ProcessPoolExecutor:
    """A local pool whose processes end with this one; submit tasks through ``run_in_worker``, end it with ``stop_pool`` on an interrupt.

    ``start_method``: ``forkserver`` for fits and sample writing (forked from a server without this
    process's threads, ROOT preloaded for fits); ``spawn`` for figures: a process has one forkserver
    with one preload list, and a run drawing only the step-2 grid must not wait for it to load ROOT.
    """
    return ProcessPoolExecutor(
        max(1, workers), mp_context=multiprocessing.get_context(start_method), initializer=_start_worker,
        initargs=(_lifeline(), console.current_level(), initializer),
    )  # fmt: skip


def stop_pool(pool: ProcessPoolExecutor) -> None:
    """End a pool now: SIGTERM to its processes (a task unwinds, its temp files removed), SIGKILL after ``STOP_GRACE_S``."""
    processes = list(getattr(pool, "_processes", {}).values())
    for process in processes:
        process.terminate()
    running = {p.sentinel for p in processes}
    deadline = time.monotonic() + STOP_GRACE_S
    while running and time.monotonic() < deadline:
        running -= set(wait_for_sentinels(list(running), timeout=deadline - time.monotonic()))
    for process in processes:
        if process.sentinel in running:
            process.kill()
    pool.shutdown(wait=True, cancel_futures=True)


def default_workers() -> int:
    """One worker per core the process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)


@dataclass
class _Delivery:
    """Where a map's finished results go in every executor: ``on_result`` as each arrives, then ``results`` (``None``
    there unless ``keep``); each counted on the progress line, and the whole map's rate logged at the end.

    The live line is on stderr only when it is a terminal (a batch job's log must not fill with carriage
    returns); ``EBE_PROGRESS=1`` forces it, ``0`` silences it.
    """

    label: str
    total: int
    on_result: Callable[[int, Any], None] | None
    keep: bool
    results: dict[int, Any] = field(default_factory=dict)
    start: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        forced = os.environ.get(PROGRESS_ENV, "").strip()
        self.live = bool(self.label) and (forced == "1" if forced in ("0", "1") else sys.stderr.isatty())

    def deliver(self, i: int, result: Any, cancel_rest: Callable[[], object]) -> None:
        """One finished task's result; an expected failure cancels the tasks still pending and is raised."""
        if isinstance(result, TaskFailure):
            cancel_rest()
            raise result.error_type(result.message)
        if self.on_result:
            self.on_result(i, result)
        self.results[i] = result if self.keep else None
        if self.live:
            done = len(self.results)
            end = "\n" if done == self.total else ""
            sys.stderr.write(f"\r{self.label}: {done}/{self.total} ({done / max(time.monotonic() - self.start, 1e-9):.1f}/s){end}")
            sys.stderr.flush()

    def finish(self) -> None:
        if self.label:
            elapsed, done = time.monotonic() - self.start, len(self.results)
            log.info("%s: %d/%d done in %.1f s (%.1f/s)", self.label, done, self.total, elapsed, done / max(elapsed, 1e-9))


class TaskExecutor:
    """Maps ``func`` over ``tasks``; results come back in task order. Where the tasks run is each subclass's ``_run``."""

    # Why the tasks an ``ExecutionError`` names could not run.
    LOST_WHY = ""

    def map(
        self, func: Callable[[Any], Any], tasks: Sequence[Any], names: Sequence[str], progress: str = "",
        on_result: Callable[[int, Any], None] | None = None, keep: bool = True,
    ) -> list[Any]:  # fmt: skip
        """``on_result(index, result)`` is called as each task finishes (to persist or fold results); ``keep=False``
        then drops each result (None in the list), so memory does not grow with the tasks. A task raising
        ``CalibrationError`` cancels what is pending and the error is raised here, once. Tasks that could
        not run (their worker died on every try, the scheduler was lost) raise one ``ExecutionError`` naming them."""
        delivery = _Delivery(progress, len(tasks), on_result, keep)
        lost = self._run(func, tasks, names, delivery)
        delivery.finish()
        if lost:
            raise ExecutionError(f"could not run {', '.join(lost)}: {self.LOST_WHY}; finished results are kept, re-run to resume")
        return [delivery.results[i] for i in range(len(tasks))]

    def _run(self, func: Callable[[Any], Any], tasks: Sequence[Any], names: Sequence[str], delivery: _Delivery) -> list[str]:
        """Run every task, handing each result to ``delivery``; return the names of the tasks that could not run."""
        raise NotImplementedError


class InlineExecutor(TaskExecutor):
    """Runs tasks one after the other in this process (debugging, ``--workers 0``)."""

    def _run(self, func: Callable[[Any], Any], tasks: Sequence[Any], names: Sequence[str], delivery: _Delivery) -> list[str]:
        for i, task in enumerate(tasks):
            delivery.deliver(i, func(task), cancel_rest=lambda: None)
        return []


class ProcessExecutor(TaskExecutor):
    """A local pool of worker processes forked from a clean server (no threads, no RooFit objects).

    ``preload`` names modules the forkserver imports before forking (e.g. ROOT's libraries), so
    workers start warm; ``start()`` launches that server early, to load them while other work runs.
    """

    LOST_WHY = ("the worker process died on each of 2 tries (a crash such as a ROOT segfault, a kill, the memory limit) "
                "or ran past the time limit")

    def __init__(self, workers: int, task_timeout_s: float | None = None, preload: Sequence[str] = ()) -> None:
        self.workers = max(1, workers)
        self.task_timeout_s = task_timeout_s
        if preload:
            multiprocessing.get_context("forkserver").set_forkserver_preload(["__main__", *preload])

    def start(self) -> None:
        """Start the forkserver (and its preloading) now; the first pool then forks at once."""
        from multiprocessing import forkserver

        forkserver.ensure_running()

    def _run(self, func: Callable[[Any], Any], tasks: Sequence[Any], names: Sequence[str], delivery: _Delivery) -> list[str]:
        in_flight_at_crash = self._run_pool(func, tasks, list(range(len(tasks))), self.workers, delivery)
        lost = []
        for i in in_flight_at_crash:
            log.info("worker process died while '%s' was running; re-running it alone", names[i])
            if self._run_pool(func, tasks, [i], 1, delivery):
                lost.append(names[i])
        return lost

    def _run_pool(
        self, func: Callable[[Any], Any], tasks: Sequence[Any], indices: list[int], workers: int, delivery: _Delivery
    ) -> list[int]:
        """Run ``indices``; return those whose result was lost to a broken pool or a timeout."""
        lost: list[int] = []
        pool = worker_pool(min(workers, len(indices)), "forkserver")
        captured = functools.partial(_captured, func, console.current_level())
        try:
            futures: dict[Future, int] = {pool.submit(run_in_worker, captured, tasks[i]): i for i in indices}
            started, poll_s = time.monotonic(), min(self.task_timeout_s, 5.0) if self.task_timeout_s else None
            pending = set(futures)
            while pending:
                done, pending = wait(pending, timeout=poll_s, return_when=FIRST_COMPLETED)
                for fut in done:
                    i = futures[fut]
                    try:
                        result = fut.result()
                    except BrokenProcessPool:
                        lost.append(i)
                        continue
                    delivery.deliver(i, result, lambda: [other.cancel() for other in pending])
                if self.task_timeout_s and not done and time.monotonic() - started > self.task_timeout_s * len(indices):
                    log.info("tasks exceeded %.0f s; stopping the worker pool and re-running each alone", self.task_timeout_s)
                    stop_pool(pool)
                    lost.extend(futures[f] for f in pending)
                    break
        except BaseException:
            stop_pool(pool)  # an interrupt or an error: the fits still running are of no use
            raise
        pool.shutdown(wait=True, cancel_futures=True)
        return sorted(set(lost))


class DaskExecutor(TaskExecutor):
    """Submits tasks to a ``distributed.Client`` (local cluster, scheduler or Dask-Gateway).

    The scheduler re-runs a dead worker's tasks (``allowed-failures``, ``lib.cluster``); one it gives up on
    is reported at the end. Losing the scheduler ends the map at once. Dask's ``retries=`` is not used: an
    expected failure comes back as a value, and any other exception is a bug that would only raise again.
    """

    LOST_WHY = "Dask workers died running it on every try (KilledWorker)"

    def __init__(self, client: Any) -> None:
        self.client = client

    def _run(self, func: Callable[[Any], Any], tasks: Sequence[Any], names: Sequence[str], delivery: _Delivery) -> list[str]:
        from distributed import as_completed
        from distributed.comm import CommClosedError
        from distributed.scheduler import KilledWorker

        keys = [f"{func.__name__}-{n}-{os.getpid()}-{time.time_ns()}" for n in names]
        lost: list[str] = []
        try:
            futures = self.client.map(functools.partial(_captured, func, console.current_level()), list(tasks), key=keys)
            index = {fut.key: i for i, fut in enumerate(futures)}
            for fut in as_completed(futures):
                i = index[fut.key]
                try:
                    result = fut.result()
                except KilledWorker:
                    lost.append(names[i])
                    continue
                except Exception:
                    self.client.cancel(futures)  # a bug in the task: the others' results would not be used
                    raise
                delivery.deliver(i, result, lambda: self.client.cancel(futures))
                fut.release()
        except (CancelledError, CommClosedError) as err:  # the futures of a lost scheduler come back cancelled
            raise ExecutionError(f"lost the Dask scheduler{self._address()} ({type(err).__name__}): "
                                 f"{len(tasks) - len(delivery.results)} of {len(tasks)} tasks did not finish; re-run to resume") from err  # fmt: skip
        return lost

    def _address(self) -> str:
        """`` at tcp://host:port`` when the client knows it."""
        address = getattr(getattr(self.client, "scheduler", None), "address", None)
        return f" at {address}" if address else ""
