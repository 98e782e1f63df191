"""Streaming Stage-1 reader: find files, read only the needed columns batch by batch, reduce to a skim.

Only a compact per-event skim (category index, mass, sigma_pred, weight: 13 bytes an event) leaves
this module, so memory scales with the number of Z events, never with the width of Stage-1 files.
Each file is reduced independently by a module-level function, so the same code runs in-process
or as Dask tasks.
"""

from __future__ import annotations

import glob
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from lib.categories import NO_CATEGORY, CategoryScheme
from lib.errors import InputError
from lib.resolution import sigma_pred

__all__ = ["KINEMATIC_COLUMNS", "Skim", "FileReduction", "find_files", "reduce_file", "merge_reductions"]

log = logging.getLogger(__name__)

KINEMATIC_COLUMNS = ("mu1_pt", "mu1_ptErr", "mu1_eta", "mu2_pt", "mu2_ptErr", "mu2_eta", "dimuon_mass")
_POSITIVE_COLUMNS = ("mu1_pt", "mu1_ptErr", "mu2_pt", "mu2_ptErr", "dimuon_mass")


@dataclass(frozen=True)
class Skim:
    """Per-event compact record of Z-window events that fall in a category."""

    category: np.ndarray  # int8 flat category index
    mass: np.ndarray  # float32 dimuon mass, GeV
    sigma_pred: np.ndarray  # float32 predicted mass resolution, GeV
    weight: np.ndarray | None  # float32 MC weight, None for data

    def __len__(self) -> int:
        return len(self.mass)

    def select(self, mask: np.ndarray) -> "Skim":
        return Skim(
            self.category[mask], self.mass[mask], self.sigma_pred[mask], None if self.weight is None else self.weight[mask]
        )


@dataclass(frozen=True)
class FileReduction:
    """What one file contributes: its skim part and the bookkeeping of what was dropped and why."""

    path: str
    skim: Skim
    n_read: int
    n_bad: int
    n_outside_window: int
    n_outside_categories: int
    bad_by_column: dict[str, int] = field(default_factory=dict)


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


def reduce_file(
    path: str | Path,
    scheme: CategoryScheme,
    z_window_gev: tuple[float, float],
    weight_column: str | None,
    batch_rows: int = 500_000,
) -> FileReduction:
    """Stream one parquet file and reduce it to a skim of in-window, in-category events.

    Rows with NaN/inf or non-positive pT, ptErr or mass are dropped and counted per column, since
    one bad muon fit must not poison a median or crash a fit.

    Raises:
        InputError: the file cannot be read as parquet, or a needed column is missing or non-numeric.
    """
    path = Path(path)
    columns = list(KINEMATIC_COLUMNS) + ([weight_column] if weight_column else [])
    try:
        parquet = pq.ParquetFile(path)
    except (OSError, pa.ArrowException) as err:
        raise InputError(f"{path}: not a readable parquet file ({type(err).__name__})") from err
    _check_schema(path, parquet.schema_arrow, columns)

    parts: list[tuple[np.ndarray, ...]] = []
    n_read = n_bad = n_window = n_cat = 0
    bad_by_column: dict[str, int] = {}
    lo, hi = z_window_gev
    try:
        for batch in parquet.iter_batches(batch_size=batch_rows, columns=columns, use_threads=False):
            arrays = {c: batch.column(c).to_numpy(zero_copy_only=False) for c in columns}
            n_read += batch.num_rows
            good = np.ones(batch.num_rows, dtype=bool)
            for col in columns:
                values = arrays[col]
                col_ok = np.isfinite(values)
                if col in _POSITIVE_COLUMNS:
                    col_ok &= values > 0
                n_col_bad = int(np.count_nonzero(good & ~col_ok))
                if n_col_bad:
                    bad_by_column[col] = bad_by_column.get(col, 0) + n_col_bad
                good &= col_ok
            n_bad += int(np.count_nonzero(~good))
            mass = arrays["dimuon_mass"]
            in_window = good & (mass > lo) & (mass < hi)
            n_window += int(np.count_nonzero(good & ~in_window))
            sel = {c: arrays[c][in_window] for c in columns}
            cat = scheme.assign(sel["mu1_pt"], np.abs(sel["mu1_eta"]), np.abs(sel["mu2_eta"]))
            in_cat = cat != NO_CATEGORY
            n_cat += int(np.count_nonzero(~in_cat))
            spred = sigma_pred(sel["dimuon_mass"], sel["mu1_pt"], sel["mu1_ptErr"], sel["mu2_pt"], sel["mu2_ptErr"])
            weight = sel[weight_column][in_cat].astype(np.float32) if weight_column else None
            parts.append(
                (cat[in_cat], sel["dimuon_mass"][in_cat].astype(np.float32), spred[in_cat].astype(np.float32), weight)
            )
    except (OSError, pa.ArrowException) as err:
        raise InputError(f"{path}: read failed, file truncated or corrupt ({type(err).__name__})") from err

    if bad_by_column:
        detail = ", ".join(f"{c}: {n}" for c, n in sorted(bad_by_column.items()))
        log.warning("%s: dropped %d rows with NaN/inf or non-positive values (%s)", path, n_bad, detail)
    skim = _concat_parts(parts, weighted=weight_column is not None)
    return FileReduction(str(path), skim, n_read, n_bad, n_window, n_cat, bad_by_column)


def _concat_parts(parts: list[tuple[np.ndarray, ...]], weighted: bool) -> Skim:
    if not parts:
        empty = np.empty(0, dtype=np.float32)
        return Skim(np.empty(0, dtype=np.int8), empty, empty.copy(), empty.copy() if weighted else None)
    return Skim(
        np.concatenate([p[0] for p in parts]),
        np.concatenate([p[1] for p in parts]),
        np.concatenate([p[2] for p in parts]),
        np.concatenate([p[3] for p in parts]) if weighted else None,
    )


def merge_reductions(reductions: list[FileReduction]) -> Skim:
    """Concatenate per-file skims in file order (so results do not depend on scheduling)."""
    weighted = bool(reductions) and reductions[0].skim.weight is not None
    parts = [(r.skim.category, r.skim.mass, r.skim.sigma_pred, r.skim.weight) for r in reductions]
    return _concat_parts(parts, weighted)
