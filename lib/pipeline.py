"""Steps 1-3 for each year, or the closure: the route through the run's steps, which never import it.

Read once (``lib.run.reduction``), then step 2 (``lib.run.step2``), step 1 (``lib.run.step1``)
and step 3 (``lib.run.step3``), or the closure (``lib.run.closure``); every figure is queued as
its numbers exist and drawn beside the next steps at low priority (``lib.figures``). Steps can be
re-run separately: step 3 reads ``fit_results.csv`` and ``median_for_cats.csv`` back from the
output directory, exactly as the original's steps did.
"""

from __future__ import annotations

import time

from lib.categories import CategoryScheme
from lib.config import Config
from lib.factors import FACTOR_CSV
from lib.histograms import category_spec
from lib.medians import compute_medians
from lib.options import RunOptions
from lib.run.closure import run_closure
from lib.run.outputs import PROVENANCE_JSON, backup, prepare_output_dir, remove_outputs, write_provenance
from lib.run.reduction import executors, load_reduction, reading_line
from lib.run.step1 import run_step1
from lib.run.step2 import MEDIAN_CSV, write_step2
from lib.run.step3 import run_step3
from lib.run.summary import YearSummary, format_summary

__all__ = ["run", "YearSummary", "format_summary", "MEDIAN_CSV", "FACTOR_CSV", "PROVENANCE_JSON"]


def run(options: RunOptions, config: Config) -> list[YearSummary]:
    """Run the requested steps for every year and return a summary per year."""
    scheme = CategoryScheme.from_config(config.categories)
    if options.fix_cat and not options.closure_test:
        scheme.index_of(options.fix_cat)
    steps = {"step1", "step2", "step3"} if options.steps == "all" else {options.steps}
    replace = {year: prepare_output_dir(options.output_dir(year), options, config, steps) for year in options.years}
    summaries = []
    start = time.monotonic()
    with executors(options) as execs:
        workers_seconds = time.monotonic() - start
        for year in options.years:
            out_dir = options.output_dir(year)
            if options.backup:
                backup(out_dir)
            if replace[year]:
                remove_outputs(out_dir)
            summary = YearSummary(year, out_dir)
            if not summaries:
                summary.timings["workers"] = workers_seconds  # started once, for every year
            if options.closure_test:
                start = time.monotonic()
                summary.extra["closure"] = run_closure(options, config, scheme, year, execs, out_dir)
                summary.timings["closure"] = time.monotonic() - start
                summaries.append(summary)
                continue
            if steps & {"step1", "step2"}:
                start = time.monotonic()
                # Unbinned fits need each event's mass; binned fits and medians only the histograms.
                events = "step1" in steps and not options.binned
                specs = (category_spec(config, scheme, fits="step1" in steps),)
                reduction, source = load_reduction(options, config, scheme, year, execs, out_dir, specs, events)
                summary.extra["read"] = reading_line(reduction)
                write_provenance(out_dir, options, config, source)
                medians = compute_medians(reduction.histograms[0], scheme, config.step2)
                summary.timings["read+medians"] = time.monotonic() - start
                if "step2" in steps:
                    write_step2(out_dir, medians, reduction.histograms[0], config, options, year, execs.figures)
                if "step1" in steps:
                    start = time.monotonic()
                    summary.failed_fits = run_step1(out_dir, options, config, scheme, reduction, medians, execs, year)
                    summary.timings["fits"] = time.monotonic() - start
            if "step3" in steps:
                start = time.monotonic()
                run_step3(out_dir, options, config, scheme, year, summary)
                summary.timings["step3"] = time.monotonic() - start
            if options.plots and steps & {"step1", "step2"}:
                summary.timings["figures"] = execs.figures.wait()
            summaries.append(summary)
    return summaries
