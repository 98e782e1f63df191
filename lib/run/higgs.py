"""Higgs-peak validation as a run step: does the Z-derived calibration describe the H->mumu mass resolution?

On a signal sample the calibrated sigma_pred is computed per event, events are binned in it, and
the H peak in the signal region is fitted with a pure double Crystal Ball (the 3.7 MeV natural
width is negligible). Fitted sigma / median calibrated sigma_pred should be 1 in every bin. The
signal sample is independent of the Z fits, so the ratio's error includes the calibration
factors' own, in proportion to each category's share of the bin: a bin fed mostly by one small
category cannot be tested more precisely than that category's factor is known.
"""

from __future__ import annotations

import logging
import math
from dataclasses import replace

import numpy as np

from lib.categories import CategoryScheme
from lib.closure import (
    BinSample, bin_rows, closure_specs, judge, measured_scaling, samples_from_events, samples_from_histograms, sigma_pred_binning,
)  # fmt: skip
from lib.config import ClosureConfig, Config, higgs_fit_spec, retry_specs
from lib.errors import ConfigError
from lib.histograms import grids_from_config
from lib.io.reader import find_files
from lib.outputs import OutputDir
from lib.peak_fits import HIGGS, FitGroup, bin_fit_jobs, run_fits
from lib.request import Request
from lib.results import Validation
from lib.run.reduction import Executors, FileReading, Keep, input_root, reduce_files

__all__ = ["run_higgs_validation", "HIGGS_LABEL"]

# How the verdict line names the check (the report picks the line by its first word).
HIGGS_LABEL = "Higgs peak (DCB) after calibration"

log = logging.getLogger(__name__)


def _signal_samples(
    request: Request, config: Config, scheme: CategoryScheme, year: str, execs: Executors, factors: np.ndarray
) -> list[BinSample]:  # fmt: skip
    """Bins of calibrated sigma_pred of the signal-region events: histograms filled while reading (binned) or events."""
    binned = request.selection.binned
    root = input_root(request.paths, config)
    files = find_files(root, config.input.signal_glob, year)
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
    """The errors of ``factors`` from this directory's step 3 table, or None when that table is not theirs.

    A JSON from elsewhere (``--calib-json``) carries no errors: the check's errors then omit the calibration's.
    """
    table = out.read_factors()
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
    """Bins of the signal-region mass grid: a common multiple of every binning a Higgs fit may use.

    Raises:
        ConfigError: those binnings have no common multiple below a million bins.
    """
    nominal = higgs_fit_spec(config, "higgs", binned=True)
    bins = {nominal.bins} | {r.bins for r in retry_specs(config, nominal, None) if r.range_gev == nominal.range_gev}
    fine = math.lcm(*bins)
    if fine > 1_000_000:
        raise ConfigError(f"the Higgs fits' binnings {sorted(bins)} over the signal region have no common grid below 10^6 bins")
    return fine


def run_higgs_validation(
    request: Request, config: Config, scheme: CategoryScheme, execs: Executors, out: OutputDir, factors: np.ndarray
) -> Validation:
    """Fit the H peak in bins of calibrated sigma_pred; write the table and its verdict, queue the fits' figures.

    The signal sample is simulation: it resolves like the DY MC, so it tests the MC factors.
    With Data factors the check measures how far data and simulation differ, not the
    calibration: said once, as a warning.
    """
    selection, year = request.selection, out.year
    if not selection.is_mc:
        log.warning(
            "Higgs check of %s: Data factors applied to simulated signal test how data and simulation differ, "
            "not the calibration (run it with --isMC)", year,
        )  # fmt: skip
    samples = _signal_samples(request, config, scheme, year, execs, factors)
    edges = config.higgs.bin_edges_gev
    gates = config.fit.quality.model_copy(
        update={"max_chi2_ndf": config.higgs.max_chi2_ndf, "max_shape_mismodelling": config.higgs.max_shape_mismodelling}
    )
    higgs_gated = config.model_copy(update={"fit": config.fit.model_copy(update={"quality": gates})})
    group = FitGroup.of(HIGGS, higgs_gated, request, out, execs.figures)
    results = run_fits(group, bin_fit_jobs(group, samples, edges, "higgs"), execs.fit)
    rows = bin_rows(samples, edges, results, prefix="higgs", factors=factors, factor_errors=_factor_errors(out, scheme, factors))
    higgs_cfg = ClosureConfig(
        bin_variable=config.closure.bin_variable,
        bin_edges_gev=list(edges), min_events=config.higgs.min_events, tolerance=config.higgs.tolerance, n_sigma=config.closure.n_sigma
    )
    judged, verdict = judge(rows, higgs_cfg, prefix="higgs")
    out.write_validation("higgs", [r.row() for r in judged])
    out.write_tested_factors("higgs", scheme.names, factors)
    out.write_verdict("higgs", verdict.text(HIGGS_LABEL))
    return Validation(tuple(judged), verdict)
