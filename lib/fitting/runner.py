"""Fit one category: nominal attempt, then the retry ladder, every attempt gated and recorded.

``fit_category`` is a module-level function of a picklable ``FitTask`` (``lib.fitting.task``) returning a picklable
``FitResult``; ROOT is imported inside it, so it runs unchanged in a fresh worker process. A bad
fit never raises: it comes back with ``ok=False`` and the reason. Only unusable input (arrays of
different lengths, non-finite weights, a backend that cannot run here) raises ``FitError``.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from dataclasses import dataclass
from typing import Any, Callable, NamedTuple

import numpy as np

import lib.fitting.quality as gates
from lib.config import FitSpec
from lib.errors import FitError
from lib.fitting.backend import require_backend
from lib.fitting.fsr import FSR_PARAMETERS, fsr_undetermined
from lib.fitting.effective_width import WIDTH_PARAMS, effective_sigma, effective_sigma_error
from lib.fitting.native_log import native_output_to
from lib.fitting.result import AttemptRecord, FitCurves, FitResult, ParamResult
from lib.fitting.task import FitTask
from lib.fitting.undetermined import undetermined_params, unmeasured_params

log = logging.getLogger(__name__)

CURVE_POINTS_PER_BIN = 4
RESTART_MARGIN = 0.01


@dataclass(frozen=True, eq=False)
class _Outcome:
    record: AttemptRecord
    curves: FitCurves | None
    fitted: bool


def _checked_arrays(task: FitTask) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The task's arrays as 1-D float64 (None for a histogram task), or FitError naming the defect."""
    events = task.events
    if events.histogram is not None:
        return None, None
    masses = np.asarray(events.masses, dtype=np.float64)
    if events.weights is None:
        return masses, None
    weights = np.asarray(events.weights, dtype=np.float64)
    if weights.shape != masses.shape:
        raise FitError(f"category {task.name}: {weights.shape[0]} weights for {masses.shape[0]} events")
    if not np.all(np.isfinite(weights)):
        raise FitError(f"category {task.name}: {int(np.sum(~np.isfinite(weights)))} non-finite event weights")
    return masses, weights


def _unfitted(spec: FitSpec, reason: str, n_events: int, sum_weights: float, seconds: float) -> _Outcome:
    nan = float("nan")
    record = AttemptRecord(
        label=spec.label, status=-1, status_first=-1, status_history=(), cov_qual=-1, edm=nan, min_nll=nan,
        sigma=nan, sigma_err=nan, chi2_ndf=nan, n_float=0, n_events=n_events, sum_weights=sum_weights,
        params=(), failures=(reason,), seconds=seconds,
    )  # fmt: skip
    return _Outcome(record, None, fitted=False)


def _view(array: Any, n: int) -> np.ndarray:
    """Copy a ROOT ``double*`` of length ``n`` into numpy."""
    if n == 0:
        return np.zeros(0)
    array.reshape((n,))
    return np.array(array, dtype=np.float64, copy=True)


def _per_bin(hist: Any, edges: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Values of a RooHist's points placed in their bins (NaN where RooFit drew no point)."""
    out = np.full(edges.size - 1, np.nan)
    x = _view(hist.GetX(), hist.GetN())
    index = np.searchsorted(edges, x, side="right") - 1
    good = (index >= 0) & (index < out.size)
    out[index[good]] = values[good]
    return out


def _curve_on(curve: Any, grid: np.ndarray) -> np.ndarray:
    """A RooCurve (adaptive points, plus flat points beyond the range) resampled onto ``grid``."""
    n = curve.GetN()
    x, y = _view(curve.GetX(), n), _view(curve.GetY(), n)
    inside = (x >= grid[0]) & (x <= grid[-1])
    return np.interp(grid, x[inside], y[inside])


def _plot_and_chi2(ROOT: Any, built: Any, data: Any, spec: FitSpec, n_float: int) -> tuple[float, FitCurves]:
    """chi2/NDF exactly as the method defines it, and the plot arrays from the same RooPlot.

    ``frame.chiSquare(model, data, n_float)`` on a frame with ``spec.bins`` bins compares the
    plotted curve with the plotted data, so the chi2, the pulls and the drawn curves agree.
    """
    lo, hi = spec.range_gev
    edges = np.linspace(lo, hi, spec.bins + 1)
    grid = np.linspace(lo, hi, CURVE_POINTS_PER_BIN * spec.bins + 1)
    frame = built.observable.frame(ROOT.RooFit.Bins(spec.bins))
    # A RooPlot registers itself in gDirectory and PyROOT does not own a returned pointer:
    # without this every category would leave its frame (and curves) behind.
    ROOT.SetOwnership(frame, True)
    try:
        data.plotOn(frame, ROOT.RooFit.Name("data"))
        built.total.plotOn(frame, ROOT.RooFit.Name("total"))
        chi2 = float(frame.chiSquare("total", "data", n_float))
        hist = frame.getHist("data")
        n = hist.GetN()
        counts = _per_bin(hist, edges, _view(hist.GetY(), n))
        err_low = _per_bin(hist, edges, _view(hist.GetEYlow(), n))
        err_high = _per_bin(hist, edges, _view(hist.GetEYhigh(), n))
        curve = frame.getCurve("total")
        # Pulls as chiSquare forms them: the curve averaged over the bin, the error on the curve's side.
        average = np.array([curve.average(a, b) for a, b in zip(edges[:-1], edges[1:])])
        residual = counts - average
        error = np.where(residual > 0, err_low, err_high)
        pulls = np.divide(residual, error, out=np.full_like(residual, np.nan), where=error > 0)
        total = _curve_on(curve, grid)
        sum_weights = float(data.sumEntries())
    finally:
        del frame
    if built.background is None:
        signal, background = total.copy(), None
    else:
        # Components are evaluated rather than plotted: plotOn(Components(...)) clones the FFT
        # convolution per call, and ROOT 6.40 never frees a clone's FFT buffers.
        # Same normalisation as RooFit's curves: fraction x pdf x sum of weights x bin width.
        scale = sum_weights * (edges[1] - edges[0])
        fraction = built.params["bkg_fraction"].getVal()
        signal = (1.0 - fraction) * scale * _density(ROOT, built, built.signal, grid)
        background = fraction * scale * _density(ROOT, built, built.background, grid)
    return chi2, FitCurves(edges, counts, err_low, err_high, grid, total, signal, background, pulls)


def _density(ROOT: Any, built: Any, pdf: Any, grid: np.ndarray) -> np.ndarray:
    """``pdf`` normalised over the fit range, evaluated at each point of ``grid``."""
    norm = ROOT.RooArgSet(built.observable)
    out = np.empty(grid.size)
    for i, x in enumerate(grid):
        built.observable.setVal(float(x))
        out[i] = pdf.getVal(norm)
    return out


def _param_results(built: Any, fit: Any, tolerance: float) -> tuple[ParamResult, ...]:
    """Every model parameter by its spec name; floating ones read from the final fit result."""
    floating = fit.floatParsFinal()
    out = []
    for pname, var in built.params.items():
        fitted = floating.find(var.GetName())
        source = fitted if fitted else var
        lo, hi = (limit if math.isfinite(limit) else None for limit in (source.getMin(), source.getMax()))
        value, constant = float(source.getVal()), not fitted
        error = 0.0 if constant else float(source.getError())
        at_limit = not constant and gates.at_limit(value, lo, hi, tolerance)
        out.append(ParamResult(pname, value, error, lo, hi, constant, at_limit))
    return tuple(out)


def _reported_width(spec: FitSpec, built: Any, params: tuple[ParamResult, ...], fit: Any) -> tuple[float, float]:
    """The DCB's effective width (``lib.fitting.effective_width``) and its error from the fit's covariance matrix."""
    by_name = {p.name: p for p in params}
    values = {name: by_name[name].value for name in WIDTH_PARAMS}
    floating = [name for name in WIDTH_PARAMS if not by_name[name].constant]
    fitted = fit.floatParsFinal()
    index = {name: fitted.index(built.params[name].GetName()) for name in floating}
    matrix = fit.covarianceMatrix()
    covariance = {(a, b): float(matrix[index[a]][index[b]]) for a in floating for b in floating}
    width = effective_sigma(*(values[name] for name in WIDTH_PARAMS), spec.width_window_sigmas)
    return width, effective_sigma_error(values, covariance, floating, spec.width_window_sigmas)


def _floating(built: Any) -> tuple[dict[str, Any], dict[str, tuple[float, float]]]:
    """The model's floating parameters by spec name, and their limits."""
    floating = {name: var for name, var in built.params.items() if not var.isConstant()}
    return floating, {name: (float(var.getMin()), float(var.getMax())) for name, var in floating.items()}


def _fix(floating: dict[str, Any], names: tuple[str, ...]) -> tuple[str, ...]:
    """Fix ``names`` where the fit left them; return them."""
    for name in names:
        floating[name].setConstant(True)
    return names


def _fix_undetermined(built: Any, spec: FitSpec) -> tuple[str, ...]:
    """Fix, where the first ``fitTo`` left them, the parameters the data cannot determine (``lib.fitting.undetermined``)."""
    floating, limits = _floating(built)
    values = {name: float(var.getVal()) for name, var in floating.items()}
    rule = spec.undetermined
    fixed = undetermined_params(values, limits, rule.params, rule.limit_tolerance, rule.no_tail_alpha)
    return _fix(floating, fixed + fsr_undetermined(values, limits, rule.limit_tolerance))


def _fix_unmeasured(built: Any, spec: FitSpec) -> tuple[str, ...]:
    """Fix, where the Hesse fit left them, the parameters whose error exceeds their range (``lib.fitting.undetermined``)."""
    floating, limits = _floating(built)
    errors = {name: float(var.getError()) for name, var in floating.items()}
    candidates = (*spec.undetermined.params, *FSR_PARAMETERS)
    return _fix(floating, unmeasured_params(errors, limits, candidates, spec.undetermined.max_error_to_range))


class _AttemptData(NamedTuple):
    """The events of an attempt's fit range: their number, their sum of weights, and ``make(model)``, which builds their RooFit data."""

    n_events: int
    sum_weights: float
    make: Callable[[Any], Any]


def _attempt_data(task: FitTask, spec: FitSpec, masses: np.ndarray | None, weights: np.ndarray | None) -> _AttemptData:
    """The events of the attempt's fit range.

    Raises:
        ValueError: the spec's bins do not fall on the grid of the task's histogram.
    """
    import lib.fitting.model as rf

    lo, hi = spec.range_gev
    histogram = task.events.histogram
    if histogram is not None:
        edges, contents, sumw2, counts = histogram.rebinned(lo, hi, spec.bins)
        return _AttemptData(int(counts.sum()), float(contents.sum()), lambda built: rf.histogram_dataset(built, edges, contents, sumw2))
    inside = (masses > lo) & (masses < hi)  # open interval, as the Z-window selection
    m = masses[inside]  # type: ignore[index]
    w = None if weights is None else weights[inside]
    sum_weights = float(m.size if w is None else w.sum())
    return _AttemptData(int(m.size), sum_weights, lambda built: rf.make_dataset(built, spec, m, w))


def _run_attempt(task: FitTask, spec: FitSpec, index: int, masses: np.ndarray | None, weights: np.ndarray | None) -> _Outcome:
    """Two ``fitTo`` like the original, then chi2, parameters and gates of one attempt."""
    started = time.perf_counter()
    lo, hi = spec.range_gev
    try:
        sample = _attempt_data(task, spec, masses, weights)
    except ValueError as err:  # a binning off the histogram grid fails this attempt, not the run
        return _unfitted(spec, str(err), task.n_events, float("nan"), time.perf_counter() - started)
    if sample.n_events == 0:
        return _unfitted(spec, f"no events in fit range {lo:g}-{hi:g} GeV", 0, 0.0, time.perf_counter() - started)
    if not sample.sum_weights > 0:
        reason = f"sum of weights {sample.sum_weights:g} in fit range is not positive"
        return _unfitted(spec, reason, sample.n_events, sample.sum_weights, time.perf_counter() - started)

    with native_output_to(task.log_path):
        record, curves = _fit_attempt(task, spec, index, sample)
    failures = tuple(gates.evaluate_gates(record, task.quality, task.median_sigma_pred, peak_offset=spec.peak == "z"))
    record = dataclasses.replace(record, failures=failures, seconds=time.perf_counter() - started)
    log.debug(
        "%s [%s]: sigma_fit=%.4f+-%.4f (core %.4f+-%.4f) status=%d covQual=%d chi2/ndf=%.2f %.2fs%s%s",
        task.name, spec.label, record.width, record.width_err, record.sigma, record.sigma_err, record.status, record.cov_qual,
        record.chi2_ndf, record.seconds, f" fixed {','.join(record.fixed_undetermined)}" if record.fixed_undetermined else "",
        "" if not failures else " FAILED: " + "; ".join(failures),
    )  # fmt: skip
    return _Outcome(record, curves, fitted=True)


def _fit_options(ROOT: Any, spec: FitSpec, weighted: bool) -> list[Any]:
    """The ``fitTo`` options both fits of an attempt share."""
    options = [ROOT.RooFit.Save(True), ROOT.RooFit.PrintLevel(-1), ROOT.RooFit.PrintEvalErrors(-1), ROOT.RooFit.EvalBackend(spec.backend)]
    if spec.binned:
        # Offsetting each bin by its saturated-model term keeps the NLL near zero, so Minuit's
        # finite differences are not lost in a 1e5-sized constant (fewer status 1/3 fits).
        options.append(ROOT.RooFit.Offset("bin"))
    if weighted:
        # Weighted events: errors from the sandwich (SumW2) correction, not from sum(w) as counts.
        options.append(ROOT.RooFit.SumW2Error(True))
    return options


def _minimise(ROOT: Any, built: Any, data: Any, spec: FitSpec, options: list[Any]) -> tuple[Any, Any, tuple[str, ...]]:
    """The first ``fitTo`` (the basin, no Hesse) and the second (with Hesse): both results and the parameters fixed between.

    ``fitTo(Save)`` hands its RooFitResult to the caller: Python owns and deletes them.
    """
    first = built.first_stage.fitTo(data, *options, ROOT.RooFit.Strategy(spec.strategy_first), ROOT.RooFit.Hesse(False))
    ROOT.SetOwnership(first, True)
    fixed = _fix_undetermined(built, spec)
    final = built.total.fitTo(data, *options, ROOT.RooFit.Strategy(spec.strategy_second), ROOT.RooFit.Hesse(True))
    ROOT.SetOwnership(final, True)
    unmeasured = _fix_unmeasured(built, spec)
    if unmeasured:
        # Their flat direction inflated sigma's error: the fit again without them (the same minimum).
        del final
        final = built.total.fitTo(data, *options, ROOT.RooFit.Strategy(spec.strategy_second), ROOT.RooFit.Hesse(True))
        ROOT.SetOwnership(final, True)
        fixed += unmeasured
    return first, final, fixed


def _fit_attempt(task: FitTask, spec: FitSpec, index: int, sample: _AttemptData) -> tuple[AttemptRecord, FitCurves]:
    """The ROOT part of an attempt: build, two ``fitTo``, chi2 and parameters (gates not applied yet)."""
    import lib.fitting.model as rf

    ROOT = rf.ROOT
    built = rf.build_model(spec, rf.object_tag(task.name, index), task.acceptance)
    data = first = final = None
    try:
        data = sample.make(built)
        first, final, fixed = _minimise(ROOT, built, data, spec, _fit_options(ROOT, spec, task.weighted))
        n_float = int(final.floatParsFinal().getSize())
        chi2, curves = _plot_and_chi2(ROOT, built, data, spec, n_float)
        params = _param_results(built, final, task.quality.limit_tolerance)
        sigma = next(p for p in params if p.name == "sigma")
        width, width_err = _reported_width(spec, built, params, final) if spec.width == "effective" else (sigma.value, sigma.error)
        record = AttemptRecord(
            label=spec.label,
            status=int(final.status()),
            status_first=int(first.status()),
            status_history=tuple(
                (str(final.statusLabelHistory(i)), int(final.statusCodeHistory(i))) for i in range(final.numStatusHistory())
            ),
            cov_qual=int(final.covQual()),
            edm=float(final.edm()),
            min_nll=float(final.minNll()),
            sigma=sigma.value,
            sigma_err=sigma.error,
            chi2_ndf=chi2,
            n_float=n_float,
            n_events=sample.n_events,
            sum_weights=sample.sum_weights,
            params=params,
            failures=(),
            seconds=0.0,
            n_bins=spec.bins,
            fixed_undetermined=fixed,
            width=width,
            width_err=width_err,
        )
    finally:
        del data, first, final
        built.close()
    return record, curves


def _best(outcomes: list[_Outcome]) -> _Outcome | None:
    """The fitted attempt with the fewest gate failures (the earliest among equals)."""
    return min(outcomes, key=lambda o: (not o.fitted, len(o.record.failures)), default=None)


def _restarted(spec: FitSpec, previous: _Outcome | None) -> FitSpec:
    """``spec`` started (``start_from_previous``) or fixed (``freeze_from_previous``) at ``previous``'s values.

    Floating starts are kept ``RESTART_MARGIN`` of the range inside the limits: Minuit's
    bounded-parameter transform has no gradient at a limit, so a restart exactly there cannot
    compute its Hesse matrix. Without a fitted earlier attempt the spec is returned unchanged.
    """
    if previous is None or not previous.fitted:
        return spec
    params = dict(spec.params)
    for fitted in previous.record.params:
        current = params.get(fitted.name)
        if current is None or current.constant or not math.isfinite(fitted.value):
            continue
        if fitted.name in spec.freeze_from_previous:
            params[fitted.name] = current.model_copy(update={"value": fitted.value, "constant": True})
        elif spec.start_from_previous:
            value = fitted.value
            if current.min is not None and current.max is not None:
                margin = RESTART_MARGIN * (current.max - current.min)
                value = min(max(value, current.min + margin), current.max - margin)
            params[fitted.name] = current.model_copy(update={"value": value})
    return spec.model_copy(update={"params": params})


def _ladder(task: FitTask, masses: np.ndarray | None, weights: np.ndarray | None) -> list[_Outcome]:
    """The nominal attempt, then each retry until one passes: every attempt made.

    A rung that restarts at (or fixes parameters at) the best minimum so far is skipped when that
    minimum failed only model gates, which a restart cannot change (``quality.covariance_failed``).
    """
    outcomes: list[_Outcome] = []
    for index, spec in enumerate((task.nominal, *task.retries)):
        if spec.start_from_previous or spec.freeze_from_previous:
            best = _best(outcomes)
            if best is not None and best.fitted and not gates.covariance_failed(best.record):
                log.debug("%s: skipping '%s': only the model failed, a restart at its minimum cannot help", task.name, spec.label)
                continue
            spec = _restarted(spec, best)
        outcomes.append(_run_attempt(task, spec, index, masses, weights))
        if outcomes[-1].record.passed:
            break
    return outcomes


def fit_category(task: FitTask) -> FitResult:
    """Fit one category: the nominal spec, then each retry until an attempt passes every gate (``_ladder``).

    When none passes, the result carries the attempt with the fewest gate failures (the earliest
    among equals), ``ok=False`` and those failures as ``reason``; an attempt whose range holds no
    events is recorded as failed instead of raising, so a category can never stop a run.

    Raises:
        FitError: unusable input (inconsistent arrays, non-finite weights) or a backend that cannot
            run in this process (``cuda`` without RooFit CUDA support).
    """
    started = time.perf_counter()
    masses, weights = _checked_arrays(task)
    for spec in (task.nominal, *task.retries):
        require_backend(spec.backend)
    import lib.fitting.model as rf

    rf.silence_roofit()
    outcomes = _ladder(task, masses, weights)
    chosen = outcomes[-1]
    if not chosen.record.passed:
        chosen = _best(outcomes)
    result = FitResult(
        name=task.name,
        chosen=chosen.record,
        attempts=tuple(o.record for o in outcomes),
        weighted=task.weighted,
        peak=task.nominal.peak,
        backend=task.nominal.backend,
        curves=chosen.curves,
        seconds=time.perf_counter() - started,
        width_definition=task.nominal.width,
    )
    if result.ok:
        log.debug(
            "%s: sigma_fit = %.4f +- %.4f GeV (%s, attempt %d, %.2fs)",
            task.name, result.fit_val, result.fit_err, chosen.record.label, len(outcomes), result.seconds,
        )  # fmt: skip
    else:
        log.debug("%s: %s", task.name, result.reason)  # reported once, by the caller that collects the results
    return result


def reference_fit(task: FitTask, reference: str = "cpu") -> FitResult:
    """Module-level worker entry: ``task`` fitted again, every attempt evaluated by the ``reference`` backend."""
    return fit_category(task.with_specs(lambda spec: spec.model_copy(update={"backend": reference})))


def backend_agreement(result: FitResult, ref: FitResult, max_shift: float = 0.2) -> tuple[bool, str]:
    """Whether two backends found the same minimum (same attempt, sigma within ``max_shift`` errors), and a log line."""
    scale = max(result.fit_err, ref.fit_err)
    shift = abs(result.fit_val - ref.fit_val)
    label, ref_label = result.chosen.label, ref.chosen.label
    if ref_label != label or not shift <= max_shift * scale:
        return False, (
            f"{result.name}: backend {result.backend} gives sigma {result.fit_val:.5f}+-{result.fit_err:.5f} ({label}), "
            f"{ref.backend} gives {ref.fit_val:.5f}+-{ref.fit_err:.5f} ({ref_label}): backends disagree"
        )
    return True, f"{result.name}: backend {result.backend} agrees with {ref.backend} (shift {shift:.2g} GeV)"
