"""Step 2: per-category median of the predicted resolution, its uncertainty, counts and histograms."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from lib.categories import CategoryScheme
from lib.config import Step2Config
from lib.io.reader import Skim
from lib.resolution import median_error_bootstrap, median_error_order_statistic, weighted_median

__all__ = ["CategoryMedian", "split_by_category", "compute_medians", "sigma_pred_histograms"]


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


def split_by_category(skim: Skim, n_categories: int) -> list[np.ndarray]:
    """Event indices of each category, in file order within a category (one stable sort)."""
    order = np.argsort(skim.category, kind="stable")
    bounds = np.searchsorted(skim.category[order], np.arange(n_categories + 1))
    return [order[bounds[i] : bounds[i + 1]] for i in range(n_categories)]


def compute_medians(
    skim: Skim, scheme: CategoryScheme, cfg: Step2Config, groups: list[np.ndarray] | None = None
) -> list[CategoryMedian]:
    """Exact (weighted where weights exist) median of sigma_pred per category with its error.

    The bootstrap, when chosen, uses a generator seeded from the config and the category index,
    so each category's error is reproducible and independent of which categories are run.
    """
    groups = groups if groups is not None else split_by_category(skim, scheme.n_categories)
    out = []
    for index, name in enumerate(scheme.names):
        idx = groups[index]
        values = skim.sigma_pred[idx].astype(np.float64)
        weights = None if skim.weight is None else skim.weight[idx].astype(np.float64)
        if cfg.median_error == "bootstrap":
            rng = np.random.default_rng([cfg.seed, index])
            err = median_error_bootstrap(values, rng, cfg.bootstrap_resamples, weights)
        else:
            err = median_error_order_statistic(values, weights)
        out.append(
            CategoryMedian(
                cat_name=name,
                n_events=int(len(idx)),
                sum_weights=float(np.sum(weights)) if weights is not None else float(len(idx)),
                median_val_NonCal=weighted_median(values, weights),
                median_err_NonCal=err,
            )
        )
    return out


def sigma_pred_histograms(
    skim: Skim, groups: list[np.ndarray], cfg: Step2Config
) -> tuple[np.ndarray, np.ndarray]:
    """Per-category histograms of sigma_pred (weighted for MC) for the step-2 plot: (edges, counts[n_cat, bins])."""
    edges = np.linspace(cfg.hist_range_gev[0], cfg.hist_range_gev[1], cfg.hist_bins + 1)
    counts = np.zeros((len(groups), cfg.hist_bins))
    for i, idx in enumerate(groups):
        w = None if skim.weight is None else skim.weight[idx]
        counts[i], _ = np.histogram(skim.sigma_pred[idx], bins=edges, weights=w)
    return edges, counts
