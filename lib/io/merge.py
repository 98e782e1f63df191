"""Fold per-file reductions into one as they arrive, without keeping them.

File tasks finish in any order. Event counts are integers and are added the moment a file
arrives; sums of weights (floats, whose last digits depend on the order of adding) and skims wait
until the files before them have arrived, so a run in-process and one on a cluster give identical
numbers.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import pyarrow as pa

from lib.errors import InputError
from lib.histogram_specs import HistogramSpec
from lib.histograms import CategoryHistograms
from lib.io.reader import COUNTS, FileReduction, Skim, concat_skims

log = logging.getLogger(__name__)


@dataclass
class Reduction:
    """All files of a sample reduced: merged histograms and/or skim, and what was dropped and why."""

    histograms: tuple[CategoryHistograms, ...]
    skim: Skim | None
    n_files: int = 0
    n_read: int = 0
    n_bad: int = 0
    n_outside_window: int = 0
    n_outside_categories: int = 0
    skipped: list[str] = field(default_factory=list)
    # Summed ``lib.peak_scaling.profile_sums`` of the muons (None: not asked for).
    profile: np.ndarray | None = None

    @property
    def n_kept(self) -> int:
        return self.n_read - self.n_bad - self.n_outside_window - self.n_outside_categories


class ReductionMerger:
    """``add`` is an executor's ``on_result``: it takes each file's reduction or a skip message.

    A skip message (a damaged file under --skip-bad-files) is warned about and counted. A reading
    process that died on every try stops the run in the executor, naming the file.
    """

    def __init__(self, files: Sequence[Path], specs: tuple[HistogramSpec, ...], weighted: bool) -> None:
        self.files = [str(f) for f in files]
        self.weighted = weighted
        self._merged = Reduction(tuple(CategoryHistograms.for_spec(spec, weighted) for spec in specs), None)
        self._skims: list[Skim] = []
        # Files that arrived before their turn (their counts already added): their reductions or skip messages.
        self._waiting: dict[int, FileReduction | str] = {}
        self._next = 0

    def add(self, index: int, result: FileReduction | str) -> None:
        if isinstance(result, FileReduction):
            self._add_counts(result)  # only what depends on the order waits: weighted sums and the skim
        self._waiting[index] = result
        while self._next in self._waiting:
            self._fold(self._waiting.pop(self._next))
            self._next += 1

    def _add_counts(self, result: FileReduction) -> None:
        merged = self._merged
        merged.n_files += 1
        for count in COUNTS:
            setattr(merged, count, getattr(merged, count) + getattr(result, count))
        for mine, theirs in zip(merged.histograms, result.histograms):
            mine.add_counts(theirs)

    def _fold(self, result: FileReduction | str) -> None:
        """Fold in file order what depends on the order: skips, weighted sums, skims."""
        merged = self._merged
        if isinstance(result, str):
            log.warning("skipping %s", result)
            merged.skipped.append(self.files[self._next])
            return
        if result.profile is not None:
            merged.profile = result.profile.copy() if merged.profile is None else merged.profile + result.profile
        for mine, theirs in zip(merged.histograms, result.histograms):
            mine.add_weights(theirs)
        if result.skim is not None:
            self._skims.append(result.skim)

    def result(self) -> Reduction:
        """The merged reduction once every file has been added.

        Raises:
            InputError: every file was damaged, so there is nothing to calibrate on.
        """
        merged = self._merged
        if merged.skipped:
            log.warning("skipped %d of %d files: %s", len(merged.skipped), len(self.files), ", ".join(merged.skipped))
        if len(merged.skipped) == len(self.files):
            raise InputError(f"all {len(self.files)} input files are unreadable, e.g. {merged.skipped[0]}")
        # Reading is over: Arrow's allocator hands back the read buffers it kept for the next file.
        pa.default_memory_pool().release_unused()
        if self._skims:
            merged.skim = concat_skims(self._skims, self.weighted)
            self._skims = []
        return merged
