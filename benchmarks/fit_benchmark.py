#!/usr/bin/env python3
"""Step 1 alone: the 36 binned category fits, serial and parallel, plus a few unbinned fits.

The sample (cached by ``run_benchmarks.py`` under ``benchmarks/_cache/``) is read once; then the
same fit jobs run through the run's own process pool (``lib.executor.ProcessExecutor``) with one worker and with one per core,
each in a fresh pool (worker start-up and the first-fit ROOT warm-up included, as in a real run).
The forkserver that forks the workers is started (and loads ROOT) while the sample is read, as in
a run. Reported: wall per mode, the speed-up, the median and spread of the per-category fit time (both
``fitTo`` stages, chi2 and plot arrays, retries included) and how many attempts the ladder needed.

    .venv/bin/python benchmarks/fit_benchmark.py --events 10000000
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from run_benchmarks import DATA_GLOB, ensure_sample, machine_description  # noqa: E402


def load_jobs(root: Path, binned: bool, names: list[str] | None = None, max_events: int | None = None) -> list:
    """Fit jobs for the sample's categories exactly as step 1 builds them (no plots)."""
    from lib.categories import CategoryScheme
    from lib.config import load_config
    from lib.executor import InlineExecutor
    from lib.figures import FigureQueue
    from lib.peak_fits import CATEGORIES, FitGroup, category_jobs
    from lib.histogram_specs import category_spec
    from lib.medians import compute_medians
    from lib.outputs import OutputDir
    from lib.run.reduction import Executors, FileReading, Keep, reduce_files

    config = load_config()
    scheme = CategoryScheme.from_config(config.categories)
    files = sorted(root.glob(DATA_GLOB))
    inline = Executors(InlineExecutor(), InlineExecutor(), FigureQueue(0))
    specs = (category_spec(config, scheme),)
    reading = FileReading(scheme, config.selection.z_window_gev, None, config.input.batch_rows, Keep(specs, events=not binned))
    reduction = reduce_files(files, inline, reading, progress="")
    if reduction.skim is not None and max_events is not None and len(reduction.skim) > max_events:
        reduction.skim = reduction.skim.select(np.arange(len(reduction.skim)) < max_events)
    medians = compute_medians(reduction.histograms[0], scheme, config.step2)
    scratch = OutputDir(Path(tempfile.mkdtemp(prefix="fit_benchmark-")) / "binned" / "2018" / "Data_2018")
    return category_jobs(FitGroup(CATEGORIES, config, scratch, binned), scheme, reduction, medians, names or scheme.names)


def run_pool(jobs: list, workers: int) -> tuple[float, list]:
    from lib.executor import ProcessExecutor
    from lib.peak_fits import fit_job
    from lib.run.reduction import FIT_WORKER_PRELOAD

    start = time.monotonic()
    results = ProcessExecutor(workers, preload=FIT_WORKER_PRELOAD).map(fit_job, jobs, [j.task.name for j in jobs])
    return time.monotonic() - start, results


def describe(label: str, wall: float, results: list) -> str:
    seconds = [r.seconds for r in results]
    attempts = [len(r.attempts) for r in results]
    first = [a.seconds for r in results for a in r.attempts[:1]]
    ok = sum(r.ok for r in results)
    return (
        f"| {label} | {wall:.1f} | {statistics.median(seconds):.2f} ({min(seconds):.2f}-{max(seconds):.2f}) | "
        f"{statistics.median(first):.2f} | {sum(seconds):.1f} | {sum(attempts)} | {ok}/{len(results)} |"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--unbinned", nargs="*", default=["45-52_BB", "52-62_OO", "62-200_EE"], help="categories fitted unbinned")
    parser.add_argument("--unbinned-events", type=int, default=1_000_000, help="first N skim events for the unbinned fits")
    args = parser.parse_args()
    from lib.executor import default_workers

    from lib.executor import ProcessExecutor
    from lib.run.reduction import FIT_WORKER_PRELOAD

    # As a run does: the workers' forkserver loads ROOT while the sample is read.
    ProcessExecutor(1, preload=FIT_WORKER_PRELOAD).start()
    root = ensure_sample(args.events)
    jobs = load_jobs(root, binned=True)
    cores = default_workers()
    print(f"machine: {machine_description()}; {args.events} events, {len(jobs)} categories")
    print("| mode | wall [s] | per-category fit [s]: median (min-max) | first attempt median [s] | sum [s] | attempts | ok |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    wall_1, res_1 = run_pool(jobs, 1)
    print(describe("binned, 1 worker", wall_1, res_1), flush=True)
    wall_n, res_n = run_pool(jobs, cores)
    print(describe(f"binned, {cores} workers", wall_n, res_n), flush=True)
    print(f"speed-up 1 -> {cores} workers: {wall_1 / wall_n:.2f}x")
    if args.unbinned:
        unbinned = load_jobs(root, binned=False, names=args.unbinned, max_events=args.unbinned_events)
        wall_u, res_u = run_pool(unbinned, 1)
        print(describe(f"unbinned, 1 worker, {', '.join(args.unbinned)} (first {args.unbinned_events} events)", wall_u, res_u))
        for r in res_u:
            print(f"  {r.name}: {r.chosen.n_events} events, {r.seconds:.1f} s, {len(r.attempts)} attempt(s), ok={r.ok}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
