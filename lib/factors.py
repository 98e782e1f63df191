"""Step 3 numbers: factor = sigma_fit / median(sigma_pred), its propagated error, and the fallback.

A category whose fit failed never enters the correction silently: the configured fallback is
applied, flagged in the table (``source`` column) and stated in the JSON description.
"""

from __future__ import annotations

import logging
import math
import statistics
from dataclasses import asdict, dataclass
from typing import Mapping

from lib.categories import CategoryScheme
from lib.config import Step3Config
from lib.errors import GateFailure
from lib.fitting.result import FitRow
from lib.medians import CategoryMedian

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CategoryFactor:
    """One category's factor, its error and where it came from (a row of step 3's table)."""

    cat_name: str
    fit_val: float
    fit_err: float
    n_events: int
    median_val_NonCal: float
    median_err_NonCal: float
    calibration_factor: float
    calibration_factor_err: float
    fit_quality: str
    source: str  # "fit" or the fallback that produced the factor

    def row(self) -> dict[str, object]:
        return asdict(self)


def factor_with_error(fit_val: float, fit_err: float, median: float, median_err: float) -> tuple[float, float]:
    """Ratio and its uncorrelated error propagation.

    >>> tuple(round(x, 4) for x in factor_with_error(1.2, 0.012, 1.0, 0.01))
    (1.2, 0.017)
    """
    factor = fit_val / median
    rel = math.hypot(fit_err / fit_val, median_err / median)
    return factor, abs(factor) * rel


def _neighbours(scheme: CategoryScheme, index: int) -> list[int]:
    """Categories one bin away in exactly one of (pT, eta1, eta2)."""
    i_pt, i1, i2 = scheme.bin_indices(index)
    n_eta = scheme.n_eta
    out = []
    for axis, (value, size) in enumerate(((i_pt, scheme.n_pt), (i1, n_eta), (i2, n_eta))):
        for step in (-1, 1):
            moved = [i_pt, i1, i2]
            moved[axis] = value + step
            if 0 <= moved[axis] < size:
                out.append(n_eta * n_eta * moved[0] + n_eta * moved[1] + moved[2])
    return out


def compute_factors(
    scheme: CategoryScheme, fits: Mapping[str, FitRow], medians: Mapping[str, CategoryMedian], cfg: Step3Config, force: bool = False
) -> list[CategoryFactor]:  # fmt: skip
    """Factors for every category from its fit and median, with the configured fallback for failed ones.

    ``force``: accept factors outside the plausible band instead of refusing them.

    Raises:
        GateFailure: a category failed and the fallback is ``abort``, no category at all has a good
            fit, or a factor lies outside the plausible band without ``force``.
    """
    good: dict[int, CategoryFactor] = {}
    failed: list[int] = []
    for index, name in enumerate(scheme.names):
        row = _fitted_factor(name, fits.get(name), medians.get(name), cfg.plausible_factor_band, force)
        if row is None:
            failed.append(index)
        else:
            good[index] = row
    failed += _drop_neighbour_outliers(scheme, good, cfg.neighbour_outlier_ratio)
    failed.sort()
    if failed and cfg.failed_fallback == "abort":
        names = ", ".join(scheme.names[i] for i in failed)
        raise GateFailure(f"no good fit for {names}; fix with --fixCat or set step3.failed_fallback")
    rows = dict(good)
    scatter = neighbour_scatter(scheme, good)
    for index in failed:
        rows[index] = _fallback_row(scheme, index, good, scatter, medians, cfg)
    return [rows[i] for i in range(scheme.n_categories)]


def _fitted_factor(name: str, fit: FitRow | None, med: CategoryMedian | None, band: tuple[float, float], force: bool) -> CategoryFactor | None:
    """The category's factor from its own fit (None without a good fit or events); outside ``band`` a GateFailure unless ``force``."""
    if fit is None or med is None or fit.quality != "ok" or not med.n_events:
        return None
    factor, err = factor_with_error(fit.fit_val, fit.fit_err, med.median_val_NonCal, med.median_err_NonCal)
    lo, hi = band
    if not (lo <= factor <= hi) and not force:
        raise GateFailure(
            f"category {name}: factor {factor:.4f} outside the plausible band [{lo}, {hi}]; "
            "check its fit plot, fix it with --fixCat, or pass --force"
        )
    return CategoryFactor(name, fit.fit_val, fit.fit_err, med.n_events, med.median_val_NonCal, med.median_err_NonCal, factor, err, "ok", "fit")


def neighbour_median(scheme: CategoryScheme, index: int, factors: Mapping[int, float]) -> float:
    """Median of the ``factors`` given for the categories one bin away from ``index`` along one axis; NaN when none is."""
    values = [factors[j] for j in _neighbours(scheme, index) if j in factors]
    return statistics.median(values) if values else math.nan


def far_from(value: float, reference: float, max_ratio: float) -> bool:
    """``value`` more than ``max_ratio`` times above or below ``reference`` (False when either is not a positive number)."""
    if not (math.isfinite(value) and math.isfinite(reference) and value > 0 and reference > 0):
        return False
    return abs(math.log(value / reference)) > math.log(max_ratio)


def _drop_neighbour_outliers(scheme: CategoryScheme, good: dict[int, CategoryFactor], max_ratio: float) -> list[int]:
    """Remove from ``good`` (and return) the fits whose factor is ``far_from`` the median of their good neighbours'.

    The project's one outlier rule (the auditor flags such a factor too): a fit can pass every gate and
    still land in a wrong minimum, as one of the original's did. Each is judged before any removal.
    """
    factors = {i: r.calibration_factor for i, r in good.items()}
    references = {i: neighbour_median(scheme, i, factors) for i in factors}
    outliers = {i: reference for i, reference in references.items() if far_from(factors[i], reference, max_ratio)}
    for index, reference in outliers.items():
        row = good.pop(index)
        log.warning(
            "category %s: factor %.4f is x%.2f the median of its neighbours (%.4f); treated as a failed fit",
            row.cat_name, row.calibration_factor, row.calibration_factor / reference, reference,
        )  # fmt: skip
    return list(outliers)


def _nearest_good(scheme: CategoryScheme, index: int, good: Mapping[int, CategoryFactor]) -> tuple[int, list[CategoryFactor]]:
    """The good categories closest to ``index`` (bins apart summed over pT, eta1, eta2), and their distance.

    Direct neighbours when any has a good fit; otherwise the next shell, so a sparse sample (a whole
    pT row failing) still gets the closest measured resolution, not an abort.
    """
    if not good:
        return 0, []
    here = scheme.bin_indices(index)
    apart = {j: sum(abs(x - y) for x, y in zip(here, scheme.bin_indices(j))) for j in good}
    distance = min(apart.values())
    return distance, [good[j] for j in sorted(good) if apart[j] == distance]


def neighbour_scatter(scheme: CategoryScheme, good: Mapping[int, CategoryFactor]) -> float:
    """Typical factor difference between adjacent good categories, RMS(f_i - f_j)/sqrt(2); NaN without such a pair.

    It is the error a factor borrowed from a neighbour carries beyond statistics: how much the true
    resolution changes from one category to the next, measured on this table.
    """
    diffs = [
        good[i].calibration_factor - good[j].calibration_factor
        for i in good
        for j in _neighbours(scheme, i)
        if j in good and j > i
    ]
    return math.sqrt(sum(d * d for d in diffs) / (2.0 * len(diffs))) if diffs else float("nan")


def _fallback_row(
    scheme: CategoryScheme, index: int, good: Mapping[int, CategoryFactor], scatter: float, medians: Mapping[str, CategoryMedian],
    cfg: Step3Config,
) -> CategoryFactor:  # fmt: skip
    """The failed category's row: the fallback factor, with ``scatter`` (``neighbour_scatter``) as an error floor."""
    name = scheme.names[index]
    med = medians.get(name)
    if cfg.failed_fallback == "unity":
        factor, err, source = 1.0, float("nan"), "fallback:unity"
    else:
        distance, usable = _nearest_good(scheme, index, good)
        if not usable:
            raise GateFailure(f"category {name} failed and no category has a good fit to borrow a factor from")
        values = [r.calibration_factor for r in usable]
        factor = sum(values) / len(values)
        spread = max(values) - min(values)
        err = max(spread / 2.0, max(r.calibration_factor_err for r in usable), 0.0 if math.isnan(scatter) else scatter)
        shell = "" if distance == 1 else f"distance {distance}: "
        source = f"fallback:neighbour_average({shell}" + "+".join(r.cat_name for r in usable) + ")"
    # No sigma beside a borrowed factor: the failed fit's sigma (in fit_results.csv) did not produce it.
    nan = float("nan")
    n_events, median, median_err = (med.n_events, med.median_val_NonCal, med.median_err_NonCal) if med else (0, nan, nan)
    return CategoryFactor(name, nan, nan, n_events, median, median_err, factor, err, "failed", source)
