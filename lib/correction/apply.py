"""Apply a correction to Stage-1 parquet: what Stage-1 does, as a standalone streaming step.

Each input becomes a new file (same path relative to the inputs' root) with every original column,
in order, plus ``uncalibrated_dimuon_ebe_mass_res`` = sigma_pred (``lib.resolution``),
``dimuon_ebe_mass_res`` = sigma_pred x factor(mu1_pt, |mu1_eta|, |mu2_eta|) and
``dimuon_ebe_mass_res_rel`` = the latter over dimuon_mass; a column of one of these names (an
earlier calibration) is replaced where it stands. Outputs are streamed in bounded batches and renamed into place; inputs are never overwritten.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from lib.correction.writer import LoadedCorrection
from lib.io.atomic import atomic_path
from lib.errors import InputError
from lib.resolution import sigma_pred

logger = logging.getLogger(__name__)

_REQUIRED_COLUMNS = ("mu1_pt", "mu1_ptErr", "mu1_eta", "mu2_pt", "mu2_ptErr", "mu2_eta", "dimuon_mass")
_NEW_COLUMNS = ("uncalibrated_dimuon_ebe_mass_res", "dimuon_ebe_mass_res", "dimuon_ebe_mass_res_rel")
_METADATA_KEY = b"ebe_calib.correction"


@dataclass(frozen=True)
class AppliedFile:
    """One input file, the file written from it, and its row count."""

    source: Path
    output: Path
    rows: int


def apply_correction(
    input_files: Sequence[Path],
    output_dir: Path,
    correction: LoadedCorrection,
    *,
    input_root: Path | None = None,
    batch_rows: int = 500_000,
    overwrite: bool = False,
) -> list[AppliedFile]:
    """Write calibrated copies of Stage-1 parquet files, at their paths below ``input_root`` (default: their common directory).

    All inputs are checked (readable, required columns present, outputs not clashing with inputs)
    before the first output is written, so a bad file list fails without leaving partial results.
    At most ``batch_rows`` rows are held in memory at once; ``overwrite`` replaces outputs (never inputs).

    Raises:
        InputError: no inputs, unreadable input, missing column (file and column named), an output
            that would overwrite an input, or an existing output without ``overwrite``.
    """
    plan = _plan([Path(p) for p in input_files], Path(output_dir), input_root, overwrite)
    for source, _ in plan:
        _check_columns(source)
    done = []
    for source, output in plan:
        rows = _apply_one(source, output, correction, batch_rows)
        logger.info("%s -> %s (%d rows)", source, output, rows)
        done.append(AppliedFile(source, output, rows))
    return done


def _plan(inputs: list[Path], output_dir: Path, input_root: Path | None, overwrite: bool) -> list[tuple[Path, Path]]:
    """(input, output) pairs, refusing outputs that are inputs or that exist without ``overwrite``."""
    if not inputs:
        raise InputError("no input parquet files given")
    for path in inputs:
        if not path.is_file():
            raise InputError(f"input file {path} does not exist or is not a file")
    resolved = [p.resolve() for p in inputs]
    root = Path(input_root).resolve() if input_root is not None else Path(os.path.commonpath([p.parent for p in resolved]))
    out_root = output_dir.resolve()
    taken = set(resolved)
    plan: dict[Path, Path] = {}  # output: input
    for path, res in zip(inputs, resolved):
        if not res.is_relative_to(root):
            raise InputError(f"input file {path} is not below the input root {root}")
        output = out_root / res.relative_to(root)
        if output in taken:
            raise InputError(f"refusing to overwrite input file {output}; choose an output directory outside the inputs")
        if output in plan:
            raise InputError(f"input file {path} is listed twice")
        if output.exists() and not overwrite:
            raise InputError(f"output file {output} already exists; remove it or pass overwrite")
        plan[output] = res
    return [(res, output) for output, res in plan.items()]


def _check_columns(path: Path) -> None:
    """Fail on an unreadable file or a missing required column, naming both."""
    try:
        names = set(pq.read_schema(path).names)
    except (OSError, pa.ArrowException) as err:
        raise InputError(f"cannot read {path} as parquet: {' '.join(str(err).split())}") from err
    missing = [c for c in _REQUIRED_COLUMNS if c not in names]
    if missing:
        raise InputError(f"{path} lacks column {missing[0]}" + (f" (and {', '.join(missing[1:])})" if missing[1:] else ""))


def _output_schema(schema: pa.Schema, loaded: LoadedCorrection) -> pa.Schema:
    """Input schema with the three resolution columns (float64) replaced in place or appended, and the correction's provenance."""
    for name in _NEW_COLUMNS:
        field = pa.field(name, pa.float64())
        index = schema.get_field_index(name)
        if index >= 0:
            logger.info("replacing existing column %s", name)
            schema = schema.set(index, field)
        else:
            schema = schema.append(field)
    provenance = json.dumps({"file": loaded.path.name, "correction": loaded.name, "sha256": loaded.sha256})
    return schema.with_metadata({**(schema.metadata or {}), _METADATA_KEY: provenance.encode()})


def _apply_one(source: Path, output: Path, loaded: LoadedCorrection, batch_rows: int) -> int:
    """Stream one file into ``output``; its row count."""
    try:
        with atomic_path(output) as tmp_path:
            parquet = pq.ParquetFile(source)
            schema = _output_schema(parquet.schema_arrow, loaded)
            with pq.ParquetWriter(tmp_path, schema) as writer:
                # Row group by row group: no batch spans two, so the output keeps the input's row groups.
                for group in range(parquet.num_row_groups):
                    for batch in parquet.iter_batches(batch_size=batch_rows, row_groups=[group]):
                        writer.write_batch(_with_resolution(batch, schema, loaded))
    except (OSError, pa.ArrowException) as err:
        raise InputError(f"failed to write {output} from {source}: {' '.join(str(err).split())}") from err
    return parquet.metadata.num_rows


def _with_resolution(batch: pa.RecordBatch, schema: pa.Schema, loaded: LoadedCorrection) -> pa.RecordBatch:
    """The batch with the three resolution columns computed."""

    def column(name: str) -> np.ndarray:
        return np.asarray(batch.column(name).to_numpy(zero_copy_only=False), dtype=np.float64)

    mass = column("dimuon_mass")
    # Zero pT or mass in a malformed event gives inf/NaN for that event only, not an exception.
    with np.errstate(divide="ignore", invalid="ignore"):
        uncalibrated = sigma_pred(mass, column("mu1_pt"), column("mu1_ptErr"), column("mu2_pt"), column("mu2_ptErr"))
        calibrated = uncalibrated * loaded.evaluate(column("mu1_pt"), np.abs(column("mu1_eta")), np.abs(column("mu2_eta")))
        new = dict(zip(_NEW_COLUMNS, (uncalibrated, calibrated, calibrated / mass)))
    arrays = [pa.array(new[f.name], type=pa.float64()) if f.name in new else batch.column(f.name) for f in schema]
    return pa.RecordBatch.from_arrays(arrays, schema=schema)
