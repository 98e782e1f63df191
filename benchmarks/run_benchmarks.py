#!/usr/bin/env python3
"""Benchmark reading, step 2 and the full binned calibration on cached multi-file samples of several sizes.

For each sample size: (a) the pyarrow floor (read the 7 needed columns of every file), (b) read +
reduce exactly as the in-process path does it, each the best of ``--repeat`` fresh processes
timed inside the process (wall and CPU); then step 2 alone and steps 1-3 end to end, in-process
(--no-dask-client) and on a local Dask cluster, each a fresh run of the CLI without caches whose
wall time (interpreter start included) and peak RSS are recorded, of the largest process and of
all its processes together. With two sizes or more the table gives the peak-RSS growth from the
first size to the last. Prints a Markdown table to paste into docs/performance.md (and writes it to
``--markdown``).

    .venv/bin/python benchmarks/run_benchmarks.py --events 10000000 20000000
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

CACHE = REPO / "benchmarks" / "_cache"
COLUMNS = ["mu1_pt", "mu1_ptErr", "mu1_eta", "mu2_pt", "mu2_ptErr", "mu2_eta", "dimuon_mass"]
DATA_GLOB = "2018/compacted/data_*/*/*.parquet"
NAN = float("nan")


@dataclass(frozen=True)
class Measurement:
    """One fresh run: wall and CPU seconds, peak RSS of the largest process and of all its processes together (MiB).

    CPU is only known where the reading is timed inside the process; a CLI run's fit workers are
    grandchildren whose CPU time the wrapper cannot see, so it is left out (NaN) there.
    """

    wall: float
    cpu: float
    rss_mib: float
    rss_all_mib: float = NAN
    stdout: str = ""


@dataclass
class Row:
    """One line of the table: a measurement per sample size."""

    label: str
    by_events: dict[int, Measurement] = field(default_factory=dict)


def measure(cmd: list[str]) -> Measurement:
    """Run ``cmd`` under a fresh wrapper process (``--measure``), so its rusage covers ``cmd`` and nothing else."""
    out = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--measure", *cmd], capture_output=True, text=True, cwd=REPO, check=True
    )
    result = json.loads(out.stdout.splitlines()[-1])
    if result["rc"] != 0:
        raise SystemExit(f"benchmark command failed (exit {result['rc']}): {' '.join(cmd)}\n{out.stderr[-3000:]}")
    return Measurement(result["wall"], NAN, result["rss_mib"], result["rss_all_mib"], result["stdout"])


def run_and_sample(cmd: list[str], interval_s: float = 0.05) -> dict[str, object]:
    """Run ``cmd``, sampling the RSS of its whole process tree; print wall time, peaks and its stdout as JSON.

    ``ru_maxrss`` of the children is exact but only covers processes that were waited for: the
    fit workers of a forkserver pool are not, so the sampled largest process is taken where larger.
    """
    import psutil

    start = time.monotonic()
    proc = psutil.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    reader = ThreadPoolExecutor(1).submit(proc.stdout.read)
    largest = total = 0
    while proc.poll() is None:
        rss = []
        for p in [proc, *proc.children(recursive=True)]:
            try:
                rss.append(p.memory_info().rss)
            except psutil.Error:
                continue
        largest, total = max(largest, max(rss, default=0)), max(total, sum(rss))
        time.sleep(interval_s)
    wall = time.monotonic() - start
    exact = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    return {
        "wall": wall, "rss_mib": max(largest, exact) / 2**20, "rss_all_mib": max(total, exact) / 2**20,
        "rc": proc.returncode, "stdout": reader.result()[-2000:],
    }  # fmt: skip


def ensure_sample(n_events: int) -> Path:
    root = CACHE / f"stage1_{n_events}"
    if not (root / "2018" / "truth.json").exists():
        from lib.generator import SampleRequest, WriteOptions, generate_sample

        start = time.monotonic()
        generate_sample(root, SampleRequest(2018, n_data=n_events, n_mc=0, n_signal=0), WriteOptions(files_per_dataset=8))
        print(f"generated {n_events} events in {time.monotonic() - start:.1f} s", file=sys.stderr)
    return root


def time_reading(kind: str, root: Path) -> tuple[float, float]:
    """Wall and CPU seconds to read all files: the 7 columns with pyarrow ("floor"), or the in-process reduction ("reduce").

    "reduce" runs what binned steps 1-2 run in-process (one ``reduce_file`` per file, histograms
    only, folded in file order), so its ratio to the floor is the overhead of the reductions over
    reading alone.
    """
    files = sorted(root.glob(DATA_GLOB))
    if kind == "floor":
        import pyarrow.parquet as pq

        def read() -> None:
            for path in files:
                pq.read_table(path, columns=COLUMNS)

    else:
        from lib.categories import CategoryScheme
        from lib.config import load_config
        from lib.executor import InlineExecutor
        from lib.figures import FigureQueue
        from lib.histogram_specs import category_spec
        from lib.run.reduction import Executors, FileReading, Keep, reduce_files

        config = load_config()
        scheme = CategoryScheme.from_config(config.categories)
        inline = Executors(InlineExecutor(), InlineExecutor(), FigureQueue(0))
        reading = FileReading(scheme, config.selection.z_window_gev, None, config.input.batch_rows, Keep((category_spec(config, scheme),)))

        def read() -> None:
            reduce_files(files, inline, reading, progress="")

    wall, cpu = time.monotonic(), time.process_time()
    read()
    return time.monotonic() - wall, time.process_time() - cpu


def best_reading(kind: str, root: Path, repeat: int) -> Measurement:
    """Best wall time of ``repeat`` fresh processes, each timing only its reading (imports and start-up excluded)."""
    runs = [measure([sys.executable, str(Path(__file__).resolve()), "--time-reading", kind, str(root)]) for _ in range(repeat)]
    timed = [(json.loads(m.stdout), m) for m in runs]
    (wall, cpu), _ = min(timed, key=lambda t: t[0][0])
    return Measurement(wall, cpu, max(m.rss_mib for m in runs), max(m.rss_all_mib for m in runs))


def machine_description() -> str:
    """Cores, memory, Python, ROOT and the load average, so numbers from different days can be compared."""
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    root = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", "import ROOT; print(ROOT.gROOT.GetVersion())"], capture_output=True, text=True
    ).stdout.strip() or "not importable"
    return (
        f"{platform.machine()}, {len(os.sched_getaffinity(0))} cores (nproc), {mem_gib:.0f} GiB RAM, "
        f"Python {platform.python_version()}, ROOT {root}"
    )


def cli_runs(base: list[str], dask: bool) -> list[tuple[str, list[str]]]:
    runs = [
        ("step 2 (read + medians), in-process", ["--steps", "step2", "--no-dask-client"]),
        ("steps 1-3, in-process, fits on all cores", ["--steps", "all", "--no-dask-client"]),
    ]
    if dask:
        runs += [
            ("step 2 (read + medians), local Dask cluster", ["--steps", "step2"]),
            ("steps 1-3, local Dask cluster", ["--steps", "all"]),
        ]
    return [(label, base + extra) for label, extra in runs]


def fit_scaling_runs(base: list[str]) -> list[tuple[str, list[str]]]:
    return [
        ("step 1, one fit worker", base + ["--steps", "step1", "--no-dask-client", "--workers", "1"]),
        ("step 1, all cores", base + ["--steps", "step1", "--no-dask-client"]),
    ]


def run_size(n_events: int, rows: dict[str, Row], args: argparse.Namespace) -> None:
    """Fill ``rows`` with every measurement for one sample size."""
    root = ensure_sample(n_events)
    out = CACHE / "out"
    base = [sys.executable, "getCalibrationFactor.py", "--input_path", str(root), "--output_path", str(out), "--ifbinned", "--no-plots"]
    floor = best_reading("floor", root, args.repeat)
    reduce = best_reading("reduce", root, args.repeat)
    rows.setdefault("floor", Row("pyarrow read of the 7 columns (floor), best of fresh processes")).by_events[n_events] = floor
    rows.setdefault("reduce", Row("read + reduce, in-process path, best of fresh processes")).by_events[n_events] = reduce
    ratio = Measurement(reduce.wall / floor.wall, reduce.cpu / floor.cpu, NAN)
    rows.setdefault("ratio", Row("ratio read + reduce / floor (wall and CPU columns)")).by_events[n_events] = ratio
    runs = cli_runs(base, not args.skip_dask) + (fit_scaling_runs(base) if args.fit_scaling else [])
    for label, cmd in runs:
        shutil.rmtree(out, ignore_errors=True)  # no skim cache: every row reads the files
        rows.setdefault(label, Row(label)).by_events[n_events] = measure(cmd)


def _cell(value: float, fmt: str, unit: str = "") -> str:
    return "" if value != value else format(value, fmt) + unit


def _growth(row: Row, first: int, last: int, attr: str) -> str:
    before, after = getattr(row.by_events[first], attr), getattr(row.by_events[last], attr)
    return _cell((after / before - 1.0) * 100.0, "+.0f", " %")


def markdown_table(rows: list[Row], sizes: list[int]) -> str:
    """Wall and CPU seconds, peak RSS (largest process, all processes) per sample size, and RSS growth first → last size."""
    label = {n: f"{n / 1e6:g} M" for n in sizes}
    head = ["measurement"]
    for n in sizes:
        head += [f"wall [s] {label[n]}", f"CPU [s] {label[n]}", f"RSS max [MiB] {label[n]}", f"RSS all [MiB] {label[n]}"]
    growth = len(sizes) > 1
    if growth:
        head += [f"growth RSS max {label[sizes[0]]} → {label[sizes[-1]]}", "growth RSS all"]
    lines = ["| " + " | ".join(head) + " |", "| --- |" + " ---: |" * (len(head) - 1)]
    for row in rows:
        cells = [row.label]
        for n in sizes:
            m = row.by_events.get(n, Measurement(NAN, NAN, NAN))
            cells += [_cell(m.wall, ".2f"), _cell(m.cpu, ".2f"), _cell(m.rss_mib, ".0f"), _cell(m.rss_all_mib, ".0f")]
        if growth:
            cells += [_growth(row, sizes[0], sizes[-1], "rss_mib"), _growth(row, sizes[0], sizes[-1], "rss_all_mib")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, nargs="+", default=[10_000_000], help="sample sizes (each generated once)")
    parser.add_argument("--repeat", type=int, default=3, help="fresh processes per reading measurement (best kept)")
    parser.add_argument("--skip-dask", action="store_true", help="no local-Dask-cluster rows")
    parser.add_argument("--fit-scaling", action="store_true", help="also step 1 with one fit worker and with all cores")
    parser.add_argument("--markdown", type=Path, help="also write the machine line and table to this file")
    parser.add_argument("--time-reading", nargs=2, metavar=("KIND", "ROOT"), help=argparse.SUPPRESS)
    parser.add_argument("--measure", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.time_reading:
        print(json.dumps(time_reading(args.time_reading[0], Path(args.time_reading[1]))))
        return 0
    if args.measure:
        print(json.dumps(run_and_sample(args.measure)))
        return 0

    load_before = os.getloadavg()
    rows: dict[str, Row] = {}
    for n_events in args.events:
        run_size(n_events, rows, args)
    load_after = os.getloadavg()
    text = (
        f"Machine: {machine_description()}. Load average (1/5/15 min) before "
        f"{'/'.join(f'{x:.2f}' for x in load_before)}, after {'/'.join(f'{x:.2f}' for x in load_after)}.\n\n"
        + markdown_table(list(rows.values()), args.events)
        + "\n"
    )
    print("\n" + text)
    if args.markdown:
        args.markdown.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
