"""The closure test as a run stage: read the bins of calibrated sigma_pred, fit them, judge, write the tables.

The physics of the bins (their samples, fit specs, rows and verdict) is ``lib.closure``; this
module reads the inputs (``lib.run.reduction``), runs the fits on the run's executor and returns
a ``ClosureResult``; the route writes its verdict and figure beside the Higgs check's.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Sequence

import numpy as np

from lib.acceptance import acceptance_grid
from lib.categories import CategoryScheme
from lib.closure import (
    BinSample, ClosureBin, ClosureVerdict, bin_label, bin_rows, closure_specs, judge, measured_scaling, reference_text,
    samples_from_events, samples_from_histograms, sigma_pred_binning, with_bin_acceptance,
)  # fmt: skip
from lib.config import Config
from lib.correction.writer import read_factors
from lib.errors import CalibrationError, InputError
from lib.executor import TaskExecutor
from lib.histograms import grids_from_config
from lib.outputs import OutputDir
from lib.peak_fits import CLOSURE, UNCALIBRATED, FitGroup, bin_fit_jobs, run_fits
from lib.request import Request
from lib.results import ClosureResult, Validation
from lib.run.reduction import Executors, Keep, load_reduction

__all__ = ["run_closure", "correction_to_test", "closure_bin_index"]


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


def _run_pass(group: FitGroup, samples: list[BinSample], executor: TaskExecutor, only: int | None) -> tuple[list[ClosureBin], ClosureVerdict]:
    """Fit the bins of one pass (``CLOSURE`` after calibration, ``UNCALIBRATED`` before), judge and write its table."""
    config, out, kind = group.config, group.out, group.kind.name
    edges = config.closure.bin_edges_gev
    jobs = bin_fit_jobs(group, samples, edges, "closure", only)
    refit = frozenset(j.task.name for j in jobs) if only is not None else frozenset()
    rows = bin_rows(samples, edges, run_fits(group, jobs, executor, refit))
    if only is not None:
        previous = out.read_validation(kind, ClosureBin)
        if len(previous) != len(rows):
            raise InputError(f"{out.validation_csv(kind)} has {len(previous)} bins, the config {len(rows)}: re-run the whole closure")
        rows = [rows[i] if i == only else previous[i] for i in range(len(rows))]
    judged, verdict = judge(rows, config.closure)
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


def correction_to_test(request: Request, out: OutputDir) -> Path:
    """The correction JSON the closure tests: ``--calib-json`` or the output directory's own.

    Raises:
        InputError: there is none (run steps 1-3 first or pass --calib-json).
    """
    path = Path(request.paths.calib_json or out.correction_json(request.selection.nanoaod_v))
    if not path.exists():
        raise InputError(f"no calibration JSON {path}: run --steps all first or pass --calib-json")
    return path


def run_closure(request: Request, config: Config, scheme: CategoryScheme, execs: Executors, out: OutputDir) -> ClosureResult:
    """Closure after and before calibration: fits of every bin, both tables written, both verdicts."""
    json_path = correction_to_test(request, out)
    tested = read_factors(json_path, scheme)
    factors = np.array([tested[name] for name in scheme.names], dtype=np.float64)
    after_samples, before_samples = _closure_samples(request, config, scheme, execs, out, factors)
    fix = request.selection.fix_cat
    only = closure_bin_index(fix, config.closure.bin_edges_gev) if fix else None
    after, verdict_after = _run_pass(FitGroup.of(CLOSURE, config, request, out, execs.figures), after_samples, execs.fit, only)
    before, verdict_before = _run_pass(FitGroup.of(UNCALIBRATED, config, request, out, execs.figures), before_samples, execs.fit, only)
    if only is None:  # a re-fitted bin beside bins of earlier factors keeps their record
        out.write_tested_factors("closure", scheme.names, factors)
    text = "\n".join([verdict_after.text("closure after calibration"), reference_text(before, "closure before calibration")])
    return ClosureResult(
        Validation(tuple(after), verdict_after), Validation(tuple(before), verdict_before), text, json_path, tuple(float(f) for f in factors)
    )
