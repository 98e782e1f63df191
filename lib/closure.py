"""Closure test: re-fit the Z peak in bins of calibrated sigma_pred and give a numerical verdict.

If the calibration is right, the fitted width in a narrow bin of calibrated sigma_pred equals the
bin's median calibrated sigma_pred. The same test without the calibration (factor 1) runs beside
it, so a user sees what the calibration changed. The bins are contiguous (the original skipped
1.2-1.3 GeV). This module is the physics of the bins, shared with the Higgs check;
``lib.run.validation`` reads, fits and writes them.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from lib.acceptance import AcceptanceGrid, group_acceptance
from lib.categories import CategoryScheme, bin_index, group_rows
from lib.config import ClosureConfig, Config, Step2Config
from lib.fitting.result import FitResult
from lib.fitting.task import AcceptanceTable
from lib.histogram_specs import ByPredictedResolution, HistogramSpec
from lib.histograms import CategoryHistograms, HistogramGrids, MassHistogram
from lib.medians import histogram_median
from lib.peak_scaling import PeakScaling, ProfileGrid, PtDependence
from lib.resolution import median_error_order_statistic, weighted_median

if TYPE_CHECKING:  # types only: the bins never read files themselves
    from lib.io.merge import Reduction
    from lib.io.reader import Skim

log = logging.getLogger(__name__)

FIT_OK = "ok"  # fit_quality of a bin whose fit passed its gates ("failed": it did not)


class BinState(StrEnum):
    """What became of a closure or Higgs bin, in the words of its CSV's ``state`` column, the report and the figures.

    ``TESTED`` and ``FIT_FAILED`` bins enter the verdict; for the other two the ``verdict`` column says why not.
    """

    TESTED = "tested"  # enough events and a good fit: pass or fail by its ratio
    FIT_FAILED = "fit failed"  # enough events, but the fit failed (or its worker crashed)
    NOT_TESTED = "not tested"  # fewer events than closure.min_events (higgs.min_events): fitted, not judged
    NOT_FITTED = "not fitted"  # fewer events than fit.min_events: no fit was run


def bin_state(fit_quality: str, verdict: str, ratio: float) -> BinState:
    """The state of a bin from its CSV columns (``judge`` wrote ``verdict``): the one definition of the vocabulary."""
    if verdict in ("pass", "fail"):
        return BinState.TESTED if fit_quality == FIT_OK and math.isfinite(ratio) else BinState.FIT_FAILED
    return BinState.NOT_FITTED if fit_quality == BinState.NOT_FITTED else BinState.NOT_TESTED


@dataclass(frozen=True)
class ClosureBin:
    """One row of the closure CSV: fitted width against the median prediction in one sigma_pred bin."""

    bin: int
    low: float
    high: float
    nEvents: int
    fit_val: float
    fit_err: float
    median_val_NonCal: float
    median_val: float
    median_err: float
    ratio: float
    ratio_err: float
    fit_quality: str  # "ok", "failed" or "not fitted"
    verdict: str  # "pass", "fail", or why the bin is not judged ("not tested: ...", "not fitted: ...")
    # Relative error of median_val from the calibration factors' own errors (NaN: not propagated);
    # where propagated, ratio_err includes it.
    calibration_err: float = float("nan")

    @property
    def state(self) -> BinState:
        return bin_state(self.fit_quality, self.verdict, self.ratio)

    @property
    def tested(self) -> bool:
        """Whether the bin enters the verdict (a failed fit does, as a failing bin)."""
        return self.state in (BinState.TESTED, BinState.FIT_FAILED)

    def row(self) -> dict[str, object]:
        """The CSV row: the fields and the bin's ``state``."""
        return asdict(self) | {"state": str(self.state)}


@dataclass(frozen=True)
class ClosureVerdict:
    """Overall verdict: every tested bin within tolerance (or within n_sigma of 1)."""

    passed: bool
    n_tested: int
    chi2: float
    failing_bins: tuple[str, ...]

    def text(self, label: str) -> str:
        status = "PASS" if self.passed else "FAIL"
        fails = f"; failing bins: {', '.join(self.failing_bins)}" if self.failing_bins else ""
        return f"{label}: {status} ({self.n_tested} bins tested, chi2(ratio=1) = {self.chi2:.1f}/{self.n_tested}){fails}"


def reference_text(rows: Sequence[ClosureBin], label: str) -> str:
    """The closure without the factors, stated as what it is: the miscalibration the factors correct, not a failure.

    The range and the error-weighted mean cover every measured bin: listing only the bins beyond the
    tolerance would make a uniform +7 % offset look like two bad bins.

    >>> r = [ClosureBin(0, 0.6, 0.7, 9000, 0.8, 0.01, 0.6, 0.6, 0.001, 1.28, 0.02, "ok", "fail"),
    ...      ClosureBin(1, 0.7, 0.8, 9000, 0.9, 0.01, 0.7, 0.7, 0.001, 1.06, 0.02, "ok", "pass")]
    >>> reference_text(r, "closure before calibration")
    'closure before calibration (reference): fit / median - 1 = +6.0 % to +28.0 % (mean +17.0 %) in 2 measured bins, 1 beyond the tolerance: the miscalibration the factors correct'
    >>> reference_text(r[1:], "before")
    'before (reference): fit / median - 1 = +6.0 % (mean +6.0 %) in 1 measured bins, all within the tolerance'
    >>> reference_text(r[:1] + [dataclasses.replace(r[1], fit_quality="failed")], "before")
    'before (reference): fit / median - 1 = +28.0 % (mean +28.0 %) in 1 measured bins, 1 beyond the tolerance: the miscalibration the factors correct; 1 bin fit(s) failed'
    """
    tested = [r for r in rows if r.tested]
    measured = [r for r in tested if r.state == BinState.TESTED]
    failed = len(tested) - len(measured)
    fits = f"; {failed} bin fit(s) failed" if failed else ""
    if not measured:
        return f"{label} (reference): no bin measured ({len(tested)} tested{fits})"
    offsets = [r.ratio - 1.0 for r in measured]
    weights = [1.0 / r.ratio_err**2 if r.ratio_err > 0 and math.isfinite(r.ratio_err) else 0.0 for r in measured]
    mean = sum(w * o for w, o in zip(weights, offsets)) / sum(weights) if sum(weights) > 0 else sum(offsets) / len(offsets)
    low, high = min(offsets), max(offsets)
    span = f"{100 * low:+.1f} %" if low == high else f"{100 * low:+.1f} % to {100 * high:+.1f} %"
    beyond = sum(r.verdict == "fail" for r in measured)
    verdict = f"{beyond} beyond the tolerance: the miscalibration the factors correct" if beyond else "all within the tolerance"
    return f"{label} (reference): fit / median - 1 = {span} (mean {100 * mean:+.1f} %) in {len(measured)} measured bins, {verdict}{fits}"


def bin_label(low: float, high: float, prefix: str = "closure") -> str:
    """Name of a closure bin, also the key for per-bin fit overrides (``closure_*``)."""
    return f"{prefix}_{low:g}-{high:g}"


def judge(rows: Sequence[ClosureBin], cfg: ClosureConfig, prefix: str = "closure") -> tuple[list[ClosureBin], ClosureVerdict]:
    """Mark each bin pass/fail and combine: a bin passes if |ratio-1| <= tolerance or <= n_sigma * error.

    A bin without a fit (fewer events than ``fit.min_events``) or with fewer events than
    ``cfg.min_events`` (``<prefix>.min_events``) is not judged; its verdict says which.
    """
    judged, chi2, failing, tested = [], 0.0, [], 0
    for row in rows:
        if row.fit_quality == BinState.NOT_FITTED:
            verdict = f"{BinState.NOT_FITTED}: {row.nEvents} events < fit.min_events"
        elif row.nEvents < cfg.min_events:
            verdict = f"{BinState.NOT_TESTED}: {row.nEvents} events < {prefix}.min_events ({cfg.min_events})"
        elif row.fit_quality != FIT_OK or not math.isfinite(row.ratio):
            verdict = "fail"
            failing.append(f"{bin_label(row.low, row.high, prefix)} ({BinState.FIT_FAILED})")
            tested += 1
        else:
            tested += 1
            deviation = row.ratio - 1.0
            chi2 += (deviation / row.ratio_err) ** 2 if row.ratio_err > 0 else 0.0
            ok = abs(deviation) <= cfg.tolerance or abs(deviation) <= cfg.n_sigma * row.ratio_err
            verdict = "pass" if ok else "fail"
            if not ok:
                failing.append(f"{bin_label(row.low, row.high, prefix)} ({deviation:+.1%})")
        judged.append(dataclasses.replace(row, verdict=verdict))
    return judged, ClosureVerdict(tested > 0 and not failing, tested, chi2, tuple(failing))


@dataclass(frozen=True)
class BinSample:
    """One bin of (calibrated) sigma_pred: what its fit needs (events or mass histogram) and its medians."""

    n_events: int
    median: float
    median_err: float
    raw_median: float
    masses: np.ndarray | None = None
    weights: np.ndarray | None = None
    histogram: MassHistogram | None = None
    # A(m) of the bin (the Z line shape "acceptance").
    acceptance: AcceptanceTable | None = None
    # Sum of weights of the bin's events per category (None: not counted), for the factors' share of its error.
    category_weights: np.ndarray | None = None


def measured_scaling(config: Config, scheme: CategoryScheme, profile_pass: Callable[[ProfileGrid], Reduction]) -> PeakScaling | None:
    """The peak scaling from the muon profile that ``profile_pass`` sums on ``closure.pt_profile``'s grid in a first
    pass over the files, before any event is binned (None, and no pass, when the bins are on sigma_pred itself)."""
    if config.closure.bin_variable != "sigma_pred_at_peak":
        return None
    cfg = config.closure.pt_profile
    grid = ProfileGrid(cfg.abseta_max, cfg.abseta_bins, cfg.pt_range_gev, cfg.pt_bins, cfg.bandwidth_log_pt)
    reduction = profile_pass(grid)
    if reduction.profile is None:
        raise ValueError("the reduction holds no muon profile")
    return PeakScaling(PtDependence.from_sums(grid, reduction.profile), scheme)


def samples_from_events(skim: Skim, binning: ByPredictedResolution, source_categories: int = 0) -> list[BinSample]:
    """The bins of ``binning`` with each bin's events (unbinned fits): the same bins as ``binning`` fills while reading.

    ``source_categories`` > 0: with each bin's sum of weights per category.
    """
    raw, predicted, values = binning.resolutions(skim.category, skim.mass, skim.sigma_pred, skim.muons)
    samples = []
    for rows in group_rows(bin_index(values, binning.edges), binning.n_groups):
        weights = None if skim.weight is None else np.ascontiguousarray(skim.weight[rows])
        samples.append(
            BinSample(
                int(len(rows)),
                weighted_median(predicted[rows], weights),
                median_error_order_statistic(predicted[rows], weights) if len(rows) > 1 else float("nan"),
                weighted_median(raw[rows], weights),
                masses=np.ascontiguousarray(skim.mass[rows]),
                weights=weights,
                category_weights=np.bincount(skim.category[rows], weights, minlength=source_categories).astype(np.float64)
                if source_categories else None,
            )
        )
    return samples


def samples_from_histograms(
    predicted: CategoryHistograms, raw: CategoryHistograms, step2: Step2Config, prefix: str
) -> list[BinSample]:  # fmt: skip
    """Bins from histograms filled while reading (binned fits): no per-event data."""
    order_statistic = step2.model_copy(update={"median_error": "order_statistic"})
    samples = []
    for i in range(predicted.grids.n_categories):
        median, err = histogram_median(predicted, i, order_statistic, f"{prefix} bin {i}")
        raw_median, _ = histogram_median(raw, i, order_statistic, f"{prefix} bin {i}")
        samples.append(BinSample(predicted.n_events(i), median, err, raw_median, histogram=predicted.category_mass(i),
                                 category_weights=predicted.category_contents(i)))  # fmt: skip
    return samples


def sigma_pred_binning(
    config: Config, edges: Sequence[float], factors: np.ndarray | None, peak_gev: float, scaling: PeakScaling | None
) -> ByPredictedResolution:  # fmt: skip
    """Bins ``edges`` of sigma_pred times its category's factor (None: raw), in ``closure.bin_variable`` at ``peak_gev``."""
    calibration = None if factors is None else tuple(float(f) for f in factors)
    return ByPredictedResolution(tuple(float(e) for e in edges), calibration, peak_gev, config.closure.bin_variable, scaling=scaling)


def closure_specs(
    binning: ByPredictedResolution, grids: HistogramGrids, acceptance: AcceptanceGrid | None = None, source_categories: int = 0
) -> tuple[HistogramSpec, ...]:  # fmt: skip
    """Histograms of the bins of ``binning``: its own sigma_pred (median, fits, ``acceptance``) and the raw one (``median_val_NonCal``).

    ``source_categories`` > 0: the first also counts each bin's events per category (whose factors they carry).
    """
    bins = dataclasses.replace(grids, n_categories=binning.n_groups)
    predicted = HistogramSpec(bins, dataclasses.replace(binning, value="predicted"), fill_mass=True, acceptance=acceptance,
                              source_categories=source_categories)  # fmt: skip
    return (predicted, HistogramSpec(bins, dataclasses.replace(binning, value="raw"), fill_mass=False))


def with_bin_acceptance(samples: list[BinSample], hists: CategoryHistograms) -> list[BinSample]:
    """``samples`` with each bin's ``A(m)``: its only pT cuts are the category edges and the input's own thresholds."""
    out = []
    for i, sample in enumerate(samples):
        values, span = group_acceptance(hists, i, [i], None)
        out.append(dataclasses.replace(sample, acceptance=AcceptanceTable(values, span)))
    return out


def calibration_error(category_weights: np.ndarray | None, factors: np.ndarray, factor_errors: np.ndarray | None) -> float:
    """Relative error of a bin's calibrated median from the factors' own errors (NaN when unknown).

    Each event's calibrated sigma_pred carries its category's factor, so a factor off by
    ``e_c / f_c`` moves the median by about that times the category's share ``w_c`` of the bin;
    the categories' fits are independent: ``sqrt(sum (w_c e_c / f_c)^2)``.
    """
    if category_weights is None or factor_errors is None:
        return float("nan")
    total = float(category_weights.sum())
    if not total > 0:
        return float("nan")
    share = category_weights / total
    used = share > 0
    relative = np.divide(factor_errors, factors, out=np.full_like(factors, np.nan), where=factors > 0)
    if not np.all(np.isfinite(relative[used])):
        return float("nan")
    return float(np.sqrt(np.sum((share[used] * relative[used]) ** 2)))


def bin_rows(
    samples: Sequence[BinSample], edges: Sequence[float], results: dict[str, Any], prefix: str = "closure",
    factors: np.ndarray | None = None, factor_errors: np.ndarray | None = None,
) -> list[ClosureBin]:  # fmt: skip
    """One unjudged row per bin: fit result against the median prediction, before and after calibration.

    With ``factor_errors`` (the Higgs check: a sample independent of the factors' fits) the ratio's
    error includes the calibration's own (``calibration_error``).
    """
    rows = []
    nan = float("nan")
    for i, sample in enumerate(samples):
        res = results.get(bin_label(edges[i], edges[i + 1], prefix))
        if not isinstance(res, FitResult):  # not fitted, or a crashed worker
            fit_val = fit_err = nan
            quality = "failed" if res is not None else str(BinState.NOT_FITTED)
        else:
            fit_val, fit_err, quality = res.fit_val, res.fit_err, FIT_OK if res.ok else "failed"
        median = sample.median
        ratio = fit_val / median if median > 0 else nan
        calib = calibration_error(sample.category_weights, factors, factor_errors) if factors is not None else nan
        ratio_err = abs(ratio) * math.hypot(fit_err / fit_val, sample.median_err / median, 0.0 if math.isnan(calib) else calib)
        rows.append(
            ClosureBin(i, float(edges[i]), float(edges[i + 1]), sample.n_events, fit_val, fit_err, sample.raw_median, median,
                       sample.median_err, ratio, ratio_err if quality == FIT_OK else nan, quality, "", calib)
        )  # fmt: skip
    return rows
