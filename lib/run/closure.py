"""The closure test as a run step: read the bins of calibrated sigma_pred, fit them, judge, write.

The physics of the bins (their samples, fit specs, rows and verdict) is ``lib.closure``; this
module reads the inputs (``lib.run.reduction``), runs the fits on the run's executor, writes the
CSVs, the verdict and the figures, and runs the Higgs check beside it when asked.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from lib.categories import CategoryScheme
from lib.closure import (
    CLOSURE_CSV, UNCALIBRATED_CSV, BinSample, ClosureBin, ClosureVerdict, bin_label, bin_rows, closure_specs,
    judge, measured_scaling, reference_text, samples_from_events, samples_from_histograms, with_bin_acceptance,
)  # fmt: skip
from lib.config import Config, FitSpec, resolve_fit_spec
from lib.correction.writer import correction_filename, read_factors
from lib.errors import CalibrationError, InputError
from lib.fit_step import FitCache, bin_fit_jobs, run_fits
from lib.histograms import acceptance_grid, grids_from_config
from lib.io.atomic import write_text_atomic
from lib.io.tables import read_csv, write_csv
from lib.options import RunOptions
from lib.rows import parse_row
from lib.run.higgs import run_higgs_validation
from lib.run.reduction import Executors, load_reduction

__all__ = ["run_closure"]


def _factor_array(json_path: Path, scheme: CategoryScheme) -> np.ndarray:
    factors = read_factors(json_path, scheme)
    return np.array([factors[name] for name in scheme.names], dtype=np.float64)


def _parse_bin(fix: str, edges: Sequence[float]) -> int:
    labels = [bin_label(edges[i], edges[i + 1]) for i in range(len(edges) - 1)]
    if fix.isdigit() and int(fix) < len(labels):
        return int(fix)
    if fix in labels:
        return labels.index(fix)
    raise CalibrationError(f"unknown closure bin '{fix}'; valid: 0..{len(labels) - 1} or {', '.join(labels)}")


def _run_pass(
    execs: Executors, config: Config, samples: list[BinSample], options: RunOptions, plot_dir: Path | None,
    title: str, csv_path: Path, only: int | None, log_dir: Path, cache_dir: Path,
) -> tuple[list[ClosureBin], ClosureVerdict]:  # fmt: skip
    edges = config.closure.bin_edges_gev

    def spec_for(name: str) -> FitSpec:
        return resolve_fit_spec(config, name, options.binned, options.backend)

    jobs = bin_fit_jobs(samples, edges, spec_for, config, plot_dir, title, "closure", only, log_dir=log_dir)
    refit = frozenset(j.task.name for j in jobs) if only is not None else frozenset()
    results = run_fits(execs.fit, jobs, FitCache(cache_dir), refit, what="closure bin", progress="closure fits", figures=execs.figures)
    rows = bin_rows(samples, edges, results)
    if only is not None:
        previous = read_csv(csv_path)
        if len(previous) != len(rows):
            raise InputError(f"{csv_path} has {len(previous)} bins, the config {len(rows)}: re-run the whole closure")
        rows = [rows[i] if i == only else parse_row(ClosureBin, previous[i], str(csv_path)) for i in range(len(rows))]
    judged, verdict = judge(rows, config.closure)
    write_csv(csv_path, [r.row() for r in judged])
    return judged, verdict


def _closure_samples(
    options: RunOptions, config: Config, scheme: CategoryScheme, year: str, execs: Executors, out_dir: Path, factors: np.ndarray
) -> tuple[list[BinSample], list[BinSample]]:  # fmt: skip
    """Bins after and before calibration: from histograms filled while reading (binned), or from the events."""
    edges, peak = config.closure.bin_edges_gev, config.fit.params["bw_mass"].value
    scaling = measured_scaling(
        config, scheme, lambda grid: load_reduction(options, config, scheme, year, execs, out_dir, (), events=False, profile=grid)[0]
    )  # fmt: skip
    grids = grids_from_config(config, len(edges) - 1)
    acceptance = acceptance_grid(config, len(edges) - 1, (scheme.pt_edges[0], scheme.pt_edges[-1]))
    specs = closure_specs(config, edges, factors, peak, grids, scaling, acceptance)
    specs += closure_specs(config, edges, None, peak, grids, scaling, acceptance)[:1]
    if not options.binned and acceptance is None:
        specs = ()  # unbinned fits need only the events
    reduction, _ = load_reduction(
        options, config, scheme, year, execs, out_dir, specs, events=not options.binned, muons=not options.binned and scaling is not None
    )  # fmt: skip
    if options.binned:
        after_pred, after_raw, before = reduction.histograms
        after = samples_from_histograms(after_pred, after_raw, config.step2, "closure")
        uncalibrated = samples_from_histograms(before, before, config.step2, "closure (uncalibrated)")
    else:
        variable = config.closure.bin_variable
        after = samples_from_events(reduction.skim, factors, edges, peak, variable, scaling)  # type: ignore[arg-type]
        uncalibrated = samples_from_events(reduction.skim, None, edges, peak, variable, scaling)  # type: ignore[arg-type]
    if acceptance is not None:
        after = with_bin_acceptance(after, reduction.histograms[0])
        uncalibrated = with_bin_acceptance(uncalibrated, reduction.histograms[2])
    return after, uncalibrated


def run_closure(options: RunOptions, config: Config, scheme: CategoryScheme, year: str, execs: Executors, out_dir: Path) -> dict[str, object]:
    """Closure after and before calibration; writes CSVs, plots and ``closure_verdict.txt``.

    Raises:
        InputError: no correction JSON to test (run steps 1-3 first or pass --calib-json).
    """
    json_path = options.calib_json or out_dir / correction_filename(year, options.is_mc, options.nanoaod_v)
    if not Path(json_path).exists():
        raise InputError(f"no calibration JSON {json_path}: run --steps all first or pass --calib-json")
    factors = _factor_array(Path(json_path), scheme)
    after_samples, before_samples = _closure_samples(options, config, scheme, year, execs, out_dir, factors)
    only = _parse_bin(options.fix_cat, config.closure.bin_edges_gev) if options.fix_cat else None
    closure_dir = out_dir / "closure"
    plots = closure_dir / "fits" if options.plots else None
    title = f"{options.sample_label} {year}"
    after, verdict_after = _run_pass(
        execs, config, after_samples, options, plots, f"{title} calibrated", out_dir / CLOSURE_CSV, only, closure_dir / "logs",
        out_dir / ".cache" / "closure_fits",
    )  # fmt: skip
    before, verdict_before = _run_pass(
        execs, config, before_samples, options, None if plots is None else plots / "uncalibrated",
        f"{title} uncalibrated", out_dir / UNCALIBRATED_CSV, only, closure_dir / "logs" / "uncalibrated",
        out_dir / ".cache" / "closure_fits_uncalibrated",
    )  # fmt: skip
    lines = [verdict_after.text("closure after calibration"), reference_text(before, "closure before calibration")]
    if options.validate_higgs:
        lines.append(run_higgs_validation(options, config, scheme, year, execs, out_dir, factors).text("Higgs peak (DCB) after calibration"))
    text = "\n".join(lines)
    write_text_atomic(out_dir / "closure_verdict.txt", text + "\n")
    if options.plots:
        from lib.plots.closure import plot_closure

        plot_closure(before, after, out_dir / "closure_resolution", title, options.plot_formats)
        execs.figures.wait()
    return {"after": verdict_after, "before": verdict_before, "text": text, "json": str(json_path)}
