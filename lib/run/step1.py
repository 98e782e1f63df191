"""Step 1 of a year: fit every category (or the --fixCat one) and return the fits.

The fit machinery (jobs, cache, workers) is ``lib.fit_step``; this step decides which categories
are fitted (too few events: none, step 3 borrows) and warns when the input's pT cuts disagree
with the window acceptance.
"""

from __future__ import annotations

import logging

from lib.acceptance import threshold_mismatch
from lib.categories import CategoryScheme
from lib.config import Config
from lib.fit_step import FitCache, FitGroup, FitPlaces, build_jobs, fit_outputs, run_fits
from lib.fitting.result import FitResult
from lib.io.merge import Reduction
from lib.outputs import OutputDir
from lib.request import Request
from lib.results import Fits, Medians
from lib.run.reduction import Executors

__all__ = ["fit_categories"]

log = logging.getLogger(__name__)


def fit_categories(
    reduction: Reduction, medians: Medians, config: Config, scheme: CategoryScheme, request: Request, execs: Executors, out: OutputDir
) -> Fits:  # fmt: skip
    """Fit the requested categories (their figures go to ``execs.figures``, ROOT's output to ``out``'s logs)."""
    fix_cat = request.selection.fix_cat
    names = [fix_cat] if fix_cat else scheme.names
    minimum = config.fit.min_events
    counts = {m.cat_name: m.n_events for m in medians.rows}
    too_few = {n: counts[n] for n in names if counts[n] < minimum}
    for name, count in too_few.items():
        log.warning("category %s has %d events (fit.min_events %d): not fitted, step 3 applies its fallback", name, count, minimum)
    mismatch = threshold_mismatch(reduction.histograms[0])
    if mismatch:
        log.warning("%s", mismatch)
    to_fit = [n for n in names if n not in too_few]
    selection = request.selection
    places = FitPlaces(out, "", f"{selection.sample} {out.year}", request.figures.enabled)
    group = FitGroup(config, places, selection.binned, request.execution.backend)
    jobs = build_jobs(group, scheme, reduction, medians.rows, to_fit)
    # --fixCat always refits its category, with the configuration given now (its cached fit is the one being fixed).
    refit = frozenset(names if fix_cat else ())
    results: dict[str, FitResult | str] = dict(run_fits(execs.fit, jobs, FitCache(out.cache("fits")), refit=refit, figures=execs.figures))
    for name, count in too_few.items():
        results[name] = f"{count} events, fewer than fit.min_events = {minimum}: not fitted"
    return fit_outputs(results, counts, scheme.names)
