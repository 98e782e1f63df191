"""Writing a sample: parquet files in parallel into a staging directory, moved into place, then the truth file.

Kept apart from the physics because a sample must be written safely whatever its size: memory is
bounded by the chunk size, files are written on the tool's local worker pool (``lib.executor``)
with the same bytes as in one process, and an interrupted or repeated run never leaves stale
files or a truth file that lies.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import zlib
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from lib.categories import CategoryScheme
from lib.executor import InlineExecutor, ProcessExecutor, default_workers
from lib.generator.kmaps import default_scheme
from lib.generator.plan import FileTask, SamplePlan, SampleRequest, WriteOptions, file_tasks, plan_sample
from lib.generator.settings import GeneratorSettings, load_settings
from lib.generator.simulation import EventModel, FileChunk, generate_events
from lib.generator.truth import TRUTH_COLUMNS, category_truth_sums, truth_content
from lib.io.atomic import write_text_atomic

log = logging.getLogger(__name__)


def _write_file(task: FileTask) -> np.ndarray:
    """Write one file chunk by chunk; returns its truth sums per category (``category_truth_sums``).

    Each chunk has its own stream ``SeedSequence(seed, spawn_key=(crc32(dataset), file, chunk))``,
    so the bytes depend only on the task (not on the number of workers), and memory only on
    ``chunk_rows``. The file's columns are those ``generate_events`` returns, in its order, then
    the truth columns a file carries (``TRUTH_COLUMNS``) where the settings ask for them.
    """
    plan, kind = task.plan, task.dataset.kind
    settings, chunk_rows = plan.settings, plan.options.chunk_rows
    sample, truth_detail = getattr(settings.samples, kind), settings.writes_truth_columns()
    model = EventModel(settings, plan.scheme, plan.k_maps[sample.k_map])
    per_muon = getattr(settings.muon_k_maps, sample.k_map) is not None
    counts = np.zeros((3, plan.scheme.n_categories))
    key = zlib.crc32(task.dataset.name.encode())
    path = task.staging / task.rel_path
    path.parent.mkdir(parents=True, exist_ok=True)
    writer: pq.ParquetWriter | None = None
    try:
        for i_chunk, start in enumerate(range(0, task.n_events, chunk_rows)):
            seed = np.random.SeedSequence(plan.request.seed, spawn_key=(key, task.i_file, i_chunk))
            chunk = FileChunk(task.dataset.era, task.first_event + start, truth_detail)
            cols = generate_events(kind, min(chunk_rows, task.n_events - start), seed, model, with_truth=True, chunk=chunk)
            counts += category_truth_sums(cols, plan.scheme, per_muon)
            written = {name: values for name, values in cols.items() if not name.startswith("truth_")}
            if truth_detail:
                written |= {name: cols[name].astype(dtype) for name, dtype in TRUTH_COLUMNS.items()}
            table = pa.table(written)
            if writer is None:
                writer = pq.ParquetWriter(path, table.schema)
            writer.write_table(table, row_group_size=plan.options.row_group_rows)
    finally:
        if writer is not None:
            writer.close()
    return counts


def _run_tasks(tasks: list[FileTask], workers: int) -> list[np.ndarray]:
    """Write the files in this process or on the tool's local worker pool (results in task order)."""
    executor = InlineExecutor() if workers <= 1 or len(tasks) <= 1 else ProcessExecutor(min(workers, len(tasks)))

    def logged(i: int, _counts: np.ndarray) -> None:
        log.info("wrote %s (%d events)", tasks[i].rel_path, tasks[i].n_events)

    return executor.map(_write_file, tasks, [str(t.rel_path) for t in tasks], on_result=logged)


def _replace_datasets(staging: Path, compacted: Path, names: list[str]) -> None:
    """Move the staged datasets into place, removing older copies of the same datasets."""
    compacted.mkdir(parents=True, exist_ok=True)
    for name in names:
        target = compacted / name
        if target.exists():
            log.info("replacing existing %s", target)
            target.rename(staging / f".old-{name}")  # removed with the staging directory
        if (staging / name).exists():
            (staging / name).rename(target)


def _write_datasets(plan: SamplePlan, year_dir: Path) -> tuple[list[FileTask], list[np.ndarray]]:
    """Write every file into a staging directory, then move the datasets into place; returns the tasks and their truth sums."""
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=year_dir))
    try:
        tasks = file_tasks(plan, staging)
        workers = plan.options.workers
        counts = _run_tasks(tasks, default_workers() if workers is None else workers)
        # No truth file while the datasets change: a crash must not leave a truth that lies.
        (year_dir / "truth.json").unlink(missing_ok=True)
        _replace_datasets(staging, year_dir / "compacted", [ds.name for ds in plan.datasets])
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return tasks, counts


def generate_sample(
    output_root: str | Path,
    request: SampleRequest = SampleRequest(),
    options: WriteOptions = WriteOptions(),
    settings: GeneratorSettings | None = None,
    scheme: CategoryScheme | None = None,
) -> Path:
    """Write a Stage-1 "compacted" sample and its ``truth.json``; returns ``<output_root>/<year>``.

    Layout: ``<root>/<year>/compacted/<dataset>/<n>/part<i>.parquet`` for ``data_<era>``, the DY
    MC and the signal dataset. Datasets are staged and moved into place at the end, replacing
    older copies of the same datasets (also when now empty), so no stale file is ever globbed;
    the truth file is written last, atomically. ``settings`` default to ``configs/generator.yaml``,
    ``scheme`` (the categories of the k maps and the truth) to the default configuration's.
    Same request, options (but the workers) and settings give byte-identical files.

    Raises:
        ConfigError: invalid settings or k map.
        OSError: the output cannot be written.
    """
    plan = plan_sample(request, options, settings or load_settings(), scheme or default_scheme())
    year_dir = Path(output_root) / str(request.year)
    year_dir.mkdir(parents=True, exist_ok=True)
    tasks, counts = _write_datasets(plan, year_dir)
    write_text_atomic(year_dir / "truth.json", json.dumps(truth_content(plan, tasks, counts), indent=2) + "\n")
    log.info("sample written under %s (truth.json beside it)", year_dir)
    return year_dir
