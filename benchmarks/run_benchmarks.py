#!/usr/bin/env python3
"""Benchmark generation, reading, step 2 and the full binned calibration on a cached multi-file sample.

Measures, for one sample size: (a) the pyarrow floor (read the 7 needed columns of every file),
(b) steps 1-3 end to end in-process (--no-dask-client) and on a local Dask cluster, (c) step 2
alone, (d) step 1 with one worker vs all cores, each as a fresh subprocess whose wall time and
peak RSS (largest single process) are recorded. Prints a Markdown table to paste into RESULTS.md.

    .venv/bin/python benchmarks/run_benchmarks.py --events 10000000
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
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

CACHE = REPO / "benchmarks" / "_cache"
COLUMNS = ["mu1_pt", "mu1_ptErr", "mu1_eta", "mu2_pt", "mu2_ptErr", "mu2_eta", "dimuon_mass"]


def measure(cmd: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB, largest process) of ``cmd`` run in a fresh measuring wrapper."""
    wrapper = (
        "import resource, subprocess, sys, time; t = time.monotonic(); "
        "rc = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode; "
        "print(time.monotonic() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, rc)"
    )
    out = subprocess.run([sys.executable, "-c", wrapper, *cmd], capture_output=True, text=True, cwd=REPO, check=True)
    wall, rss_kib, rc = out.stdout.split()
    if rc != "0":
        raise SystemExit(f"benchmark command failed (exit {rc}): {' '.join(cmd)}")
    return float(wall), int(rss_kib) / 1024.0


def ensure_sample(n_events: int) -> Path:
    root = CACHE / f"stage1_{n_events}"
    if not (root / "2018" / "truth.json").exists():
        from lib.generator import generate_sample

        start = time.monotonic()
        generate_sample(root, 2018, n_data=n_events, n_mc=0, n_signal=0, files_per_dataset=8)
        print(f"generated {n_events} events in {time.monotonic() - start:.1f} s", file=sys.stderr)
    return root


def pyarrow_floor(root: Path) -> float:
    """Seconds to read the 7 needed columns of all files with pyarrow (best of two, warm cache)."""
    files = sorted(root.glob("2018/compacted/data_*/*/*.parquet"))
    code = (
        "import sys, time, pyarrow.parquet as pq; t = time.monotonic(); "
        f"[pq.read_table(f, columns={COLUMNS!r}) for f in sys.argv[1:]]; print(time.monotonic() - t)"
    )
    times = [float(subprocess.run([sys.executable, "-c", code, *map(str, files)], capture_output=True, text=True, check=True).stdout) for _ in range(2)]
    return min(times)


def fit_times(out_dir: Path) -> list[float]:
    data = json.loads((out_dir / "fit_params.json").read_text())
    return [float(v.get("seconds", "nan")) for v in data.values() if "seconds" in v]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--skip-dask", action="store_true")
    args = parser.parse_args()

    gen_start = time.monotonic()
    root = ensure_sample(args.events)
    gen_wall = time.monotonic() - gen_start
    out = CACHE / "out"
    py = sys.executable
    base = [py, "getCalibrationFactor.py", "--input_path", str(root), "--output_path", str(out), "--ifbinned", "--no-plots"]
    rows = []

    floor = pyarrow_floor(root)
    rows.append(("pyarrow read of 7 columns (floor)", floor, float("nan")))
    for label, extra in (
        ("step 2 (read + medians), in-process", ["--steps", "step2", "--no-dask-client"]),
        ("steps 1-3, in-process, fits on all cores", ["--steps", "all", "--no-dask-client"]),
        ("step 1, one fit worker", ["--steps", "step1", "--no-dask-client", "--workers", "1"]),
        ("step 1, all cores", ["--steps", "step1", "--no-dask-client"]),
    ):
        shutil.rmtree(out, ignore_errors=True)  # no skim cache: every row reads the files
        wall, rss = measure(base + extra)
        rows.append((label, wall, rss))
        if label.startswith("step 1"):
            times = sorted(fit_times(out / "binned" / "2018" / "Data_2018"))
            if times:
                rows.append((f"  median per-category fit ({label})", times[len(times) // 2], float("nan")))
    if not args.skip_dask:
        shutil.rmtree(out, ignore_errors=True)
        wall, rss = measure(base + ["--steps", "all"])
        rows.append(("steps 1-3, local Dask cluster", wall, rss))

    print(f"\nMachine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
          f"{args.events} events generated in {gen_wall:.1f} s (0 if cached)\n")
    print("| measurement | wall [s] | peak RSS [MiB] |\n| --- | ---: | ---: |")
    for label, wall, rss in rows:
        rss_text = "" if rss != rss else f"{rss:.0f}"
        print(f"| {label} | {wall:.2f} | {rss_text} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
