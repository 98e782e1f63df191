"""Step 2: per-category median of the predicted resolution, its uncertainty, counts and histograms.

Everything comes from the per-category sigma_pred histograms filled while reading
(``lib.histograms``), so step 2 needs no per-event data and its memory does not grow with events.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

import numpy as np

from lib.categories import CategoryScheme
from lib.config import Step2Config
from lib.errors import InputError
from lib.histograms import CategoryHistograms
from lib.resolution import order_statistic_error

log = logging.getLogger(__name__)

# The bootstrap resamples only the bins within this many standard errors of the median (the rest
# in two totals): the resampled median never leaves them, and 300 resamples stay cheap.
BOOTSTRAP_WINDOW_ERRORS = 10.0


@dataclass(frozen=True)
class CategoryMedian:
    """Step-2 numbers of one category (CSV columns of ``median_for_cats.csv``)."""

    cat_name: str
    n_events: int
    sum_weights: float
    median_val_NonCal: float
    median_err_NonCal: float

    def row(self) -> dict[str, object]:
        return asdict(self)


def median_error_bootstrap_histogram(
    counts: np.ndarray, contents: np.ndarray, edges: np.ndarray, n_eff: float, rng: np.random.Generator, n_resamples: int
) -> float:
    """Poisson-bootstrap standard deviation of the median of a histogram with under- and overflow.

    Each resample draws every bin's count from a Poisson and scales it by the bin's mean weight;
    bins further than ``BOOTSTRAP_WINDOW_ERRORS`` standard errors from the median are resampled as
    two totals. The mean weight loses the weights' spread, so the spread of medians is scaled by
    ``sqrt(N / N_eff)`` (Kish).
    """
    if n_eff < 2:
        return float("nan")
    reach = min(0.499, BOOTSTRAP_WINDOW_ERRORS * 0.5 / np.sqrt(n_eff))
    lo_value, hi_value = histogram_quantiles(contents, counts, edges, np.array([0.5 - reach, 0.5 + reach]))
    first = int(np.searchsorted(edges, lo_value, side="right")) if np.isfinite(lo_value) else 1
    last = int(np.searchsorted(edges, hi_value, side="left")) if np.isfinite(hi_value) else len(edges) - 1
    first, last = max(first - 1, 1), min(last + 1, len(edges) - 1)
    grouped_counts = np.concatenate([[counts[:first].sum()], counts[first : last + 1], [counts[last + 1 :].sum()]])
    grouped = np.concatenate([[contents[:first].sum()], contents[first : last + 1], [contents[last + 1 :].sum()]])
    mean_weight = np.divide(grouped, grouped_counts, out=np.zeros_like(grouped), where=grouped_counts > 0)
    window_edges = edges[first - 1 : last + 1]
    medians = np.empty(n_resamples)
    for i in range(n_resamples):
        resampled_counts = rng.poisson(grouped_counts)
        medians[i] = histogram_quantiles(resampled_counts * mean_weight, resampled_counts, window_edges, np.array([0.5]))[0]
    n_events = float(counts.sum())
    return float(np.nanstd(medians, ddof=1) * np.sqrt(n_events / n_eff))


def compute_medians(hists: CategoryHistograms, scheme: CategoryScheme, cfg: Step2Config) -> list[CategoryMedian]:
    """Median (weighted where weights exist) of sigma_pred per category with its error (``histogram_median``).

    Raises:
        InputError: a category's median lies outside ``step2.median_grid_gev``.
    """
    out = []
    for index, name in enumerate(scheme.names):
        median, err = histogram_median(hists, index, cfg, f"category {name}")
        out.append(CategoryMedian(name, hists.n_events(index), hists.sum_weights(index), median, err))
    return out


def histogram_median(hists: CategoryHistograms, index: int, cfg: Step2Config, name: str) -> tuple[float, float]:
    """Median of group ``index``'s sigma_pred histogram and its error (``cfg.median_error``); NaN when empty.

    The bootstrap's generator is seeded from the config and ``index``: each error is reproducible
    and independent of which groups are run.

    Raises:
        InputError: the median lies outside ``step2.median_grid_gev`` (``name`` says whose).
    """
    edges = hists.grids.spred_edges
    contents, counts = hists.spred_contents(index), hists.spred_counts(index)
    n_eff = hists.effective_entries(index)
    median = float(histogram_quantiles(contents, counts, edges, np.array([0.5]))[0])
    if contents.sum() > 0 and not np.isfinite(median):
        lo, hi = hists.grids.spred_range_gev
        raise InputError(f"{name}: the median sigma_pred lies outside {lo:g}-{hi:g} GeV (step2.median_grid_gev)")
    if cfg.median_error == "bootstrap":
        rng = np.random.default_rng([cfg.seed, index])
        err = median_error_bootstrap_histogram(counts, contents, edges, n_eff, rng, cfg.bootstrap_resamples)
    else:
        err = order_statistic_error(lambda q: histogram_quantiles(contents, counts, edges, q), n_eff)
    if np.isfinite(median) and n_eff >= 2 and not np.isfinite(err):
        log.warning("%s: the error of the median is unknown, the quantiles around it lie outside step2.median_grid_gev", name)
    return median, err


def sigma_pred_histograms(hists: CategoryHistograms, cfg: Step2Config) -> tuple[np.ndarray, np.ndarray]:
    """Per-category histograms of sigma_pred for the step-2 plot: (edges, contents[n_cat, bins]).

    Each fine bin goes whole into the plot bin holding its centre (the fine bins are far narrower).
    """
    edges = np.linspace(cfg.hist_range_gev[0], cfg.hist_range_gev[1], cfg.hist_bins + 1)
    fine = hists.grids.spred_edges
    centres = np.sqrt(fine[:-1] * fine[1:])
    counts = np.zeros((hists.grids.n_categories, cfg.hist_bins))
    for i in range(hists.grids.n_categories):
        counts[i], _ = np.histogram(centres, bins=edges, weights=hists.spred_contents(i)[1:-1])
    return edges, counts


def histogram_quantiles(contents: np.ndarray, counts: np.ndarray, edges: np.ndarray, quantiles: np.ndarray) -> np.ndarray:
    """Quantiles of a histogram with under- and overflow (``len(contents) == len(edges) + 1``).

    The convention of ``lib.resolution.weighted_quantile`` (the CDF interpolated between the
    events' weight midpoints), with each bin's ``counts[k]`` events taken as evenly spread over it,
    each carrying ``contents[k] / counts[k]``: within one bin width of the events' own quantile.
    NaN when the quantile falls in the under- or overflow or the histogram is empty.
    """
    contents = np.asarray(contents, dtype=np.float64)
    quantiles = np.atleast_1d(np.asarray(quantiles, dtype=np.float64))
    total = contents.sum()
    if not total > 0:
        return np.full(quantiles.shape, np.nan)
    inner = np.flatnonzero(counts[1:-1] > 0) + 1
    before = np.cumsum(contents)[inner] - contents[inner]
    half_event = 0.5 * contents[inner] / counts[inner]
    width = edges[inner] - edges[inner - 1]
    # Two knots per filled bin: its first and its last event (one knot twice for a single event).
    knot_cdf = np.column_stack([before + half_event, before + contents[inner] - half_event]).ravel()
    knot_value = np.column_stack(
        [edges[inner - 1] + 0.5 / counts[inner] * width, edges[inner - 1] + (1 - 0.5 / counts[inner]) * width]
    ).ravel()
    targets = quantiles * total
    values = np.interp(targets, knot_cdf, knot_value) if inner.size else np.full(targets.shape, np.nan)
    outside = (targets < contents[0]) | (targets > total - contents[-1])
    return np.where(outside, np.nan, values)
