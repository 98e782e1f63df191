"""Higgs-peak validation: does the Z-derived calibration describe the H->mumu mass resolution?

On a signal sample the calibrated sigma_pred is computed per event, events are binned in it, and
the H peak in the signal region is fitted with a pure double Crystal Ball (the 3.7 MeV natural
width is negligible). Fitted sigma / median calibrated sigma_pred should be 1 in every bin.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from lib.categories import CategoryScheme
from lib.closure import ClosureVerdict, bin_label, bin_rows, binning_values, closure_bins, judge
from lib.config import ClosureConfig, Config, higgs_fit_spec, retry_specs
from lib.executor import TaskExecutor
from lib.fit_step import FitJob, fit_and_plot
from lib.io.atomic import write_text_atomic
from lib.io.reader import find_files
from lib.io.tables import write_csv
from lib.options import RunOptions
from lib.resolution import weighted_median

__all__ = ["run_higgs_validation", "HIGGS_CSV"]

log = logging.getLogger(__name__)

HIGGS_CSV = "higgs_validation_resolutionBinning.csv"


def _signal_skim(options: RunOptions, config: Config, scheme: CategoryScheme, year: str, execs: object):
    root = Path(options.input_path) if options.input_path else Path(config.input.stage1_path)
    files = find_files(root, config.input.signal_glob, year)
    from lib.pipeline import reduce_files

    reduction = reduce_files(
        files, execs, scheme, config.higgs.read_window_gev, config.input.weight_column, config.input.batch_rows,
        grids=None, events=True, skip_bad_files=False, progress="signal files",
    )  # fmt: skip
    return reduction.skim


def run_higgs_validation(
    options: RunOptions, config: Config, scheme: CategoryScheme, year: str, execs: object, out_dir: Path, factors: np.ndarray
) -> ClosureVerdict:
    """Fit the H peak in bins of calibrated sigma_pred; write the CSV, plots and return the verdict."""
    skim = _signal_skim(options, config, scheme, year, execs)
    lo, hi = config.higgs.signal_region_gev
    skim = skim.select((skim.mass > lo) & (skim.mass < hi))
    raw = skim.sigma_pred.astype(np.float64)
    calibrated = raw * factors[skim.category]
    edges = config.higgs.bin_edges_gev
    groups = closure_bins(
        binning_values(calibrated, skim.mass.astype(np.float64), config.higgs.mass_gev, config.closure.bin_variable), edges
    )
    plot_dir = out_dir / "higgs" / "fits" if options.plots else None
    jobs = []
    for i, idx in enumerate(groups):
        if len(idx) < 2:
            continue
        name = bin_label(edges[i], edges[i + 1], "higgs")
        weights = None if skim.weight is None else skim.weight[idx]
        median = weighted_median(calibrated[idx], weights)
        nominal = higgs_fit_spec(config, name, options.binned, options.backend)
        retries = tuple(r for r in retry_specs(config, nominal, median) if r.range_gev == nominal.range_gev)
        from lib.fitting.runner import FitTask

        task = FitTask(name=name, masses=np.ascontiguousarray(skim.mass[idx]), weights=None if weights is None else np.ascontiguousarray(weights),
                       nominal=nominal, retries=retries, median_sigma_pred=float(median), quality=config.fit.quality)  # fmt: skip
        jobs.append(FitJob(task, None if plot_dir is None else plot_dir / f"fit_{name}", f"H {options.sample_label} {year} {name}"))
    executor: TaskExecutor = execs.fit  # type: ignore[attr-defined]
    results = dict(zip([j.task.name for j in jobs], executor.map(fit_and_plot, jobs, [j.task.name for j in jobs], "higgs fits")))
    rows = bin_rows(skim, raw, calibrated, edges, groups, results, prefix="higgs")
    higgs_cfg = ClosureConfig(
        bin_variable=config.closure.bin_variable,
        bin_edges_gev=list(edges), min_events=config.higgs.min_events, tolerance=config.higgs.tolerance, n_sigma=config.closure.n_sigma
    )
    judged, verdict = judge(rows, higgs_cfg, prefix="higgs")
    write_csv(out_dir / HIGGS_CSV, [r.row() for r in judged])
    write_text_atomic(out_dir / "higgs_validation_verdict.txt", verdict.text("Higgs peak (DCB) after calibration") + "\n")
    if options.plots:
        from lib.plots.closure import plot_closure

        plot_closure([], judged, out_dir / "higgs_validation_resolution", f"H {options.sample_label} {year}")
    return verdict
