"""What a sample consists of: its datasets, their files, and the self-contained task each file is written from.

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
from lib.generator.settings import GeneratorSettings, Kind

__all__ = ["Dataset", "FileTask", "file_tasks", "plan_datasets"]

# Stage-1 job directories hold a few parts each: <dataset>/<n>/part<i>.parquet.
_PARTS_PER_DIRECTORY = 2


@dataclass(frozen=True)
class Dataset:
    """One dataset directory to write: its name, sample kind, Data era and event count."""

    name: str
    kind: Kind
    era: str | None
    n_events: int


@dataclass(frozen=True)
class FileTask:
    """Everything a (possibly separate) process needs to write one file; picklable."""

    dataset: Dataset
    i_file: int
    n_events: int
    first_event: int
    staging: Path
    seed: int
    k_map: Mapping[str, float]
    settings: GeneratorSettings
    scheme: CategoryScheme
    row_group_rows: int
    chunk_rows: int

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


def plan_datasets(n_data: int, n_mc: int, n_signal: int, settings: GeneratorSettings) -> list[Dataset]:
    """Every dataset the generator owns, including empty ones (so stale copies are replaced)."""
    eras = list(settings.eras)
    shares = _split(n_data, [settings.eras[e].lumi_fb for e in eras])
    plan = [Dataset(f"data_{era}", "data", era, count) for era, count in zip(eras, shares)]
    plan.append(Dataset(settings.samples.mc.dataset, "mc", None, n_mc))
    plan.append(Dataset(settings.samples.signal.dataset, "signal", None, n_signal))
    return plan


def file_tasks(
    plan: list[Dataset],
    files_per_dataset: int,
    k_maps: Mapping[str, Mapping[str, float]],
    settings: GeneratorSettings,
    **common: object,
) -> list[FileTask]:
    """Split every dataset into ``files_per_dataset`` files (fewer when it has fewer events)."""
    tasks = []
    for ds in plan:
        k_map = k_maps[getattr(settings.samples, ds.kind).k_map]
        first_event = 1
        for i_file, n_file in enumerate(_split(ds.n_events, [1.0] * files_per_dataset)):
            if n_file:
                tasks.append(FileTask(ds, i_file, n_file, first_event, k_map=k_map, settings=settings, **common))
                first_event += n_file
    return tasks
