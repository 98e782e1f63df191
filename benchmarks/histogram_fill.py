"""Time the reduction's histogram hot path on a 1 M-event sample: filling per chunk, merging per file.

The events of a generated sample (``python -m lib.generate``) are cut into the reader's chunks and
keyed as the reader keys them (``lib.io.reader``, default configuration: categories and window
acceptance); what is timed is what follows, once unweighted (Data) and once weighted (MC):

- fill: each chunk's keys added to its file's histograms, as the reading thread adds them;
- merge: the files' histograms folded into one by ``ReductionMerger`` (counts on arrival, weights
  in file order);
- reduce: ``reduce_file`` on every file of the sample and the merge, reading included (one
  thread), the whole hot path for scale.

Best of ``--repeat`` rounds, CPU seconds of this process (the machine is shared):

    .venv/bin/python benchmarks/histogram_fill.py --input /tmp/hist_sample --year 2018
"""

from __future__ import annotations

import argparse
import sys
import time
from concurrent.futures import Future
from pathlib import Path
from typing import Callable

import numpy as np
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lib.categories import CategoryScheme  # noqa: E402
from lib.config import load_config  # noqa: E402
from lib.histogram_specs import category_spec  # noqa: E402
from lib.histograms import HistogramPart  # noqa: E402
from lib.io.merge import ReductionMerger  # noqa: E402
from lib.io.reader import CHUNK_ROWS, FileReading, FileReduction, Keep, _batch_part, _reduce_chunk, find_files, reduce_file  # noqa: E402


def best_cpu(action: Callable[[], object], repeat: int) -> float:
    best = np.inf
    for _ in range(repeat):
        start = time.process_time()
        action()
        best = min(best, time.process_time() - start)
    return best


def keyed_files(paths: list[Path], reading: FileReading) -> list[list]:
    """Per file, its chunks reduced to keys (a chunk's ``FileReduction``), nothing timed."""
    files = []
    for path in paths:
        table = pq.read_table(path, columns=reading.columns)
        arrays = {c: table.column(c).to_numpy() for c in reading.columns}
        files.append([_reduce_chunk({c: v[s : s + CHUNK_ROWS] for c, v in arrays.items()}, reading) for s in range(0, table.num_rows, CHUNK_ROWS)])
    return files


def fill(files: list[list], specs: tuple, weighted: bool) -> list[tuple[HistogramPart, ...]]:
    """Each file's histograms, its chunks added as the reading thread adds them."""
    out = []
    for parts in files:
        histograms = tuple(HistogramPart.for_spec(spec, weighted) for spec in specs)
        done = []
        for part in parts:
            future: Future = Future()
            future.set_result(part)
            done.append(future)
        _batch_part(done, weighted, False, histograms)
        out.append(histograms)
    return out


def merge(paths: list[Path], specs: tuple, weighted: bool, per_file: list[tuple[HistogramPart, ...]]) -> None:
    merger = ReductionMerger(paths, specs, weighted)
    for index in range(len(paths)):
        merger.add(index, FileReduction(None, per_file[index], 0, 0, 0, 0))
    merger.result()


def reduce_all(paths: list[Path], reading: FileReading) -> None:
    merger = ReductionMerger(paths, reading.keep.specs, reading.weight_column is not None)
    for index, path in enumerate(paths):
        merger.add(index, reduce_file(path, reading, threads=1))
    merger.result()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", type=Path, required=True, help="stage-1 root of a generated sample")
    parser.add_argument("--year", default="2018")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    config = load_config()
    scheme = CategoryScheme.from_config(config.categories)
    specs = (category_spec(config, scheme),)
    for label, glob, weight_column in (("Data", config.input.data_glob, None), ("MC", config.input.mc_glob, config.input.weight_column)):
        paths = find_files(args.input, glob, args.year)
        weighted = weight_column is not None
        reading = FileReading(scheme, config.selection.z_window_gev, weight_column, keep=Keep(specs))
        files = keyed_files(paths, reading)
        n_events = sum(k.spred.size for parts in files for p in parts for k in p.keys)
        per_file = fill(files, specs, weighted)
        t_fill = best_cpu(lambda: fill(files, specs, weighted), args.repeat)
        t_merge = best_cpu(lambda: merge(paths, specs, weighted, per_file), args.repeat)
        t_reduce = best_cpu(lambda: reduce_all(paths, reading), max(1, args.repeat // 2))
        print(f"{label}: {len(paths)} files, {n_events} events kept: fill {1e3 * t_fill:.0f} ms, merge {1e3 * t_merge:.0f} ms, "
              f"reduce (read+key+fill+merge) {1e3 * t_reduce:.0f} ms CPU")  # fmt: skip


if __name__ == "__main__":
    main()
