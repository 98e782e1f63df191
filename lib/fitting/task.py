"""The input of one fit: its events, its specs, the category's acceptance and the gates (picklable, no ROOT).

A ``FitTask`` is what a worker process receives; ``lib.fitting.runner.fit_category`` turns it into
a ``FitResult``. The specs are final when they arrive here (``lib.config.specs``); what the data
decide for the category, its acceptance ``A(m)``, travels beside them as an ``AcceptanceTable``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lib.config import FitSpec, QualityConfig
from lib.histograms import MassHistogram


@dataclass(frozen=True)
class AcceptanceTable:
    """``A(m)`` of a category (or closure bin) at evenly spaced knot masses from ``range_gev[0]`` to ``range_gev[1]``.

    Measured from the data (``lib.acceptance.group_acceptance``); a spec whose line shape is
    ``acceptance`` is fitted with it.
    """

    values: tuple[float, ...]
    range_gev: tuple[float, float]


@dataclass(frozen=True)
class FitEvents:
    """The events of one fit: ``masses`` (and ``weights``), or, for binned fits, ``histogram``.

    ``masses`` are all events of the category: the runner keeps those inside each attempt's fit
    range and histograms them itself when binned. ``histogram`` is the category's mass histogram
    on the fine grid filled while reading, which each attempt sums into its own bins.
    """

    masses: np.ndarray | None = None
    weights: np.ndarray | None = None
    histogram: MassHistogram | None = None

    @property
    def n_events(self) -> int:
        return self.histogram.n_events if self.histogram is not None else len(self.masses)  # type: ignore[arg-type]

    @property
    def weighted(self) -> bool:
        return self.weights is not None or (self.histogram is not None and self.histogram.sumw is not None)


@dataclass(frozen=True)
class FitTask:
    """Input of one category fit; picklable, so it can be shipped to a worker process.

    ``retries`` come from ``lib.config.retry_specs``; ``median_sigma_pred`` feeds the sigma
    plausibility gate; ``acceptance`` is the category's ``A(m)`` for the specs whose line shape
    needs it (``FitSpec.uses_acceptance``); ``log_path`` receives ROOT's own output
    (``lib.fitting.native_log``).
    """

    name: str
    events: FitEvents
    nominal: FitSpec
    retries: tuple[FitSpec, ...]
    median_sigma_pred: float
    quality: QualityConfig
    acceptance: AcceptanceTable | None = None
    log_path: Path | None = None  # what ROOT prints during the attempts goes here (None: the terminal)

    @property
    def n_events(self) -> int:
        return self.events.n_events

    @property
    def weighted(self) -> bool:
        return self.events.weighted

    def with_specs(self, change: Callable[[FitSpec], FitSpec]) -> FitTask:
        """This task with ``change`` made to its nominal spec and every retry step alike."""
        return dataclasses.replace(self, nominal=change(self.nominal), retries=tuple(map(change, self.retries)))
