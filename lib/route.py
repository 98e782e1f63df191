"""The route of a run: read -> medians -> fits -> factors -> write, with the closure and the Higgs check as siblings.

Each stage is a function of its inputs and returns a frozen container (``lib.results``); only this
module chains them, and only ``lib.outputs.OutputDir`` knows the files they are written to and
read back from (step 3 alone, a ``--fixCat`` refit). In a notebook, ``read``, ``medians``, ``fits``
and ``factors`` run on their own without writing a file (``docs/api.md``).
"""

from __future__ import annotations

import time
from contextlib import ExitStack, contextmanager
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Iterator

from lib import __version__
from lib.categories import CategoryScheme
from lib.config import WIDTH_DEFINITIONS, Config
from lib.correction.writer import build_correction, write_correction
from lib.factors import CategoryFactor, compute_factors
from lib.figures import queue_median_figure, queue_validation_figures
from lib.fitting.backend import root_version
from lib.histogram_specs import category_spec
from lib.io.merge import Reduction
from lib.medians import compute_medians
from lib.outputs import OutputDir
from lib.peak_fits import CATEGORIES, FitGroup, fit_categories
from lib.request import Execution, Figures, Paths, Request, Selection
from lib.results import Factors, Fits, Medians, YearSummary
from lib.run.changes import factor_change_lines, refit_lines
from lib.run.checks import check_output_dir, check_steps_agree, make_room, preflight, provenance, stamp_step
from lib.run.reduction import Executors, Keep, executors, load_reduction, reading_line
from lib.run.validation import run_closure, run_higgs_validation


def run(request: Request, config: Config) -> list[YearSummary]:
    """Run the request for every year: the whole request is checked, and each output directory held, before any file is read."""
    scheme = CategoryScheme.from_config(config.categories)
    preflight(request, config, scheme)
    start = time.monotonic()
    summaries = []
    with ExitStack() as held:
        outs = {year: request.output_dir(year) for year in request.selection.years}
        for out in outs.values():
            held.enter_context(out.claim())
        replace_outputs = {year: check_output_dir(out, request, config) for year, out in outs.items()}
        with executors(request) as execs:
            workers_seconds = time.monotonic() - start
            for year, out in outs.items():
                make_room(out, request, replace_outputs[year])
                year_run = _closure_year if request.selection.closure_test else _calibrate_year
                summary = year_run(request, config, scheme, execs, out)
                if not summaries:
                    summary = replace(summary, timings={"workers": workers_seconds, **summary.timings})  # started once, for every year
                summaries.append(summary)
    return summaries


def _calibrate_year(request: Request, config: Config, scheme: CategoryScheme, execs: Executors, out: OutputDir) -> YearSummary:
    """Steps 1-3 of one year, as selected; each step's result is written as soon as it exists."""
    steps, timings, notes = request.selection.steps, {}, []
    read_line, fitted, step2 = "", None, None
    if steps & {"step1", "step2"}:
        start = time.monotonic()
        reduction, fingerprint = _read(request, config, scheme, execs, out)
        read_line = reading_line(reduction)
        step2 = medians(reduction, config)
        timings["read+medians"] = time.monotonic() - start
        if "step2" in steps:
            out.write_medians(step2)
            stamp_step(out, "step2", request, config, fingerprint)
            if request.figures.enabled:
                queue_median_figure(execs.figures, step2.rows, reduction.histograms[0], config.step2, out)
        if "step1" in steps:
            start = time.monotonic()
            group = FitGroup.of(CATEGORIES, config, request, out, execs.figures)
            fitted, notes = _fit(reduction, step2, scheme, group, request, execs)
            stamp_step(out, "step1", request, config, fingerprint)
            timings["fits"] = time.monotonic() - start
    derived = None
    if "step3" in steps:
        start = time.monotonic()
        derived, step3_notes = _derive(fitted, step2 if "step2" in steps else None, config, scheme, request, out)
        notes += step3_notes  # after a --fixCat refit's own lines
        timings["step3"] = time.monotonic() - start
    if request.figures.enabled and steps & {"step1", "step2"}:
        timings["figures"] = execs.figures.wait()
    failed = tuple(fitted.failed) if fitted else ()
    return YearSummary(out.year, out.path, read_line, derived, failed, notes=tuple(notes), timings=timings)


def _read(request: Request, config: Config, scheme: CategoryScheme, execs: Executors, out: OutputDir) -> tuple[Reduction, str]:
    """The year's files reduced for steps 1-2 (unbinned fits keep each event's mass; binned fits and medians need histograms),
    and the fingerprint of the files read."""
    steps = request.selection.steps
    events = "step1" in steps and not request.selection.binned
    specs = (category_spec(config, scheme, fits="step1" in steps),)
    reduction, fingerprint = load_reduction(request, config, scheme, execs, out, Keep(specs, events))
    out.write_provenance(provenance(request, config, fingerprint, reduction.skipped, out.read_provenance()))
    return reduction, fingerprint


def _fit(
    reduction: Reduction, step2: Medians, scheme: CategoryScheme, group: FitGroup, request: Request, execs: Executors
) -> tuple[Fits, list[str]]:  # fmt: skip
    """Step 1, written; a --fixCat refit is merged into the earlier fits and says what it changed and what is now stale."""
    fix_cat, out = request.selection.fix_cat, group.out
    fitted = fit_categories(reduction, step2, scheme, group, execs.fit, fix_cat)
    notes: list[str] = []
    if fix_cat:
        earlier = out.read_fits()
        notes = refit_lines(fitted, earlier, step2, out.read_factors(), request, out.year)
        fitted = fitted.merged_into(earlier, scheme.names)
    out.write_fits(fitted, scheme.names)
    return fitted, notes


def _derive(
    fitted: Fits | None, step2: Medians | None, config: Config, scheme: CategoryScheme, request: Request, out: OutputDir
) -> tuple[Factors, list[str]]:  # fmt: skip
    """Step 3 from this run's fits and medians or the directory's (from the same inputs), written; what it changed."""
    if fitted is None or step2 is None:
        check_steps_agree(out)
    previous, fits = out.read_factors(), fitted or out.read_fits()
    step2 = step2 or out.read_medians()
    derived = factors(fits, step2, config, force=request.handling.force)
    derived = _write_factors(derived, fits.width_definitions() or (config.fit.width,), scheme, config, request, out)
    return derived, factor_change_lines(derived, previous, request, out)


def _write_factors(
    derived: Factors, widths: tuple[str, ...], scheme: CategoryScheme, config: Config, request: Request, out: OutputDir
) -> Factors:  # fmt: skip
    """Step 3's tables and JSON written (installed when asked); ``widths``: sigma_fit's kind in the fits the factors come from."""
    out.write_factors(derived, f"EBE mass-resolution calibration factors, {out.sample} {out.year}")
    path = out.correction_json(request.selection.nanoaod_v)
    description = _description(derived.rows, widths, request, config, out)
    write_correction(build_correction(derived.values(), scheme, config.step3.correction_name, description), path)
    installed = None
    if request.handling.install:
        from lib.correction.install import install_correction

        installed = install_correction(path, out.year, request.selection.is_mc, Path.cwd(), config, force=request.handling.force)
    return replace(derived, correction_json=path, installed=installed)


def _description(rows: tuple[CategoryFactor, ...], widths: tuple[str, ...], request: Request, config: Config, out: OutputDir) -> str:
    """The correction's description: what the factor is, how it was derived, its fallbacks and its provenance."""
    fallbacks = [f"{f.cat_name}={f.calibration_factor:.4f} ({f.source})" for f in rows if f.source != "fit"]
    fallback_text = ("; fallback factors: " + ", ".join(fallbacks)) if fallbacks else "; every category from its own fit"
    inputs = out.read_provenance().get("inputs_fingerprint", "unknown")
    return (
        "Event-by-event dimuon mass-resolution calibration: multiply sigma_pred = m/2*sqrt((dpT1/pT1)^2+(dpT2/pT2)^2) "
        f"by correction_factor = sigma_fit({' and '.join(WIDTH_DEFINITIONS[w] for w in widths)}) / median(sigma_pred) of the category "
        f"(leading pT, |eta1|, |eta2|; bins [lo,hi), clamped). {out.sample} {out.year}, "
        f"{'binned' if request.selection.binned else 'unbinned'} fits{fallback_text}. Provenance: ebe-calib {__version__}, "
        f"ROOT {root_version()}, config {config.fingerprint()}, inputs {inputs}, "
        f"created {datetime.now(timezone.utc):%Y-%m-%dT%H:%M:%SZ}."
    )


def _closure_year(request: Request, config: Config, scheme: CategoryScheme, execs: Executors, out: OutputDir) -> YearSummary:
    """The closure of one year and, when asked, the Higgs check with the same factors; their verdicts and figures."""
    start = time.monotonic()
    closure = run_closure(request, config, scheme, execs, out)
    higgs = run_higgs_validation(request, config, scheme, execs, out, closure.factors) if request.selection.validate_higgs else None
    summary = YearSummary(out.year, out.path, closure=closure, higgs=higgs)
    out.write_verdict("closure", summary.closure_text)
    if request.figures.enabled:
        queue_validation_figures(execs.figures, closure, higgs, config, out)
        execs.figures.wait()
    return replace(summary, timings={"closure": time.monotonic() - start})


# ---- the stages on their own, for a notebook: no output directory is written -------------------------------------


@contextmanager
def _in_memory(input_path: str | Path | None, year: str, workers: int) -> Iterator[tuple[Request, Executors, OutputDir]]:
    """A request without figures, inline or on a local pool; its scratch output directory is removed afterwards."""
    with TemporaryDirectory(prefix="ebe-calib-") as scratch:
        request = Request(
            Selection(years=(year,), binned=True), Paths(input_path=Path(input_path) if input_path else None, output_path=Path(scratch)),
            Execution(workers=workers), Figures(formats=()),
        )  # fmt: skip
        with executors(request) as execs:
            yield request, execs, request.output_dir(year)


def read(config: Config, input_path: str | Path | None = None, year: str = "2018") -> Reduction:
    """The year's Stage-1 files reduced to per-category histograms (in this process)."""
    scheme = CategoryScheme.from_config(config.categories)
    with _in_memory(input_path, year, workers=0) as (request, execs, out):
        return _read(request, config, scheme, execs, out)[0]


def medians(reduction: Reduction, config: Config) -> Medians:
    """Step 2: the median predicted resolution of every category."""
    scheme = CategoryScheme.from_config(config.categories)
    return Medians(tuple(compute_medians(reduction.histograms[0], scheme, config.step2)))


def fits(reduction: Reduction, step2: Medians, config: Config, workers: int = 0) -> Fits:
    """Step 1: the binned Z-peak fit of every category (``workers`` 0: in this process)."""
    scheme = CategoryScheme.from_config(config.categories)
    with _in_memory(None, "2018", workers) as (request, execs, out):
        return fit_categories(reduction, step2, scheme, FitGroup.of(CATEGORIES, config, request, out, execs.figures), execs.fit)


def factors(step1: Fits, step2: Medians, config: Config, force: bool = False) -> Factors:
    """Step 3's numbers: factor, error and source of every category (``force``: accept factors outside the plausible band)."""
    scheme = CategoryScheme.from_config(config.categories)
    return Factors(tuple(compute_factors(scheme, step1.rows, step2.by_name(), config.step3, force=force)))
