#!/usr/bin/env python3
"""Issue 14's numbers: ``--steps all --ifbinned`` on 1 M events against a floor measured in the same run.

Wall times on shared machines vary by 10-30 %, so every run is also given as a ratio to a floor
measured right before it: 36 bare binned BW (x) DCB fits of 100 k events each (two ``fitTo``,
no retries, no plots), spread over the same number of worker processes. Then, each in a fresh
process with a fresh output directory (no caches):

- ``--steps all --ifbinned`` in the default mode (local Dask) and with ``--no-dask-client``,
  with and without figures (and PNG figures only); with ``--rounds N`` the kinds are run N times,
  interleaved, and the table gives the medians (this VM's speed drifts within minutes);
- the step-2 grid of 36 panels, and one fit figure (PNG + PDF) in a warm process, CPU seconds;
- with ``--step2-events N``: ``--steps step2 --no-dask-client`` (figure included) as a whole
  process on an N-event sample, against a fresh ``python -c`` process that imports pyarrow and
  reads the same 7 columns of the same files (best of three each).

    .venv/bin/python benchmarks/speed_floor.py [--events 1000000] [--workers 2] [--rounds 3] [--step2-events 6000000]

Prints a Markdown table (copied into docs/performance.md).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.run_benchmarks import COLUMNS, DATA_GLOB, ensure_sample, machine_description  # noqa: E402

MZ, GZ = 91.188, 2.4955


def floor_seconds(workers: int, n_fits: int = 36, n_events: int = 100_000) -> float:
    """Wall seconds of ``n_fits`` bare binned BW (x) DCB fits over ``workers`` processes."""
    from lib.config import load_config, resolve_fit_spec
    from lib.executor import ProcessExecutor
    from lib.fitting.runner import fit_category
    from lib.fitting.task import FitEvents, FitTask
    from lib.run.reduction import FIT_WORKER_PRELOAD

    config = load_config()
    rng = np.random.default_rng(1)
    masses = MZ + 0.5 * GZ * rng.standard_cauchy(3 * n_events) + rng.normal(0.0, 1.3, 3 * n_events)
    masses = masses[(masses > 75.0) & (masses < 105.0)][:n_events]
    spec = resolve_fit_spec(config, "45-52_BB", binned=True).model_copy(
        update={"line_shape": "breit_wigner", "background": "none", "undetermined": config.fit.undetermined.model_copy(update={"params": ()})}
    )
    tasks = [FitTask(f"floor{i}", FitEvents(masses), spec, (), 1.2, config.fit.quality) for i in range(n_fits)]
    pool = ProcessExecutor(workers, preload=FIT_WORKER_PRELOAD)
    pool.map(fit_category, tasks[:workers], [t.name for t in tasks[:workers]])  # workers warm, as in a run
    start = time.monotonic()
    pool.map(fit_category, tasks, [t.name for t in tasks])
    return time.monotonic() - start


def cli_seconds(sample: Path, workers: int, *flags: str) -> float:
    """Wall seconds of one fresh ``--steps all --ifbinned`` run (interpreter start included)."""
    out = Path(tempfile.mkdtemp(prefix="ebe-speed-"))
    argv = [sys.executable, str(REPO / "getCalibrationFactor.py"), "--steps", "all", "--ifbinned", "--years", "2018",
            "--input_path", str(sample), "--output_path", str(out), "--workers", str(workers), *flags]  # fmt: skip
    start = time.monotonic()
    done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True)
    seconds = time.monotonic() - start
    shutil.rmtree(out, ignore_errors=True)
    if done.returncode != 0:
        raise SystemExit(f"failed: {' '.join(argv)}\n{done.stderr[-2000:]}")
    return seconds


def figure_cpu_seconds() -> tuple[float, float]:
    """CPU seconds of the 36-panel step-2 grid and of one fit figure, each drawn in a warm process."""
    code = r"""
import dataclasses, sys, time, pickle
import numpy as np
sys.path.insert(0, sys.argv[1])
from pathlib import Path
from lib.figures import FitFigure, MedianFigure
from lib.medians import CategoryMedian
from lib.plots.cms import Header
from lib.plots.medians import plot_sigma_pred_histograms
from lib.plots.fits import plot_fit
from lib.fitting.result import AttemptRecord, FitCurves, FitResult
out = Path(sys.argv[2])
rng = np.random.default_rng(1)
edges = np.linspace(0.5, 3.0, 51)
counts = np.array([np.histogram(rng.lognormal(np.log(1.0 + 0.02 * i), 0.2, 20000), edges)[0] for i in range(36)], float)
meds = tuple(CategoryMedian(f"c{i}", 20000, 20000.0, 1.0 + 0.02 * i, 0.002) for i in range(36))
header = Header("Data 2018", "2018")
plot_sigma_pred_histograms(MedianFigure(edges, counts, meds, out / "warm", header))
start = time.process_time(); plot_sigma_pred_histograms(MedianFigure(edges, counts, meds, out / "grid", header)); grid = time.process_time() - start
e = np.linspace(75, 105, 121); c = 0.5 * (e[1:] + e[:-1]); n = 5000 * np.exp(-0.5 * ((c - 91.2) / 2.5) ** 2) + 20
x = np.linspace(75, 105, 481); y = np.interp(x, c, n)
curves = FitCurves(e, n, np.sqrt(n), np.sqrt(n), x, y, 0.98 * y, 0.02 * y, rng.normal(0, 1, 120))
chosen = AttemptRecord(label="nominal", status=0, status_first=0, status_history=(), cov_qual=3, edm=1e-6, min_nll=1.0,
                       sigma=1.2, sigma_err=0.01, chi2_ndf=1.0, n_float=8, n_events=100000, sum_weights=1e5, params=(),
                       failures=(), seconds=0.5, width=1.2, width_err=0.01)
result = FitResult(name="45-52_BB", chosen=chosen, attempts=(chosen,), weighted=False, peak="z", backend="cpu", curves=curves, seconds=0.5)
plot_fit(FitFigure(result, out / "warm_fit", Header("Data 2018 45-52_BB", "2018")))
# Each figure of a run has its own numbers, so its texts are laid out anew (mathtext included).
start = time.process_time()
for i in range(5):
    attempt = dataclasses.replace(chosen, width=1.2 + 0.0123 * i, width_err=0.01 + 0.0007 * i, chi2_ndf=1.0 + 0.037 * i)
    varied = dataclasses.replace(result, chosen=attempt, attempts=(attempt,))
    plot_fit(FitFigure(varied, out / f"fit{i}", Header(f"Data 2018 45-52_B{i}", "2018")))
print(grid, (time.process_time() - start) / 5)
"""
    with tempfile.TemporaryDirectory() as tmp:
        done = subprocess.run([sys.executable, "-c", code, str(REPO), tmp], capture_output=True, text=True, check=True)
    grid, fit = (float(v) for v in done.stdout.split())
    return grid, fit


def _best_wall(argv: list[str], repeat: int = 3) -> float:
    """Best wall seconds of ``repeat`` fresh processes (interpreter start included); each gets a fresh output directory."""
    best = float("inf")
    for _ in range(repeat):
        out = Path(tempfile.mkdtemp(prefix="ebe-step2-"))
        start = time.monotonic()
        done = subprocess.run([a.replace("{out}", str(out)) for a in argv], cwd=REPO, capture_output=True, text=True)
        best = min(best, time.monotonic() - start)
        shutil.rmtree(out, ignore_errors=True)
        if done.returncode != 0:
            raise SystemExit(f"failed: {' '.join(argv)}\n{done.stderr[-2000:]}")
    return best


def step2_against_pyarrow(sample: Path) -> tuple[float, float]:
    """Wall seconds of ``--steps step2 --no-dask-client`` and of a bare pyarrow read of its 7 columns, whole processes."""
    read = (
        "import sys, pathlib, pyarrow.parquet as pq\n"
        f"for f in sorted(pathlib.Path(sys.argv[1]).glob({DATA_GLOB!r})): pq.read_table(f, columns={COLUMNS!r})"
    )
    bare = _best_wall([sys.executable, "-c", read, str(sample)])
    step2 = _best_wall([sys.executable, str(REPO / "getCalibrationFactor.py"), "--steps", "step2", "--ifbinned", "--years", "2018",
                        "--no-dask-client", "--input_path", str(sample), "--output_path", "{out}"])  # fmt: skip
    return step2, bare


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=1, help="run every kind this many times, interleaved; report medians")
    parser.add_argument("--step2-events", type=int, default=0, help="also time --steps step2 on a sample this large (0: skip)")
    args = parser.parse_args()
    sample = ensure_sample(args.events)
    kinds = (
        ("default mode (local Dask), figures", ()),
        ("default mode (local Dask), --no-plots", ("--no-plots",)),
        ("--no-dask-client, figures", ("--no-dask-client",)),
        ("--no-dask-client, PNG figures only", ("--no-dask-client", "--plot-formats", "png")),
        ("--no-dask-client, --no-plots", ("--no-dask-client", "--no-plots")),
    )
    measured: dict[str, list[tuple[float, float]]] = {label: [] for label, _ in kinds}
    for _ in range(args.rounds):
        for label, flags in kinds:
            floor = floor_seconds(args.workers)
            seconds = cli_seconds(sample, args.workers, *flags)
            measured[label].append((seconds, floor))
            print(f"{label}: {seconds:.1f} s, floor {floor:.1f} s, ratio {seconds / floor:.1f}", flush=True)
    rows = [
        (label, statistics.median(s for s, _ in runs), statistics.median(f for _, f in runs), statistics.median(s / f for s, f in runs))
        for label, runs in measured.items()
    ]
    grid, fit = figure_cpu_seconds()
    print()
    medians = f", medians of {args.rounds} interleaved rounds" if args.rounds > 1 else ""
    print(f"{machine_description()}; {args.events:,} events, {args.workers} workers{medians}")
    print()
    print("| run | wall [s] | floor [s] | ratio |")
    print("|---|---|---|---|")
    for label, seconds, floor, ratio in rows:
        print(f"| `--steps all --ifbinned`, {label} | {seconds:.1f} | {floor:.1f} | {ratio:.1f} |")
    print(f"| step-2 grid of 36 panels (PNG + PDF), CPU | {grid:.2f} | | |")
    print(f"| one fit figure (PNG + PDF), CPU | {fit:.2f} | | |")
    if args.step2_events:
        step2, bare = step2_against_pyarrow(ensure_sample(args.step2_events))
        print(f"| `--steps step2 --no-dask-client`, {args.step2_events:,} events, figure included, against a fresh pyarrow read "
              f"| {step2:.1f} | {bare:.1f} | {step2 / bare:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
