#!/usr/bin/env python3
"""Does the fitted sigma depend on the FFT cache binning? The 36 binned fits at several ``fit.fft_cache_bins``.

Each setting refits every category of the cached benchmark sample serially (the same jobs step 1
builds, first stage at ``fft_cache_bins_first``), and is compared with the finest setting: the
shift of sigma relative to itself and to its error, for all categories and for those where both
settings accepted the same ladder rung (a fit sitting at a gate threshold may flip rungs with any
numerical change), plus the summed fit time.

    .venv/bin/python benchmarks/fft_cache_study.py --events 10000000 --bins 8000 4000 2000 1000
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from fit_benchmark import load_jobs  # noqa: E402
from run_benchmarks import ensure_sample, machine_description  # noqa: E402


def with_fft_bins(task: object, bins: int) -> object:
    """The task with every spec (nominal and retries) on an FFT cache of ``bins`` bins."""

    def swap(spec: object) -> object:
        return spec.model_copy(update={"fft_cache_bins": bins})  # type: ignore[attr-defined]

    return dataclasses.replace(task, nominal=swap(task.nominal), retries=tuple(swap(s) for s in task.retries))  # type: ignore[arg-type,attr-defined]


def fit_all(jobs: list, bins: int) -> tuple[dict[str, object], float]:
    from lib.fitting.runner import fit_category

    start = time.monotonic()
    results = {job.task.name: fit_category(with_fft_bins(job.task, bins)) for job in jobs}
    return results, time.monotonic() - start


def compare(results: dict[str, object], reference: dict[str, object]) -> str:
    """One table row: shifts of sigma against the reference setting."""
    relative, in_errors, same_rung, changed = [], [], [], 0
    for name, res in results.items():
        ref = reference[name]
        shift = abs(res.fit_val - ref.fit_val)  # type: ignore[attr-defined]
        relative.append(shift / ref.fit_val)  # type: ignore[attr-defined]
        in_errors.append(shift / ref.fit_err)  # type: ignore[attr-defined]
        if (res.ok, res.chosen.label) == (ref.ok, ref.chosen.label):  # type: ignore[attr-defined]
            if res.ok:  # type: ignore[attr-defined]
                same_rung.append(shift / ref.fit_err)  # type: ignore[attr-defined]
        else:
            changed += 1
    return (
        f"{max(relative):.1e} / {statistics.median(relative):.1e} | {max(in_errors):.2f} | {changed} | "
        f"{max(same_rung, default=float('nan')):.3f}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--bins", type=int, nargs="+", default=[8000, 4000, 2000, 1000])
    args = parser.parse_args()
    from lib.fitting.runner import fit_category

    jobs = load_jobs(ensure_sample(args.events), binned=True)
    fit_category(jobs[-1].task)  # ROOT start-up and JIT, not timed
    settings = sorted(args.bins, reverse=True)
    runs = {bins: fit_all(jobs, bins) for bins in settings}
    reference = runs[settings[0]][0]
    print(f"\n{machine_description()}\n")
    print(f"Reference: {settings[0]} bins. Shift of sigma against it.\n")
    print("| fft_cache_bins | ok | max / median \\|Δσ\\|/σ | max \\|Δσ\\|/σ_err | categories with another rung or ok flag | "
          "same rung, both ok: max \\|Δσ\\|/σ_err | serial fit time [s] |")  # fmt: skip
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for bins in settings:
        results, seconds = runs[bins]
        n_ok = sum(r.ok for r in results.values())  # type: ignore[attr-defined]
        row = "— | — | — | —" if bins == settings[0] else compare(results, reference)
        print(f"| {bins} | {n_ok}/{len(results)} | {row} | {seconds:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
