"""Where the numbers come from: the JSON's hash and the input files as they are now (the page shows them).

The input files are listed as they are on disk now and fingerprinted the way the reduction cache
does (path, size, mtime): a fingerprint equal to the one recorded in ``provenance.json`` says the
report describes these very files, a different one that they changed since the fits.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from lib.config import Config
from lib.errors import CalibrationError
from lib.io.cache import inputs_fingerprint
from lib.io.reader import find_files
from lib.report.outputs import SampleOutputs

__all__ = ["InputFiles", "find_inputs", "file_digest"]


@dataclass(frozen=True)
class InputFiles:
    """The sample's input files now: root, glob, (path, bytes) per file, their fingerprint, or why none were found."""

    root: Path
    pattern: str
    files: tuple[tuple[str, int], ...]
    fingerprint: str | None
    error: str | None = None


def find_inputs(sample: SampleOutputs, config: Config) -> InputFiles:
    """The files the directory's steps 1-2 read, found again with the configured glob."""
    root = Path(str(sample.provenance.get("input_path") or config.input.stage1_path))
    pattern = config.input.mc_glob if sample.label == "MC" else config.input.data_glob
    try:
        files = find_files(root, pattern, sample.year)
    except CalibrationError as err:
        return InputFiles(root, pattern, (), None, str(err))
    return InputFiles(root, pattern, tuple((str(f), f.stat().st_size) for f in files), inputs_fingerprint(files))


def file_digest(path: Path) -> str:
    """First 16 hex digits of the file's SHA-256: names exactly which JSON the report speaks of."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]
