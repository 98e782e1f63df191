"""Finished fits on disk, one verified entry per fitted name, written the moment a fit ends.

A run that is interrupted (Ctrl-C, kill, a crash) and started again re-uses every fit whose key
is unchanged; the key holds the fit's events, specs and gates and the digest of the code that
built and ran it (``fit_code_digest``), so a stale result can never be picked up.
"""

from __future__ import annotations

from pathlib import Path

from lib.fitting.result import FitResult
from lib.io.cache import EntryStore, source_digest

# The package that turns a task into a result: model, runner, gates, C++ pdf.
FITTING_PACKAGE = "lib.fitting"


def fit_code_digest(builder: str) -> str:
    """Digest of the code a cached fit came from: the whole fitting package and ``builder``, the module that builds the tasks."""
    return source_digest(FITTING_PACKAGE, builder)


class FitCache(EntryStore[FitResult]):
    """The fits of one kind of job (categories, closure bins, Higgs bins) in one directory, by fitted name."""

    def __init__(self, directory: Path) -> None:
        super().__init__(directory, "fit", FitResult)
