"""Step 1 of a year: fit every category (or the --fixCat one) and write the fit tables.

The fits themselves (jobs, cache, workers, tables) are ``lib.fit_step``; this step decides which
categories are fitted (too few events: none, step 3 borrows), warns when the input's pT cuts
disagree with the window acceptance, and merges a --fixCat refit into the existing results.
"""

from __future__ import annotations

import logging
from pathlib import Path

from lib.acceptance import threshold_mismatch
from lib.categories import CategoryScheme
from lib.config import Config
from lib.executor import TaskCrash
from lib.fit_step import FitCache, build_jobs, run_fits, write_fit_outputs
from lib.io.merge import Reduction
from lib.medians import CategoryMedian
from lib.options import RunOptions
from lib.run.reduction import Executors

__all__ = ["run_step1"]

log = logging.getLogger(__name__)


def run_step1(
    out_dir: Path, options: RunOptions, config: Config, scheme: CategoryScheme, reduction: Reduction,
    medians: list[CategoryMedian], execs: Executors, year: str,
) -> list[str]:  # fmt: skip
    """Fit the categories and write their tables (their figures go to ``execs.figures``); return the failed ones."""
    names = [options.fix_cat] if options.fix_cat else scheme.names
    minimum = config.fit.min_events
    counts = {n: medians[scheme.index_of(n)].n_events for n in names}
    too_few = {n: count for n, count in counts.items() if count < minimum}
    for name, count in too_few.items():
        log.warning("category %s has %d events (fit.min_events %d): not fitted, step 3 applies its fallback", name, count, minimum)
    to_fit = [n for n in names if n not in too_few]
    mismatch = threshold_mismatch(reduction.histograms[0])
    if mismatch:
        log.warning("%s", mismatch)
    plot_dir = out_dir / "fits" if options.plots else None
    jobs = build_jobs(
        config, scheme, reduction, medians, to_fit, options.binned, options.backend, plot_dir, f"{options.sample_label} {year}",
        log_dir=out_dir / "logs",
    )  # fmt: skip
    # --fixCat always refits its category, with the configuration given now (its cached fit is the one being fixed).
    results = run_fits(
        execs.fit, jobs, FitCache(out_dir / ".cache" / "fits"), refit=frozenset(names if options.fix_cat else ()), figures=execs.figures
    )
    for name, count in too_few.items():
        results[name] = TaskCrash(name, f"{count} events, fewer than fit.min_events = {minimum}: not fitted")
    n_events = {m.cat_name: m.n_events for m in medians}
    rows = write_fit_outputs(out_dir, scheme, results, n_events, merge=bool(options.fix_cat))
    return [str(r["cat_name"]) for r in rows if r["quality"] != "ok"]
