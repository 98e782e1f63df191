"""Streaming Stage-1 reader: find files, read only the needed columns batch by batch, reduce them.

A file is reduced to fixed-size histograms (``lib.histograms``), to a compact per-event skim
(13 bytes an event, for unbinned fits and the closure), or both: memory scales at most with the
number of Z events, never with the width of Stage-1 files. ``reduce_file`` is a module-level
function, so the same code runs in-process or as a Dask task.
"""

from __future__ import annotations

import glob
import logging
import sys
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from lib.categories import NO_CATEGORY, CategoryScheme, group_rows
from lib.errors import InputError
from lib.executor import default_workers
from lib.histogram_specs import EventKeys, HistogramSpec
from lib.histograms import HistogramPart
from lib.peak_scaling import ProfileGrid, profile_sums
from lib.resolution import sigma_pred

log = logging.getLogger(__name__)

KINEMATIC_COLUMNS = ("mu1_pt", "mu1_ptErr", "mu1_eta", "mu2_pt", "mu2_ptErr", "mu2_eta", "dimuon_mass")
MUON_COLUMNS = KINEMATIC_COLUMNS[:6]
# The events of a file (and of a whole reduction) read, and dropped as bad, outside the Z window or outside every category.
COUNTS = ("n_read", "n_bad", "n_outside_window", "n_outside_categories")
_POSITIVE_COLUMNS = ("mu1_pt", "mu1_ptErr", "mu2_pt", "mu2_ptErr", "dimuon_mass")
# Rows reduced per thread task: small enough that a one-batch file spreads over every thread and
# a chunk's temporaries (at most 128 KiB) stay below glibc's mmap threshold (recycled, not faulted
# in anew); large enough that the Python overhead per chunk is noise.
CHUNK_ROWS = 1 << 14


@dataclass(frozen=True)
class Keep:
    """What a reduction keeps of the events: one set of histograms per spec, the skim (``events``, with
    the muon columns if ``muons``), the muons' ``ln(ptErr / pT)`` summed on ``profile``."""

    specs: tuple[HistogramSpec, ...] = ()
    events: bool = False
    profile: ProfileGrid | None = None
    muons: bool = False

    @property
    def needs_muon_eta(self) -> bool:
        """Something kept reads the muons' eta (the skim's muon columns, the profile, a spec's keys); in steps 1-2 nothing does."""
        return self.muons or self.profile is not None or any(spec.needs_muon_eta for spec in self.specs)


@dataclass(frozen=True)
class FileReading:
    """How every file of a reduction is read: the categories, the mass window, the weight column (None: data),
    the rows read per batch, and what is kept."""

    scheme: CategoryScheme
    window: tuple[float, float]
    weight_column: str | None
    batch_rows: int = 500_000
    keep: Keep = Keep()

    @property
    def columns(self) -> list[str]:
        return list(KINEMATIC_COLUMNS) + ([self.weight_column] if self.weight_column else [])


@dataclass(frozen=True)
class Skim:
    """Per-event compact record of Z-window events that fall in a category."""

    category: np.ndarray  # int8 flat category index
    mass: np.ndarray  # float32 dimuon mass, GeV
    sigma_pred: np.ndarray  # float32 predicted mass resolution, GeV
    weight: np.ndarray | None  # float32 MC weight, None for data
    # The muon columns (``MUON_COLUMNS``) where a binning needs them (the closure's peak scaling).
    muons: dict[str, np.ndarray] | None = None

    def __len__(self) -> int:
        return len(self.mass)

    def by_category(self, n_categories: int) -> list[np.ndarray]:
        """Event indices of each category, in file order within a category."""
        return group_rows(self.category, n_categories)

    def select(self, mask: np.ndarray) -> "Skim":
        return Skim(
            self.category[mask], self.mass[mask], self.sigma_pred[mask], None if self.weight is None else self.weight[mask],
            None if self.muons is None else {c: v[mask] for c, v in self.muons.items()},
        )  # fmt: skip


@dataclass(frozen=True)
class FileReduction:
    """What one file (or, while it is read, one chunk of it) contributes: its skim part and/or histograms,
    and the bookkeeping of what was dropped and why."""

    skim: Skim | None
    histograms: tuple[HistogramPart, ...]
    n_read: int
    n_bad: int
    n_outside_window: int
    n_outside_categories: int
    bad_by_column: dict[str, int] = field(default_factory=dict)
    # ``profile_sums`` of the kept events' muons (None: not asked for).
    profile: np.ndarray | None = None
    # A chunk's histogram keys per spec, which the reading thread adds to the file's ``histograms``.
    keys: tuple[EventKeys, ...] = ()


def find_files(stage1_root: Path, pattern: str, year: str) -> list[Path]:
    """Sorted parquet files matching ``pattern`` (``{year}`` substituted) below ``stage1_root``.

    Raises:
        InputError: the root does not exist or the glob matches nothing (the glob is shown).
    """
    root = Path(stage1_root)
    full = str(root / pattern.format(year=year))
    if not root.is_dir():
        raise InputError(f"input path {root} does not exist or is not a directory")
    files = sorted(Path(p) for p in glob.glob(full))
    if not files:
        raise InputError(f"no input files match {full}")
    return files


def _check_schema(path: Path, schema: pa.Schema, columns: list[str]) -> None:
    for col in columns:
        idx = schema.get_field_index(col)
        if idx < 0:
            raise InputError(f"{path}: missing column '{col}'")
        typ = schema.field(idx).type
        if not (pa.types.is_floating(typ) or pa.types.is_integer(typ)):
            raise InputError(f"{path}: column '{col}' has non-numeric type {typ}")


def reduce_file(path: str | Path, reading: FileReading, threads: int | None = None) -> FileReduction:
    """Stream one parquet file and reduce its in-window, in-category events to what ``reading.keep`` keeps.

    Rows with NaN/inf or non-positive pT, ptErr or mass are dropped and counted per column: one
    bad muon fit must not poison a median or crash a fit. Each batch is cut into chunks reduced on
    ``threads`` threads (default: ``_reduction_threads()``) while the next batch is read, so at
    most two batches of input columns are held; the skim keeps file order.

    Raises:
        InputError: the file cannot be read as parquet, or a needed column is missing or non-numeric.
    """
    path, keep = Path(path), reading.keep
    try:
        parquet = pq.ParquetFile(path)
    except (OSError, pa.ArrowException) as err:
        raise InputError(f"{path}: not a readable parquet file ({type(err).__name__})") from err
    _check_schema(path, parquet.schema_arrow, reading.columns)
    threads = threads or _reduction_threads()
    weighted = reading.weight_column is not None
    histograms = tuple(HistogramPart.for_spec(spec, weighted) for spec in keep.specs)
    batch_parts: list[FileReduction] = []
    try:
        with ThreadPoolExecutor(threads) as pool:
            previous: list[Future[FileReduction]] = []
            for batch in parquet.iter_batches(batch_size=reading.batch_rows, columns=reading.columns, use_threads=threads > 1):
                arrays = {c: _column_values(batch.column(c)) for c in reading.columns}
                current = [pool.submit(_reduce_chunk, chunk, reading) for chunk in _chunks(arrays, batch.num_rows)]
                batch_parts += _batch_part(previous, weighted, keep.events, histograms)
                previous = current
            batch_parts += _batch_part(previous, weighted, keep.events, histograms)
    except (OSError, pa.ArrowException) as err:
        raise InputError(f"{path}: read failed, file truncated or corrupt ({type(err).__name__})") from err
    whole = _merge_parts(batch_parts, weighted, keep.events)
    if whole.bad_by_column:
        detail = ", ".join(f"{c}: {n}" for c, n in sorted(whole.bad_by_column.items()))
        log.warning("%s: dropped %d rows with NaN/inf or non-positive values (%s)", path, whole.n_bad, detail)
    return replace(whole, histograms=histograms)


def _column_values(column: pa.Array) -> np.ndarray:
    """The column as numpy, a view of its data buffer where it has no nulls; nulls become NaN so they count as bad rows.

    Same arrays as ``to_numpy(zero_copy_only=False)``, which would import pandas on first use.
    """
    if column.null_count:
        if not pa.types.is_floating(column.type):
            column = column.cast(pa.float64())
        column = column.fill_null(float("nan"))
    dtype = np.dtype(column.type.to_pandas_dtype())
    return np.frombuffer(column.buffers()[1], dtype=dtype, count=len(column), offset=column.offset * dtype.itemsize)


def _reduction_threads() -> int:
    """Threads for one file's reduction: every core in-process (files are read one after another,
    numpy and pyarrow release the GIL), one on a Dask worker (which already runs a task per core)."""
    if "distributed" in sys.modules:
        from distributed import get_worker

        try:
            get_worker()
            return 1
        except ValueError:
            pass
    return default_workers()


def _chunks(arrays: dict[str, np.ndarray], n_rows: int) -> Iterator[dict[str, np.ndarray]]:
    for start in range(0, n_rows, CHUNK_ROWS):
        yield {c: values[start : start + CHUNK_ROWS] for c, values in arrays.items()}


def _reduce_chunk(arrays: dict[str, np.ndarray], reading: FileReading) -> FileReduction:
    """Reduce one chunk; the Z-window cut comes first so categories and sigma_pred see only its rows."""
    mass = arrays["dimuon_mass"]
    lo, hi = reading.window
    keep = (mass > lo) & (mass < hi)
    good, bad_by_column = _valid_rows(arrays)
    n_bad = 0
    if good is not None:
        n_bad = len(good) - int(np.count_nonzero(good))
        keep &= good
    rows = np.flatnonzero(keep)
    n_outside_window = len(mass) - n_bad - len(rows)
    cat = reading.scheme.assign(arrays["mu1_pt"][rows], np.abs(arrays["mu1_eta"][rows]), np.abs(arrays["mu2_eta"][rows]))
    in_cat = cat != NO_CATEGORY
    rows = rows[in_cat]
    sel = {c: arrays[c][rows] for c in _POSITIVE_COLUMNS}
    spred = sigma_pred(sel["dimuon_mass"], sel["mu1_pt"], sel["mu1_ptErr"], sel["mu2_pt"], sel["mu2_ptErr"])
    weight = arrays[reading.weight_column][rows].astype(np.float32, copy=False) if reading.weight_column else None
    cat = cat[in_cat]
    mass32, spred32 = sel["dimuon_mass"].astype(np.float32, copy=False), spred.astype(np.float32, copy=False)
    kept = reading.keep
    muons = sel | {c: arrays[c][rows] for c in ("mu1_eta", "mu2_eta")} if kept.needs_muon_eta else sel
    skim = Skim(cat, mass32, spred32, weight, {c: muons[c] for c in MUON_COLUMNS} if kept.muons else None) if kept.events else None
    memo: dict = {}
    keys = tuple(spec.keys(cat, mass32, spred32, memo, muons, weight) for spec in kept.specs)
    sums = None
    if kept.profile is not None:
        sums = sum(
            profile_sums(kept.profile, muons[f"{mu}_eta"], muons[f"{mu}_pt"], muons[f"{mu}_ptErr"] / muons[f"{mu}_pt"]) for mu in ("mu1", "mu2")
        )  # fmt: skip
    return FileReduction(skim, (), len(mass), n_bad, n_outside_window, len(in_cat) - len(rows), bad_by_column, sums, keys)


def _valid_rows(arrays: dict[str, np.ndarray]) -> tuple[np.ndarray | None, dict[str, int]]:
    """Mask of rows whose every column is finite (and positive where it must be), with bad rows per column.

    A bad row is counted under its first bad column in column order. The mask is None when every
    row is good, which each column's min and max tell: bad values are rare, so the per-row masks
    are only built for a chunk that has one.
    """
    if all(_column_is_clean(c, values) for c, values in arrays.items()):
        return None, {}
    good = np.ones(len(next(iter(arrays.values()))), dtype=bool)
    bad_by_column: dict[str, int] = {}
    for col, values in arrays.items():
        col_ok = np.isfinite(values)
        if col in _POSITIVE_COLUMNS:
            col_ok &= values > 0
        n_col_bad = int(np.count_nonzero(good & ~col_ok))
        if n_col_bad:
            bad_by_column[col] = n_col_bad
        good &= col_ok
    return good, bad_by_column


def _column_is_clean(col: str, values: np.ndarray) -> bool:
    """True when no value is NaN/inf (or non-positive for a positive column); min and max propagate NaN."""
    low, high = np.min(values), np.max(values)
    if col in _POSITIVE_COLUMNS:
        return bool(low > 0 and high < np.inf)
    return bool(np.isfinite(low) and np.isfinite(high))


def _batch_part(
    chunks: list[Future[FileReduction]], weighted: bool, keep_events: bool, histograms: tuple[HistogramPart, ...]
) -> list[FileReduction]:
    """The merged part of one batch's chunks once they are done, or nothing before the first batch.

    Their keys are added to ``histograms`` here, in the reading thread, while the pool works on the next batch.
    """
    if not chunks:
        return []
    parts = [f.result() for f in chunks]
    for part in parts:
        for hists, keys in zip(histograms, part.keys):
            hists.add_keys(keys)
    return [_merge_parts(parts, weighted, keep_events)]


def _merge_parts(parts: list[FileReduction], weighted: bool, keep_events: bool) -> FileReduction:
    """One reduction from several chunks' in order: skims concatenated, counts summed (histogram keys are dropped: already added).

    Called per batch, so the chunks' many small arrays are freed and their memory re-used by the next batch.
    """
    if len(parts) == 1 and not parts[0].keys:
        return parts[0]
    profiles = [p.profile for p in parts if p.profile is not None]
    bad_by_column = dict(sum((Counter(p.bad_by_column) for p in parts), Counter()))
    skim = concat_skims([p.skim for p in parts], weighted) if keep_events else None  # type: ignore[misc]
    counts = {k: sum(getattr(p, k) for p in parts) for k in COUNTS}
    return FileReduction(skim, (), **counts, bad_by_column=bad_by_column, profile=sum(profiles) if profiles else None)


def concat_skims(skims: list[Skim], weighted: bool) -> Skim:
    """One skim from several, in the given order."""
    if not skims:
        empty = np.empty(0, dtype=np.float32)
        return Skim(np.empty(0, dtype=np.int8), empty, empty.copy(), empty.copy() if weighted else None)
    with_muons = all(s.muons is not None for s in skims)
    return Skim(
        np.concatenate([s.category for s in skims]),
        np.concatenate([s.mass for s in skims]),
        np.concatenate([s.sigma_pred for s in skims]),
        np.concatenate([s.weight for s in skims]) if weighted else None,
        {c: np.concatenate([s.muons[c] for s in skims]) for c in MUON_COLUMNS} if with_muons else None,  # type: ignore[index]
    )
