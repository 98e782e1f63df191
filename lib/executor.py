"""Run a module-level function over picklable tasks: in-process, on a local process pool, or on Dask.

Physics lives elsewhere; this module only decides where tasks run, reports their progress and
survives worker crashes.
A ROOT segfault in one category's process must not kill the run: the local pool detects the
broken pool, re-runs every task that was in flight once, each alone in a fresh process, and
reports a task that crashes again as ``TaskCrash`` instead of raising.
"""

from __future__ import annotations

import functools
import logging
import multiprocessing
import os
import sys
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any, Callable, Protocol, Sequence

from lib import console
from lib.errors import CalibrationError

__all__ = ["TaskCrash", "TaskFailure", "TaskExecutor", "InlineExecutor", "ProcessExecutor", "DaskExecutor", "default_workers"]

log = logging.getLogger(__name__)

PROGRESS_ENV = "EBE_PROGRESS"  # "1" forces the live progress line, "0" silences it


@dataclass(frozen=True)
class TaskCrash:
    """Stands in for the result of a task whose process died or raised twice."""

    name: str
    reason: str


@dataclass(frozen=True)
class TaskFailure:
    """An expected failure (a ``CalibrationError``: damaged file, missing column) handed back as a value.

    Raised inside a worker, the error would cross the wire as an exception: Dask's worker then
    logs a "Compute Failed" block with the traceback, and the other tasks keep running while the
    client tears the cluster down. As a value, the client cancels what is pending and raises it
    once, as the one line the CLI prints.
    """

    error_type: type[CalibrationError]
    message: str

    def reraise(self) -> None:
        raise self.error_type(self.message)


def _captured(func: Callable[[Any], Any], level: int, task: Any) -> Any:
    """Run ``func(task)`` in a worker; an expected failure comes back as a ``TaskFailure``.

    The worker process logs like the client (``lib.console``, set up on its first task): a
    plugin would need the project importable before the code upload that makes it so.
    """
    console.configure_once(level)
    try:
        return func(task)
    except CalibrationError as err:
        return TaskFailure(type(err), str(err))


class TaskExecutor(Protocol):
    """Maps ``func`` over ``tasks``; results come back in task order, crashes as ``TaskCrash``."""

    def map(
        self, func: Callable[[Any], Any], tasks: Sequence[Any], names: Sequence[str], progress: str = "",
        on_result: Callable[[int, Any], None] | None = None, keep: bool = True,
    ) -> list[Any]:  # fmt: skip
        """``on_result(index, result)`` is called as each task finishes (a crash as ``TaskCrash``), so callers can
        persist progress or fold results; ``keep=False`` then drops each result (None in the list), so
        memory does not grow with the number of tasks. A task raising ``CalibrationError`` stops the
        map: what is pending is cancelled and the error is raised here, once."""
        ...


def default_workers() -> int:
    """One worker per core the process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)


def _progress_wanted() -> bool:
    """``EBE_PROGRESS=1`` forces the progress line, ``0`` silences it; unset: only when stderr is a terminal.

    A log file or a batch job's stderr must not fill with carriage-return updates, while a user
    watching a terminal (or a test) can still ask for them.
    """
    forced = os.environ.get(PROGRESS_ENV, "").strip()
    if forced in ("0", "1"):
        return forced == "1"
    return sys.stderr.isatty()


class _Progress:
    """A one-line progress counter on stderr (tasks done / total, tasks per second) and a logged summary."""

    def __init__(self, label: str, total: int) -> None:
        self.label, self.total, self.done, self.start = label, total, 0, time.monotonic()
        self.enabled = bool(label) and _progress_wanted()

    def step(self) -> None:
        self.done += 1
        if self.enabled:
            rate = self.done / max(time.monotonic() - self.start, 1e-9)
            end = "\n" if self.done == self.total else ""
            sys.stderr.write(f"\r{self.label}: {self.done}/{self.total} ({rate:.1f}/s){end}")
            sys.stderr.flush()

    def finish(self) -> None:
        """Log how long the whole map took, whether or not the live line was shown."""
        if self.label:
            elapsed = time.monotonic() - self.start
            rate = self.done / max(elapsed, 1e-9)
            log.info("%s: %d/%d done in %.1f s (%.1f/s)", self.label, self.done, self.total, elapsed, rate)


class InlineExecutor:
    """Runs tasks one after the other in this process (debugging, ``--workers 0``)."""

    def map(
        self, func: Callable[[Any], Any], tasks: Sequence[Any], names: Sequence[str], progress: str = "",
        on_result: Callable[[int, Any], None] | None = None, keep: bool = True,
    ) -> list[Any]:  # fmt: skip
        bar = _Progress(progress, len(tasks))
        out = []
        for i, task in enumerate(tasks):
            result = func(task)
            if on_result:
                on_result(i, result)
            out.append(result if keep else None)
            bar.step()
        bar.finish()
        return out


class ProcessExecutor:
    """A local pool of worker processes forked from a clean server (no threads, no RooFit objects).

    ``preload`` names modules the forkserver imports before forking (e.g. ROOT's libraries), so
    workers start warm; ``start()`` launches that server early, to load them while other work runs.
    """

    def __init__(self, workers: int, task_timeout_s: float | None = None, preload: Sequence[str] = ()) -> None:
        self.workers = max(1, workers)
        self.task_timeout_s = task_timeout_s
        self._context = multiprocessing.get_context("forkserver")
        if preload:
            self._context.set_forkserver_preload(["__main__", *preload])

    def start(self) -> None:
        """Start the forkserver (and its preloading) now; the first pool then forks at once."""
        from multiprocessing import forkserver

        forkserver.ensure_running()

    def map(
        self, func: Callable[[Any], Any], tasks: Sequence[Any], names: Sequence[str], progress: str = "",
        on_result: Callable[[int, Any], None] | None = None, keep: bool = True,
    ) -> list[Any]:  # fmt: skip
        bar = _Progress(progress, len(tasks))
        results: dict[int, Any] = {}
        in_flight_at_crash = self._run_pool(func, tasks, list(range(len(tasks))), self.workers, results, bar, on_result, keep)
        for i in in_flight_at_crash:
            log.info("worker process died while '%s' was running; re-running it alone", names[i])
            again = self._run_pool(func, tasks, [i], 1, results, bar, on_result, keep)
            if again:
                crash = TaskCrash(names[i], "worker process crashed twice (e.g. a ROOT segfault) or timed out")
                if on_result:
                    on_result(i, crash)
                results[i] = crash if keep else None
                bar.step()
        bar.finish()
        return [results[i] for i in range(len(tasks))]

    def _run_pool(
        self,
        func: Callable[[Any], Any],
        tasks: Sequence[Any],
        indices: list[int],
        workers: int,
        results: dict[int, Any],
        bar: _Progress,
        on_result: Callable[[int, Any], None] | None,
        keep: bool,
    ) -> list[int]:
        """Run ``indices``; return those whose result was lost to a broken pool or a timeout."""
        lost: list[int] = []
        pool = ProcessPoolExecutor(max_workers=min(workers, len(indices)) or 1, mp_context=self._context)
        captured = functools.partial(_captured, func, console.current_level())
        try:
            futures: dict[Future, int] = {pool.submit(captured, tasks[i]): i for i in indices}
            started = time.monotonic()
            pending = set(futures)
            while pending:
                done, pending = wait(pending, timeout=self._poll_timeout(), return_when=FIRST_COMPLETED)
                for fut in done:
                    i = futures[fut]
                    try:
                        results[i] = fut.result()
                    except BrokenProcessPool:
                        lost.append(i)
                        continue
                    if isinstance(results[i], TaskFailure):
                        for other in pending:
                            other.cancel()
                        results[i].reraise()
                    if on_result:
                        on_result(i, results[i])
                    if not keep:
                        results[i] = None
                    bar.step()
                if self.task_timeout_s and not done and time.monotonic() - started > self.task_timeout_s * len(indices):
                    log.info("tasks exceeded %.0f s; killing the worker pool and re-running each alone", self.task_timeout_s)
                    self._kill(pool)
                    lost.extend(futures[f] for f in pending)
                    break
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        return sorted(set(lost))

    def _poll_timeout(self) -> float | None:
        return None if not self.task_timeout_s else min(self.task_timeout_s, 5.0)

    @staticmethod
    def _kill(pool: ProcessPoolExecutor) -> None:
        for proc in list(getattr(pool, "_processes", {}).values()):
            proc.kill()


class DaskExecutor:
    """Submits tasks to a ``distributed.Client`` (local cluster, scheduler or Dask-Gateway)."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def map(
        self, func: Callable[[Any], Any], tasks: Sequence[Any], names: Sequence[str], progress: str = "",
        on_result: Callable[[int, Any], None] | None = None, keep: bool = True,
    ) -> list[Any]:  # fmt: skip
        from distributed import as_completed

        bar = _Progress(progress, len(tasks))
        keys = [f"{func.__name__}-{n}-{os.getpid()}-{time.time_ns()}" for n in names]
        futures = self.client.map(functools.partial(_captured, func, console.current_level()), list(tasks), key=keys)
        index = {fut.key: i for i, fut in enumerate(futures)}
        results: dict[int, Any] = {}
        for fut in as_completed(futures):
            i = index[fut.key]
            try:
                results[i] = fut.result()
            except Exception as err:  # noqa: BLE001 - a worker death or task error becomes a per-task failure
                if not _is_killed_worker(err):
                    self.client.cancel(futures)
                    raise
                results[i] = TaskCrash(names[i], f"Dask worker died running it ({type(err).__name__})")
            if isinstance(results[i], TaskFailure):
                self.client.cancel(futures)
                results[i].reraise()
            if on_result:
                on_result(i, results[i])
            if not keep:
                results[i] = None
            bar.step()
            fut.release()
        bar.finish()
        return [results[i] for i in range(len(tasks))]


def _is_killed_worker(err: Exception) -> bool:
    from distributed.scheduler import KilledWorker

    return isinstance(err, KilledWorker)
