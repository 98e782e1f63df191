"""What a sample consists of: the request, its datasets, their files, and the self-contained task each file is written from.

The layout is the contract with the truth file and with determinism: events are shared out over
the Data eras by luminosity and over the files of a dataset by a fixed rule, event numbers are
consecutive within a dataset, and a task carries everything needed to write its file in another
process, so the bytes do not depend on who writes them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lib.categories import CategoryScheme
from lib.errors import ConfigError
from lib.generator.kmaps import KOverride, builtin_k_map, resolve_k_map
from lib.generator.settings import GeneratorSettings, Kind

DEFAULT_SEED = 20261123
# Stage-1 job directories hold a few parts each: <dataset>/<n>/part<i>.parquet.
_PARTS_PER_DIRECTORY = 2


def _check_count(name: str, value: object, minimum: int) -> None:
    """Reject a count that is not an integer >= ``minimum``, naming the argument."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}")


@dataclass(frozen=True)
class SampleRequest:
    """What to make: the year and master seed (None: ``DEFAULT_SEED`` + (year - 2018)), the events of each kind,
    and overrides of the built-in Data and MC k maps (``KOverride``). Same request, same settings: byte-identical files.

    Raises:
        ConfigError: a negative event count or seed, or a year that is not four digits.
    """

    year: int = 2018
    seed: int | None = None
    n_data: int = 1_000_000
    n_mc: int = 1_000_000
    n_signal: int = 200_000
    k_data: KOverride = None
    k_mc: KOverride = None

    def __post_init__(self) -> None:
        for name in ("n_data", "n_mc", "n_signal"):
            _check_count(name, getattr(self, name), 0)
        if not 1900 <= self.year <= 2100:
            raise ConfigError(f"year must be a four-digit year, got {self.year}")
        if self.seed is None:
            # One seed per year, so a two-year run never compares a sample with itself; frozen: resolved once, here.
            object.__setattr__(self, "seed", DEFAULT_SEED + (self.year - 2018))
        elif self.seed < 0:
            raise ConfigError(f"seed must be >= 0, got {self.seed}")


@dataclass(frozen=True)
class WriteOptions:
    """How to write a sample: files per dataset, rows per row group, events held in memory at once
    (per worker) and worker processes (None: the usable cores; 1: in-process). The bytes depend on
    the first three, not on the workers.

    Raises:
        ConfigError: a file, row-group or chunk size below 1.
    """

    files_per_dataset: int = 4
    row_group_rows: int = 100_000
    chunk_rows: int = 1_000_000
    workers: int | None = None

    def __post_init__(self) -> None:
        for name, value in self.layout().items():
            _check_count(name, value, 1)

    def layout(self) -> dict[str, int]:
        """The options the bytes depend on, as the truth file records them."""
        return {"files_per_dataset": self.files_per_dataset, "row_group_rows": self.row_group_rows, "chunk_rows": self.chunk_rows}


@dataclass(frozen=True)
class Dataset:
    """One dataset directory to write: its name, sample kind, Data era and event count."""

    name: str
    kind: Kind
    era: str | None
    n_events: int


@dataclass(frozen=True)
class SamplePlan:
    """A request resolved against the settings and categories: its k maps and every dataset it writes."""

    request: SampleRequest
    options: WriteOptions
    settings: GeneratorSettings
    scheme: CategoryScheme
    k_maps: Mapping[str, Mapping[str, float]]
    datasets: list[Dataset]


@dataclass(frozen=True)
class FileTask:
    """Everything a (possibly separate) process needs to write one file; picklable."""

    plan: SamplePlan
    dataset: Dataset
    i_file: int
    n_events: int
    first_event: int
    staging: Path

    @property
    def rel_path(self) -> str:
        n, i = divmod(self.i_file, _PARTS_PER_DIRECTORY)
        return f"{self.dataset.name}/{n}/part{i}.parquet"


def _split(n: int, weights: list[float]) -> list[int]:
    """Integer shares of ``n`` proportional to ``weights`` (largest remainder, deterministic).

    >>> _split(10, [1.0, 1.0, 1.0])
    [4, 3, 3]
    """
    exact = np.asarray(weights, dtype=np.float64) / np.sum(weights) * n
    counts = np.floor(exact).astype(np.int64)
    for i in np.argsort(-(exact - counts), kind="stable")[: n - int(counts.sum())]:
        counts[i] += 1
    return [int(c) for c in counts]


def _k_maps(request: SampleRequest, settings: GeneratorSettings, scheme: CategoryScheme) -> dict[str, dict[str, float]]:
    """The Data and MC category k maps: the built-in maps with the request's overrides."""
    k_maps: dict[str, dict[str, float]] = {}
    for which, override in (("data", request.k_data), ("mc", request.k_mc)):
        if override is not None and getattr(settings.muon_k_maps, which) is not None:
            raise ConfigError(f"k_{which} overrides a category k map, but muon_k_maps.{which} gives each muon its own k")
        try:
            k_maps[which] = resolve_k_map(builtin_k_map(which, settings, scheme), override, scheme)
        except ConfigError as err:
            raise ConfigError(f"{which} k map: {err}") from err
    return k_maps


def _datasets(request: SampleRequest, settings: GeneratorSettings) -> list[Dataset]:
    """Every dataset the generator owns, including empty ones (so stale copies are replaced)."""
    eras = list(settings.eras)
    shares = _split(request.n_data, [settings.eras[e].lumi_fb for e in eras])
    datasets = [Dataset(f"data_{era}", "data", era, count) for era, count in zip(eras, shares)]
    datasets.append(Dataset(settings.samples.mc.dataset, "mc", None, request.n_mc))
    datasets.append(Dataset(settings.samples.signal.dataset, "signal", None, request.n_signal))
    return datasets


def plan_sample(request: SampleRequest, options: WriteOptions, settings: GeneratorSettings, scheme: CategoryScheme) -> SamplePlan:
    """Resolve a request: its k maps and datasets.

    Raises:
        ConfigError: a k override that does not fit the categories or the settings' per-muon k maps.
    """
    return SamplePlan(request, options, settings, scheme, _k_maps(request, settings, scheme), _datasets(request, settings))


def file_tasks(plan: SamplePlan, staging: Path) -> list[FileTask]:
    """Split every dataset into ``files_per_dataset`` files (fewer when it has fewer events), written under ``staging``."""
    tasks = []
    for ds in plan.datasets:
        first_event = 1
        for i_file, n_file in enumerate(_split(ds.n_events, [1.0] * plan.options.files_per_dataset)):
            if n_file:
                tasks.append(FileTask(plan, ds, i_file, n_file, first_event, staging))
                first_event += n_file
    return tasks
