"""The validation stages: the closure test and the Higgs-peak check, each bins of calibrated sigma_pred fitted and judged.

The physics of the bins (samples, fit specs, rows, verdict) is ``lib.closure``; this module reads
the inputs (``lib.run.reduction``), runs the fits on the run's executor and writes the tables.

The Higgs check asks whether the Z-derived calibration describes the H->mumu mass resolution: the
H peak of a signal sample is fitted in the signal region with a pure double Crystal Ball (the
3.7 MeV natural width is negligible). The signal sample is independent of the Z fits, so the
ratio's error includes the calibration factors' own, in proportion to each category's share of
the bin: a bin fed mostly by one small category cannot be tested more precisely than that
category's factor is known.
"""

from __future__ import annotations

import logging
import math
from dataclasses import replace
from pathlib import Path
from typing import NamedTuple, Sequence

import numpy as np

from lib.acceptance import acceptance_grid
from lib.categories import CategoryScheme
from lib.closure import (
    BinSample, ClosureBin, ClosureVerdict, bin_label, bin_rows, closure_specs, judge, measured_scaling, reference_text,
    samples_from_events, samples_from_histograms, sigma_pred_binning, with_bin_acceptance,
)  # fmt: skip
from lib.config import ClosureConfig, Config, higgs_fit_spec, retry_specs
from lib.correction.writer import load_correction
from lib.errors import CalibrationError, ConfigError, InputError
from lib.executor import TaskExecutor
from lib.histograms import grids_from_config
from lib.io.reader import find_files
from lib.outputs import OutputDir
from lib.peak_fits import CLOSURE, HIGGS, UNCALIBRATED, FitGroup, bin_fit_jobs, run_fits, shares_radiation
from lib.request import Request
from lib.results import HIGGS_LABEL, ClosureResult, Validation
from lib.run.reduction import Executors, FileReading, Keep, input_root, load_reduction, reduce_files

log = logging.getLogger(__name__)


def closure_bin_index(fix: str, edges: Sequence[float]) -> int:
    """The closure bin ``fix`` names (its index or its label).

    Raises:
        CalibrationError: no such bin (the valid names are listed).
    """
    labels = [bin_label(edges[i], edges[i + 1]) for i in range(len(edges) - 1)]
    if fix.isdigit() and int(fix) < len(labels):
        return int(fix)
    if fix in labels:
        return labels.index(fix)
    raise CalibrationError(f"unknown closure bin '{fix}'; valid: 0..{len(labels) - 1} or {', '.join(labels)}")


def correction_to_test(request: Request, out: OutputDir) -> Path:
    """The correction JSON the closure tests: ``--calib-json`` or the output directory's own.

    Raises:
        InputError: there is none (run steps 1-3 first or pass --calib-json).
    """
    path = Path(request.paths.calib_json or out.correction_json(request.selection.nanoaod_v))
    if not path.exists():
        raise InputError(f"no calibration JSON {path}: run --steps all first or pass --calib-json")
    return path


class _Check(NamedTuple):
    """A check's bins: the prefix of their names and the configuration they are judged with."""

    prefix: str
    judging: ClosureConfig


def _fit_and_judge(
    group: FitGroup, samples: list[BinSample], check: _Check, executor: TaskExecutor, only: int | None = None,
    factor_errors: tuple[np.ndarray, np.ndarray | None] | None = None,
) -> tuple[list[ClosureBin], ClosureVerdict]:  # fmt: skip
    """Fit the bins (``only``: that one, the others from the table), judge them and write the table of ``group``'s kind.

    ``factor_errors``: the applied factors and their errors, whose share the ratios' errors then include.
    """
    out, kind = group.out, group.kind.name
    prefix, judging = check
    edges = judging.bin_edges_gev
    jobs = bin_fit_jobs(group, samples, edges, prefix, only)
    refit = frozenset(j.task.name for j in jobs) if only is not None else frozenset()
    factors, errors = factor_errors or (None, None)
    pooled = None
    if only is not None and shares_radiation(group, jobs):  # the radiation shared by the bins is that of all of them
        pooled = bin_fit_jobs(group, samples, edges, prefix)
    rows = bin_rows(samples, edges, run_fits(group, jobs, executor, refit, pooled), prefix, factors, errors)
    if only is not None:
        previous = out.read_validation(kind)
        if len(previous) != len(rows):
            raise InputError(f"{out.validation_csv(kind)} has {len(previous)} bins, the config {len(rows)}: re-run the whole closure")
        rows = [rows[i] if i == only else previous[i] for i in range(len(rows))]
    judged, verdict = judge(rows, judging, prefix)
    out.write_validation(kind, [r.row() for r in judged])
    return judged, verdict


def _closure_samples(
    request: Request, config: Config, scheme: CategoryScheme, execs: Executors, out: OutputDir, factors: np.ndarray
) -> tuple[list[BinSample], list[BinSample]]:  # fmt: skip
    """Bins after and before calibration: from histograms filled while reading (binned), or from the events."""
    edges, peak = config.closure.bin_edges_gev, config.fit.params["bw_mass"].value
    binned = request.selection.binned
    scaling = measured_scaling(
        config, scheme, lambda grid: load_reduction(request, config, scheme, execs, out, Keep(profile=grid))[0]
    )  # fmt: skip
    grids = grids_from_config(config, len(edges) - 1)
    acceptance = acceptance_grid(config, len(edges) - 1, (scheme.pt_edges[0], scheme.pt_edges[-1]))
    binning = sigma_pred_binning(config, edges, factors, peak, scaling)
    uncalibrated_binning = replace(binning, factors=None)
    specs = closure_specs(binning, grids, acceptance) + closure_specs(uncalibrated_binning, grids, acceptance)[:1]
    if not binned and acceptance is None:
        specs = ()  # unbinned fits need only the events
    reduction, _ = load_reduction(request, config, scheme, execs, out, Keep(specs, events=not binned, muons=not binned and scaling is not None))
    if binned:
        after_pred, after_raw, before = reduction.histograms
        after = samples_from_histograms(after_pred, after_raw, config.step2, "closure")
        uncalibrated = samples_from_histograms(before, before, config.step2, "closure (uncalibrated)")
    else:
        after = samples_from_events(reduction.skim, binning)  # type: ignore[arg-type]
        uncalibrated = samples_from_events(reduction.skim, uncalibrated_binning)  # type: ignore[arg-type]
    if acceptance is not None:
        after = with_bin_acceptance(after, reduction.histograms[0])
        uncalibrated = with_bin_acceptance(uncalibrated, reduction.histograms[2])
    return after, uncalibrated


def run_closure(request: Request, config: Config, scheme: CategoryScheme, execs: Executors, out: OutputDir) -> ClosureResult:
    """Closure after and before calibration: fits of every bin, both tables written, both verdicts."""
    json_path = correction_to_test(request, out)
    tested = load_correction(json_path).factors(scheme)
    factors = np.array([tested[name] for name in scheme.names], dtype=np.float64)
    after_samples, before_samples = _closure_samples(request, config, scheme, execs, out, factors)
    fix = request.selection.fix_cat
    only = closure_bin_index(fix, config.closure.bin_edges_gev) if fix else None
    passes = []
    for kind, samples in ((CLOSURE, after_samples), (UNCALIBRATED, before_samples)):
        group = FitGroup.of(kind, config, request, out, execs.figures)
        passes.append(_fit_and_judge(group, samples, _Check("closure", config.closure), execs.fit, only))
    (after, verdict_after), (before, verdict_before) = passes
    if only is None:  # a re-fitted bin beside bins of earlier factors keeps their record
        out.write_tested_factors("closure", scheme.names, factors)
    text = "\n".join([verdict_after.text("closure after calibration"), reference_text(before, "closure before calibration")])
    return ClosureResult(
        Validation(tuple(after), verdict_after), Validation(tuple(before), verdict_before), text, json_path, tuple(float(f) for f in factors)
    )


def _signal_samples(
    request: Request, config: Config, scheme: CategoryScheme, year: str, execs: Executors, factors: np.ndarray
) -> list[BinSample]:  # fmt: skip
    """Bins of calibrated sigma_pred of the signal-region events: histograms filled while reading (binned) or events."""
    binned = request.selection.binned
    files = find_files(input_root(request.paths, config), config.input.signal_glob, year)
    higgs = config.higgs
    edges = higgs.bin_edges_gev
    reading = FileReading(scheme, higgs.signal_region_gev, config.input.weight_column, config.input.batch_rows)
    scaling = measured_scaling(
        config, scheme, lambda grid: reduce_files(files, execs, replace(reading, keep=Keep(profile=grid)), progress="signal files (pT profile)")
    )  # fmt: skip
    binning = sigma_pred_binning(config, edges, factors, higgs.mass_gev, scaling)
    specs: tuple = ()
    if binned:
        lo, hi = higgs.signal_region_gev
        grids = replace(grids_from_config(config, len(edges) - 1), mass_range_gev=(lo, hi), mass_bin_gev=(hi - lo) / _fine_bins(config))
        specs = closure_specs(binning, grids, source_categories=scheme.n_categories)
    wanted = replace(reading, keep=Keep(specs, events=not binned, muons=not binned and scaling is not None))
    reduction = reduce_files(files, execs, wanted, progress="signal files")
    if binned:
        return samples_from_histograms(*reduction.histograms, config.step2, "higgs")
    return samples_from_events(reduction.skim, binning, scheme.n_categories)  # type: ignore[arg-type]


def _factor_errors(out: OutputDir, scheme: CategoryScheme, factors: np.ndarray) -> np.ndarray | None:
    """The errors of ``factors`` from this directory's step 3 table; None when that table is not theirs (``--calib-json``)."""
    table = out.read_factors().by_name()
    if set(table) != set(scheme.names):
        values = errors = np.full(scheme.n_categories, np.nan)
    else:
        values = np.array([table[n].calibration_factor for n in scheme.names])
        errors = np.array([table[n].calibration_factor_err for n in scheme.names])
    if not np.allclose(values, factors, rtol=1e-6, atol=0.0):
        log.info("Higgs check: no step-3 table of these factors in %s, so its errors omit the factors' own", out.path)
        return None
    return errors


def _fine_bins(config: Config) -> int:
    """Bins of the signal-region mass grid: a common multiple of every binning a Higgs fit may use."""
    nominal = higgs_fit_spec(config, "higgs", binned=True)
    bins = {nominal.bins} | {r.bins for r in retry_specs(config, nominal, None) if r.range_gev == nominal.range_gev}
    fine = math.lcm(*bins)
    if fine > 1_000_000:
        raise ConfigError(f"the Higgs fits' binnings {sorted(bins)} over the signal region have no common grid below 10^6 bins")
    return fine


def run_higgs_validation(
    request: Request, config: Config, scheme: CategoryScheme, execs: Executors, out: OutputDir, tested: Sequence[float]
) -> Validation:
    """Fit the H peak in bins of calibrated sigma_pred; write the table and its verdict, queue the fits' figures.

    The signal sample is simulation: it tests the MC factors. Data factors measure how far data and
    simulation differ, not the calibration: said once, as a warning.
    """
    if not request.selection.is_mc:
        log.warning(
            "Higgs check of %s: Data factors applied to simulated signal test how data and simulation differ, "
            "not the calibration (run it with --isMC)", out.year,
        )  # fmt: skip
    factors = np.array(tested)
    samples = _signal_samples(request, config, scheme, out.year, execs, factors)
    higgs = config.higgs
    gates = config.fit.quality.model_copy(
        update={"max_chi2_ndf": higgs.max_chi2_ndf, "max_shape_mismodelling": higgs.max_shape_mismodelling}
    )
    higgs_gated = config.model_copy(update={"fit": config.fit.model_copy(update={"quality": gates})})
    group = FitGroup.of(HIGGS, higgs_gated, request, out, execs.figures)
    judging = ClosureConfig(
        bin_variable=config.closure.bin_variable, bin_edges_gev=list(higgs.bin_edges_gev), min_events=higgs.min_events,
        tolerance=higgs.tolerance, n_sigma=config.closure.n_sigma,
    )  # fmt: skip
    errors = _factor_errors(out, scheme, factors)
    judged, verdict = _fit_and_judge(group, samples, _Check("higgs", judging), execs.fit, factor_errors=(factors, errors))
    out.write_tested_factors("higgs", scheme.names, factors)
    out.write_verdict("higgs", verdict.text(HIGGS_LABEL))
    return Validation(tuple(judged), verdict)
