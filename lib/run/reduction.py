"""Where a run reads: its executors, and its files reduced to histograms (or a skim), cached per input.

Steps 1-2, the closure and the Higgs check all read through ``load_reduction``/``reduce_files``;
the executors decide where that work and the fits run (a local Dask cluster, a scheduler or
Gateway, or in-process reads with a local pool of fit processes).
"""

from __future__ import annotations

import logging
import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import pyarrow as pa

from lib.categories import CategoryScheme
from lib.config import Config
from lib.errors import InputError
from lib.executor import DaskExecutor, InlineExecutor, ProcessExecutor, TaskExecutor, default_workers
from lib.figures import FigureQueue
from lib.io.cache import inputs_fingerprint, load_cached_reduction, reduction_key, store_reduction
from lib.io.merge import Reduction, ReductionMerger
from lib.io.reader import FileReading, FileReduction, Keep, find_files, reduce_file
from lib.outputs import OutputDir
from lib.request import Paths, Request

log = logging.getLogger(__name__)

# Modules the fit workers' forkserver imports before forking them: ROOT's libraries, loaded once.
FIT_WORKER_PRELOAD = ("lib.fitting.warm",)


@dataclass(frozen=True)
class Executors:
    """Where file reductions and fits run, and the local processes that draw the figures."""

    reduce: TaskExecutor
    fit: TaskExecutor
    figures: FigureQueue


@contextmanager
def executors(request: Request) -> Iterator[Executors]:
    """Pick executors: Dask for both when a Dask mode is set, else inline reads and a process pool for fits.

    Figures are drawn on this machine in every mode (``lib.figures``), in this process with ``--workers 0``.
    """
    execution, selection = request.execution, request.selection
    workers = execution.workers if execution.workers else default_workers()
    with ExitStack() as stack:
        # Figures are drawn here, so never by more processes than this machine has cores (--workers may count a Gateway's).
        drawers = 0 if execution.workers == 0 else min(workers, default_workers())
        figures = stack.enter_context(FigureQueue(drawers, request.figures.formats))
        if not selection.reads_inputs:
            yield Executors(InlineExecutor(), InlineExecutor(), figures)  # step 3 alone reads tables: no workers to start
        elif execution.dask_mode:
            from lib.cluster import dask_client

            client = stack.enter_context(
                dask_client(execution.dask_mode, execution.workers or None, execution.scheduler, execution.gateway, dict(execution.gateway_options))
            )  # fmt: skip
            dask = DaskExecutor(client)
            yield Executors(dask, dask, figures)
        elif execution.workers == 0:
            yield Executors(InlineExecutor(), InlineExecutor(), figures)
        else:
            pool = ProcessExecutor(workers, task_timeout_s=execution.task_timeout_s, preload=FIT_WORKER_PRELOAD)
            if selection.closure_test or "step1" in selection.steps:
                pool.start()  # loads ROOT in the workers' forkserver while the files are read
            yield Executors(InlineExecutor(), pool, figures)


@dataclass(frozen=True)
class ReadTask:
    """The reduction of one file, as a worker receives it; with ``skip_bad`` (--skip-bad-files) a damaged file is skipped."""

    path: str
    reading: FileReading
    skip_bad: bool = False


def read_task(task: ReadTask) -> FileReduction | str:
    """The file's reduction, or under ``skip_bad`` the error message of a damaged file (returned, so the other files go on).

    Only file-level damage is skippable (the reader raises it from the I/O or Arrow error); a
    missing or non-numeric column means the wrong input rather than one damaged file, so it stays fatal.
    """
    try:
        return reduce_file(task.path, task.reading)
    except InputError as err:
        if task.skip_bad and isinstance(err.__cause__, (OSError, pa.ArrowException)):
            return str(err)
        raise


def reduce_files(
    files: Sequence[Path], execs: Executors, reading: FileReading, skip_bad_files: bool = False, progress: str = "files"
) -> Reduction:
    """Reduce every file on the reduce executor and fold the results in file order as they arrive.

    No per-file result is kept once folded: with histograms only, memory does not grow with the
    number of files or events.
    """
    tasks = [ReadTask(str(f), reading, skip_bad_files) for f in files]
    merger = ReductionMerger(files, reading.keep.specs, reading.weight_column is not None)
    execs.reduce.map(read_task, tasks, [f.name for f in files], progress=progress, on_result=merger.add, keep=False)
    return merger.result()


def load_reduction(
    request: Request, config: Config, scheme: CategoryScheme, execs: Executors, out: OutputDir, keep: Keep
) -> tuple[Reduction, str]:  # fmt: skip
    """Find the year's files and reduce them to what ``keep`` keeps (or reuse a cache with the same key); the fingerprint of the files read.

    A reduction missing skipped files is not cached: the cache key names every matched file, and a
    later run without --skip-bad-files must read (and refuse) the damaged ones again.

    Raises:
        InputError: no event of any file falls in the Z window and the categories.
    """
    is_mc = request.selection.is_mc
    root = input_root(request.paths, config)
    files = find_files(root, config.input.mc_glob if is_mc else config.input.data_glob, out.year)
    if request.figures.enabled:
        execs.figures.start()  # the inputs exist: figures will follow, so matplotlib loads while they are read
    reading = FileReading(scheme, config.selection.z_window_gev, config.input.weight_column if is_mc else None, config.input.batch_rows, keep)
    settings = {
        "categories": config.categories.model_dump(mode="json"),
        "z_window": list(reading.window),
        "weight": reading.weight_column,
        "histograms": [repr(spec) for spec in keep.specs],
        "profile": repr(keep.profile),
        "muons": keep.muons,
    }
    fingerprint = inputs_fingerprint(files)
    key = reduction_key(fingerprint, settings)
    cache_dir = out.cache("reduction")
    cached = load_cached_reduction(cache_dir, key, keep)
    if cached is not None:
        return cached, fingerprint
    start = time.monotonic()
    reduction = reduce_files(files, execs, reading, request.execution.skip_bad_files)
    log.info("%s in %.1f s", reading_line(reduction), time.monotonic() - start)
    if reduction.n_kept == 0:
        raise InputError(f"no events of {reduction.n_files} files under {root} fall in the Z window and the categories")
    if reduction.skipped:
        log.info("reduction not cached: %d files were skipped", len(reduction.skipped))
        read = [f for f in files if str(f) not in reduction.skipped]
        return reduction, inputs_fingerprint(read)
    store_reduction(cache_dir, key, keep, reduction)
    return reduction, fingerprint


def reading_line(reduction: Reduction) -> str:
    """What the reduction read and kept, as the summary and the log state it."""
    return (
        f"read {reduction.n_files} files, {reduction.n_read} events: {reduction.n_bad} dropped as bad, "
        f"{reduction.n_outside_window} outside the Z window, {reduction.n_outside_categories} outside categories, "
        f"{reduction.n_kept} kept"
    )


def input_root(paths: Paths, config: Config) -> Path:
    """The Stage-1 root, absolute: a Dask worker of a scheduler or Gateway runs in its own directory."""
    return (Path(paths.input_path) if paths.input_path else Path(config.input.stage1_path)).resolve()
