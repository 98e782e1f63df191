"""Finished fits on disk, one verified entry per fitted name, written the moment a fit ends.

A run that is interrupted (Ctrl-C, kill, a crash) and started again re-uses every fit whose key
is unchanged; the key holds the fit's events, specs and gates and the digest of the code that
built and ran it (``fit_code_digest``), so a stale result can never be picked up. Entries are
``lib.io.cache.EntryStore`` files: the payload is a pickle, unpickled only after its checksum,
kind, name and key are verified (the cache lives in the run's own output directory, whose
writer is trusted; the checksum guards against damage, not against that writer).
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import BinaryIO

from lib.fitting.result import FitResult
from lib.io.cache import EntryStore, source_digest

__all__ = ["FitCache", "fit_code_digest"]

# The package that turns a task into a result: model, runner, gates, C++ pdf.
FITTING_PACKAGE = "lib.fitting"


def fit_code_digest(builder: str) -> str:
    """Digest of the code a cached fit came from: the whole fitting package and ``builder``, the module that builds the tasks."""
    return source_digest(FITTING_PACKAGE, builder)


class FitCache:
    """The fits of one kind of job (categories, closure bins, Higgs bins) in one directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self._entries = EntryStore(self.directory, "fit")

    def load(self, name: str, key: str) -> FitResult | None:
        """The cached fit of ``name`` with ``key``, or None (a bad entry also with a warning naming its file)."""
        return self._entries.load(name, key, lambda payload: _fit_result(payload, name))

    def store(self, name: str, key: str, result: FitResult) -> None:
        self._entries.store(name, key, pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL))


def _fit_result(payload: BinaryIO, name: str) -> FitResult:
    """The verified payload as the fit of ``name``.

    Raises:
        ValueError: it holds something else (caught by ``EntryStore.load``: a warning, then a refit).
    """
    result = pickle.load(payload)
    if not isinstance(result, FitResult) or result.name != name:
        raise ValueError(f"it holds {type(result).__name__} {getattr(result, 'name', '')!r}, not the fit of {name}")
    return result
