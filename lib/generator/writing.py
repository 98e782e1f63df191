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
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from lib.categories import CategoryScheme
from lib.errors import ConfigError
from lib.executor import ProcessExecutor, default_workers
from lib.generator.kmaps import KOverride, builtin_k_map, default_scheme, resolve_k_map
from lib.generator.plan import FileTask, file_tasks, plan_datasets
from lib.generator.settings import GeneratorSettings, SampleSettings, load_settings
from lib.generator.simulation import generate_events
from lib.generator.truth import TRUTH_COLUMNS, category_truth_sums, truth_content
from lib.io.atomic import write_text_atomic

__all__ = ["DEFAULT_CHUNK_ROWS", "generate_sample"]

log = logging.getLogger(__name__)

DEFAULT_CHUNK_ROWS = 1_000_000


def _schema(weighted: bool, gen_mass: bool = False, truth: bool = False) -> pa.Schema:
    """Column order and types of a written file; the generator-level mass and the truth columns are opt-in."""
    fields = []
    for mu in ("mu1", "mu2"):
        fields += [(f"{mu}_{c}", pa.float32()) for c in ("pt", "ptErr", "eta", "phi")]
        fields.append((f"{mu}_charge", pa.int32()))
    fields += [
        ("dimuon_mass", pa.float32()),
        ("dimuon_pt", pa.float32()),
        ("dimuon_rapidity", pa.float32()),
        ("event", pa.int64()),
        ("run", pa.int32()),
        ("nJets", pa.int32()),
        ("met", pa.float32()),
    ]
    if weighted:
        fields.append(("wgt_nominal", pa.float32()))
    if gen_mass:
        fields.append(("dimuon_mass_gen", pa.float32()))
    if truth:
        fields += [(name, pa.from_numpy_dtype(dtype)) for name, dtype in TRUTH_COLUMNS.items()]
    return pa.schema(fields)


def _write_file(task: FileTask) -> np.ndarray:
    """Write one file chunk by chunk; returns its truth sums per category (``category_truth_sums``).

    Each chunk has its own stream ``SeedSequence(seed, spawn_key=(crc32(dataset), file, chunk))``,
    so the bytes depend only on the arguments (not on the number of workers), and memory only
    on ``chunk_rows``.
    """
    sample: SampleSettings = getattr(task.settings.samples, task.dataset.kind)
    settings = task.settings
    schema = _schema(sample.weighted, settings.gen_mass_column and task.dataset.kind != "data", settings.writes_truth_columns())
    counts = np.zeros((3, task.scheme.n_categories))
    key = zlib.crc32(task.dataset.name.encode())
    path = task.staging / task.rel_path
    path.parent.mkdir(parents=True, exist_ok=True)
    with pq.ParquetWriter(path, schema) as writer:
        for i_chunk, start in enumerate(range(0, task.n_events, task.chunk_rows)):
            n_chunk = min(task.chunk_rows, task.n_events - start)
            cols = generate_events(
                task.dataset.kind,
                n_chunk,
                np.random.SeedSequence(task.seed, spawn_key=(key, task.i_file, i_chunk)),
                task.k_map,
                task.settings,
                scheme=task.scheme,
                with_truth=True,
                truth_detail=settings.writes_truth_columns(),
                era=task.dataset.era,
                first_event=task.first_event + start,
            )
            counts += category_truth_sums(cols, task.scheme, settings.muon_k_map(sample.k_map) is not None)
            if settings.writes_truth_columns():
                cols |= {name: cols[name].astype(dtype) for name, dtype in TRUTH_COLUMNS.items()}
            table = pa.table({name: cols[name] for name in schema.names}, schema=schema)
            writer.write_table(table, row_group_size=task.row_group_rows)
    return counts


def _run_tasks(tasks: list[FileTask], workers: int) -> list[np.ndarray]:
    """Write the files in this process or on the tool's local worker pool (results in task order)."""
    if workers <= 1 or len(tasks) <= 1:
        return [_logged(task, _write_file(task)) for task in tasks]
    pool = ProcessExecutor(min(workers, len(tasks)))
    return pool.map(_write_file, tasks, [str(t.rel_path) for t in tasks], on_result=lambda i, counts: _logged(tasks[i], counts))


def _logged(task: FileTask, counts: np.ndarray) -> np.ndarray:
    """Log a finished file."""
    log.info("wrote %s (%d events)", task.rel_path, task.n_events)
    return counts


def _replace_datasets(staging: Path, compacted: Path, names: list[str]) -> None:
    """Move the staged datasets into place, removing older copies of the same datasets."""
    compacted.mkdir(parents=True, exist_ok=True)
    for name in names:
        target = compacted / name
        if target.exists():
            log.info("replacing existing %s", target)
            old = staging / f".old-{name}"
            target.rename(old)
            shutil.rmtree(old)
        if (staging / name).exists():
            (staging / name).rename(target)


def _check_sample_args(year: int, seed: int, sizes: Mapping[str, int]) -> None:
    """Reject nonsensical arguments with a message naming the argument."""
    for name, value in sizes.items():
        minimum = 0 if name.startswith("n_") else 1
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
            raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if seed < 0:
        raise ConfigError(f"seed must be >= 0, got {seed}")
    if not 1900 <= year <= 2100:
        raise ConfigError(f"year must be a four-digit year, got {year}")


def generate_sample(
    output_root: str | Path,
    year: int = 2018,
    seed: int = 20261123,
    n_data: int = 1_000_000,
    n_mc: int = 1_000_000,
    n_signal: int = 200_000,
    k_data: KOverride = None,
    k_mc: KOverride = None,
    files_per_dataset: int = 4,
    row_group_rows: int = 100_000,
    settings: GeneratorSettings | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    workers: int | None = None,
    scheme: CategoryScheme | None = None,
) -> Path:
    """Write a Stage-1 "compacted" sample and its ``truth.json``; returns ``<output_root>/<year>``.

    Layout: ``<root>/<year>/compacted/<dataset>/<n>/part<i>.parquet`` for ``data_<era>``, the DY
    MC and the signal dataset, ``files_per_dataset`` files each, row groups of ``row_group_rows``.
    Datasets are written to a staging directory and moved into place at the end, replacing older
    copies of the same datasets (also when now empty), so no stale file is ever globbed. The
    truth file is written last, atomically. Same arguments give byte-identical files.

    Args:
        k_data: override of the built-in Data k map (number or ``{category: k}``), see ``generate_events``.
        k_mc: the same for MC and signal.
        chunk_rows: events generated and held in memory at once (per worker).
        workers: processes writing files in parallel (default: the usable cores; 1 = in-process).
        scheme: the analysis categories the k maps and the truth are defined on (the default
            configuration's when omitted); the k maps' pT-bin lists must match its pT bins.

    Raises:
        ConfigError: invalid argument, settings or k map.
        OSError: the output cannot be written.
    """
    sizes = {
        "n_data": n_data,
        "n_mc": n_mc,
        "n_signal": n_signal,
        "files_per_dataset": files_per_dataset,
        "row_group_rows": row_group_rows,
        "chunk_rows": chunk_rows,
    }
    _check_sample_args(year, seed, sizes)
    settings = settings or load_settings()
    scheme = scheme or default_scheme()
    k_maps: dict[str, dict[str, float]] = {}
    for which, override in (("data", k_data), ("mc", k_mc)):
        if override is not None and settings.muon_k_map(which) is not None:
            raise ConfigError(f"k_{which} overrides a category k map, but muon_k_maps.{which} gives each muon its own k")
        try:
            k_maps[which] = resolve_k_map(builtin_k_map(which, settings, scheme), override, scheme)
        except ConfigError as err:
            raise ConfigError(f"{which} k map: {err}") from err
    year_dir = Path(output_root) / str(year)
    year_dir.mkdir(parents=True, exist_ok=True)
    plan = plan_datasets(n_data, n_mc, n_signal, settings)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=year_dir))
    try:
        tasks = file_tasks(
            plan, files_per_dataset, k_maps, settings,
            staging=staging, seed=seed, scheme=scheme, row_group_rows=row_group_rows, chunk_rows=chunk_rows,
        )
        counts = _run_tasks(tasks, default_workers() if workers is None else workers)
        # No truth file while the datasets change: a crash must not leave a truth that lies.
        (year_dir / "truth.json").unlink(missing_ok=True)
        _replace_datasets(staging, year_dir / "compacted", [ds.name for ds in plan])
    finally:
        shutil.rmtree(staging, ignore_errors=True)

    truth = truth_content(seed, year, sizes, plan, tasks, counts, k_maps, {"data": k_data, "mc": k_mc}, scheme, settings)
    write_text_atomic(year_dir / "truth.json", json.dumps(truth, indent=2) + "\n")
    log.info("sample written under %s (truth.json beside it)", year_dir)
    return year_dir
