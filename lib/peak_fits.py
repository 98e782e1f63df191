"""The Z and H peak fits of a run: one job per category or closure/Higgs bin, run on an executor, cached as each ends.

``fit_categories`` is step 1 (which categories are fitted, and the ``Fits`` they give); the
closure and the Higgs check build their jobs with ``bin_fit_jobs``, and every fit goes through
``run_fits``: the same cache, the same warning for a failed fit, the same backend cross-check.
Each fit runs in a worker (``fit_job`` is module-level and its input picklable); ROOT is
imported only there. A fit whose worker died on every try stops the run (``lib.executor``): a
lost worker is never a physics result. A fit's figure is queued as its result arrives
(``lib.figures``), off the path to the results.

With ``fit.fsr`` other than none and ``fit.fsr_parameters: shared``, each group of fits (the
step-1 categories, a closure pass, the Higgs bins) first fits all its events together, radiation
floating (``lib.fitting.shared_fsr``), and its fits take ``fsr_fraction`` and ``fsr_scale`` fixed
at that fit's values (``shared_scale``: ``fsr_scale`` alone); the pooled fit is cached, drawn and
logged like the others and written to ``OutputDir.write_shared_fsr``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np

from lib import __version__
from lib.acceptance import group_acceptance, threshold_mismatch
from lib.categories import CategoryScheme
from lib.closure import BinSample, bin_label
from lib.config import Config, FitSpec, higgs_fit_spec, resolve_fit_spec, retry_specs
from lib.errors import CalibrationError, ExecutionError
from lib.executor import TaskExecutor
from lib.figures import FigureQueue, FitFigure
from lib.fitting.fsr import no_radiation
from lib.fitting.quality import covariance_failed
from lib.fitting.result import FitResult, FitRow
from lib.fitting.shared_fsr import (
    SHARED_FSR_NAME, SHARED_PARAMETERS, events_in_range, pooled_acceptance, pooled_events, pooled_median, with_fixed_radiation,
)  # fmt: skip
from lib.fitting.task import AcceptanceTable, FitEvents, FitTask
from lib.histograms import CategoryHistograms
from lib.io.fit_cache import FitCache, fit_code_digest
from lib.io.merge import Reduction
from lib.medians import CategoryMedian
from lib.outputs import OutputDir
from lib.plots.cms import Header
from lib.request import Request
from lib.results import Fits, Medians

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FitJob:
    """A fit task plus where to draw its plot (None: no plot) and the radiation parameters it takes from its group's pooled fit."""

    task: FitTask
    plot_stem: Path | None
    title: str
    shared: tuple[str, ...] = ()


@dataclass(frozen=True)
class FitKind:
    """A kind of fits: how the log and the progress line name them, their title, how their specs are resolved.

    ``name`` is the kind ``OutputDir`` files them under (their logs, figures, cache and table).
    ``resolve(config, name, binned, backend)`` gives a fit's nominal spec; ``same_range_retries``
    drops the retry steps that change the fit range (the Higgs fits keep the signal region).
    """

    name: str  # one of ``lib.outputs.FIT_KINDS``
    what: str  # one fit, in a warning
    progress: str  # the live progress line's label
    title: str  # the figures' title; "{label}" is the sample and year
    resolve: Callable[[Config, str, bool, str | None], FitSpec] = resolve_fit_spec
    same_range_retries: bool = False


CATEGORIES = FitKind("categories", "category", "fits", "{label}")
CLOSURE = FitKind("closure", "closure bin", "closure fits", "{label} calibrated")
UNCALIBRATED = FitKind("uncalibrated", "closure bin", "closure fits", "{label} uncalibrated")
HIGGS = FitKind("higgs", "Higgs bin", "higgs fits", "H {label}", higgs_fit_spec, same_range_retries=True)


@dataclass(frozen=True)
class FitGroup:
    """The fits of one kind in one output directory: what they share.

    The retry ladder, the gates and ``fit.min_events`` come from ``config`` (the Higgs check
    passes its own gates); ``figures`` is the queue their figures are drawn on (None: none drawn).
    """

    kind: FitKind
    config: Config
    out: OutputDir
    binned: bool
    backend: str | None = None
    figures: FigureQueue | None = None

    @classmethod
    def of(cls, kind: FitKind, config: Config, request: Request, out: OutputDir, figures: FigureQueue) -> FitGroup:
        """The group as ``request`` asks for it: binned or not, its backend, figures on ``figures`` unless it draws none."""
        execution, selection = request.execution, request.selection
        return cls(kind, config, out, selection.binned, execution.backend, figures if request.figures.enabled else None)

    def spec_for(self, name: str) -> FitSpec:
        return self.kind.resolve(self.config, name, self.binned, self.backend)

    def job(self, nominal: FitSpec, events: FitEvents, median: float, acceptance: AcceptanceTable | None) -> FitJob:
        """The job of one fit: ``nominal`` then the retry ladder, the acceptance when the nominal line shape uses it."""
        retries = retry_specs(self.config, nominal, median if np.isfinite(median) else None)
        if self.kind.same_range_retries:
            retries = [r for r in retries if r.range_gev == nominal.range_gev]
        kind = self.kind.name
        task = FitTask(
            nominal.name, events, nominal, tuple(retries), float(median), self.config.fit.quality,
            acceptance=acceptance if nominal.uses_acceptance else None, log_path=self.out.fit_log(nominal.name, kind),
        )  # fmt: skip
        stem = self.out.fit_plot_stem(task.name, kind) if self.figures is not None else None
        return FitJob(task, stem, f"{self.kind.title.format(label=f'{self.out.sample} {self.out.year}')} {task.name}")


def fit_categories(
    reduction: Reduction, medians: Medians, scheme: CategoryScheme, group: FitGroup, executor: TaskExecutor, only: str | None = None
) -> Fits:  # fmt: skip
    """Step 1: fit every category, or ``only`` that one (--fixCat: refitted even when cached, its cached fit is the one being fixed).

    A category with fewer than ``fit.min_events`` is not fitted (step 3 applies its fallback); a
    warning says when the input's pT cuts disagree with the window acceptance.
    """
    names = [only] if only else scheme.names
    minimum = group.config.fit.min_events
    counts = {m.cat_name: m.n_events for m in medians.rows}
    too_few = {n: counts[n] for n in names if counts[n] < minimum}
    for name, count in too_few.items():
        log.warning("category %s has %d events (fit.min_events %d): not fitted, step 3 applies its fallback", name, count, minimum)
    mismatch = threshold_mismatch(reduction.histograms[0])
    if mismatch:
        log.warning("%s", mismatch)
    jobs = category_jobs(group, scheme, reduction, medians.rows, [n for n in names if n not in too_few])
    pooled = None
    if only and shares_radiation(group, jobs):  # the radiation shared by the categories is that of all of them, --fixCat or not
        pooled = category_jobs(group, scheme, reduction, medians.rows, [n for n in scheme.names if counts[n] >= minimum])
    results: dict[str, FitResult | str] = dict(run_fits(group, jobs, executor, refit=frozenset([only] if only else ()), pooled=pooled))
    for name, count in too_few.items():
        results[name] = f"{count} events, fewer than fit.min_events = {minimum}: not fitted"
    return _fit_outputs(results, counts, scheme.names)


def fit_job(job: FitJob) -> FitResult:
    """Worker entry point: fit one category (its figure is drawn elsewhere, ``run_fits`` queues it)."""
    from lib.fitting.runner import fit_category

    return fit_category(job.task)


def _queue_figure(group: FitGroup, job: FitJob, result: object) -> None:
    """Hand the job's figure to the group's queue when it asked for one and has a fit result (a crashed worker has nothing to
    draw); its header has the output directory's year."""
    if group.figures is not None and job.plot_stem is not None and isinstance(result, FitResult):
        header = Header(job.title, group.out.year)
        group.figures.submit(FitFigure(result, job.plot_stem, header, _has_acceptance(job, result), job.shared))


def _has_acceptance(job: FitJob, result: FitResult) -> bool:
    """Whether the drawn attempt's model (the spec named by the result's label) multiplies the peak by A(m)."""
    specs = (job.task.nominal, *job.task.retries)
    spec = next((s for s in specs if s.label == result.chosen.label), job.task.nominal)
    return spec.uses_acceptance


def category_jobs(
    group: FitGroup, scheme: CategoryScheme, reduction: Reduction, medians: Sequence[CategoryMedian], names: Sequence[str]
) -> list[FitJob]:  # fmt: skip
    """One job per category in ``names``; the largest categories first so the pool stays busy.

    Binned fits get the category's mass histogram filled while reading; unbinned fits its events.
    """
    events = _category_events(reduction, scheme, group.binned)
    jobs = []
    for name in names:
        index = scheme.index_of(name)
        nominal = group.spec_for(name)
        acceptance = _category_acceptance(scheme, reduction.histograms[0], index) if nominal.uses_acceptance else None
        jobs.append(group.job(nominal, events(index), medians[index].median_val_NonCal, acceptance))
    return sorted(jobs, key=lambda j: -j.task.n_events)


def _category_events(reduction: Reduction, scheme: CategoryScheme, binned: bool) -> Callable[[int], FitEvents]:
    """The events of a category by index: its mass histogram (binned) or its events from the skim.

    Raises:
        CalibrationError: unbinned fits asked of a reduction that kept no events.
    """
    if binned:
        hists = reduction.histograms[0]
        return lambda index: FitEvents(histogram=hists.category_mass(index))
    skim = reduction.skim
    if skim is None:
        raise CalibrationError("unbinned fits need the events, but the reduction kept only histograms")
    groups = skim.by_category(scheme.n_categories)

    def events(index: int) -> FitEvents:
        rows = groups[index]
        return FitEvents(np.ascontiguousarray(skim.mass[rows]), None if skim.weight is None else np.ascontiguousarray(skim.weight[rows]))

    return events


def _category_acceptance(scheme: CategoryScheme, hists: CategoryHistograms, index: int) -> AcceptanceTable:
    """The category's ``A(m)`` from its |eta|-region pair."""
    n_pairs = scheme.n_eta**2
    i_pt, _, _ = scheme.bin_indices(index)
    pair = index % n_pairs
    values, span = group_acceptance(hists, pair, range(pair, scheme.n_categories, n_pairs), i_pt)
    return AcceptanceTable(values, span)


def bin_fit_jobs(
    group: FitGroup, samples: Sequence[BinSample], edges: Sequence[float], prefix: str, only: int | None = None
) -> list[FitJob]:  # fmt: skip
    """One fit per closure or Higgs bin with at least ``fit.min_events`` (``only``: that bin alone).

    A bin with fewer is not fitted, as a category would not be: eight free parameters on a few
    dozen events give a number with no meaning and, when the fit fails, a warning about a bin
    that is not tested anyway (closure.min_events and higgs.min_events are larger).
    """
    jobs = []
    for i, sample in enumerate(samples):
        if (only is not None and i != only) or sample.n_events < group.config.fit.min_events:
            continue
        nominal = group.spec_for(bin_label(edges[i], edges[i + 1], prefix))
        events = FitEvents(sample.masses, sample.weights, sample.histogram)
        jobs.append(group.job(nominal, events, sample.median, sample.acceptance))
    return jobs


def job_key(job: FitJob) -> str:
    """Hash of everything that determines a fit's result: the events or histogram, weights, specs, acceptance, gates, code."""
    task = job.task
    digest = hashlib.sha256()
    events = task.events
    arrays = (events.masses, events.weights) if events.histogram is None else vars(events.histogram).values()
    for array in arrays:
        if array is not None:
            digest.update(np.ascontiguousarray(array).tobytes())
    meta = {
        "specs": [s.model_dump(mode="json") for s in (task.nominal, *task.retries)],
        "acceptance": None if task.acceptance is None else asdict(task.acceptance),
        "median": task.median_sigma_pred,
        "quality": task.quality.model_dump(mode="json"),
        "version": __version__,
        "fit_code": fit_code_digest(__name__),
    }
    digest.update(json.dumps(meta, sort_keys=True).encode())
    return digest.hexdigest()[:20]


def run_fits(
    group: FitGroup, jobs: Sequence[FitJob], executor: TaskExecutor, refit: frozenset[str] = frozenset(), pooled: Sequence[FitJob] | None = None
) -> dict[str, FitResult]:  # fmt: skip
    """Run the jobs (re-using the group's cached fits with the same key, except those named in ``refit``); results keyed by job name.

    Every Z or H fit of a run goes through here (step 1, the closure bins, the Higgs bins): the
    same cache, the same warning for a failed fit and the same cpu cross-check of a non-cpu
    backend. Each job's figure goes to the group's queue as soon as its result is there, so it is
    drawn while the other fits run. With shared radiation parameters the jobs first get them from
    the pooled fit of ``pooled`` (default: the jobs themselves; all of the group's fits when only
    some are refitted).
    """
    jobs = with_shared_radiation(group, jobs, executor, jobs if pooled is None else pooled)
    keys = {j.task.name: job_key(j) for j in jobs}
    done = _cached_fits(group, jobs, keys, refit)
    if done:
        # Routine (an interrupted run resumed, a closure re-run): said, but nothing for the user to act on.
        log.info("re-using %d finished fits from %s (same inputs and configuration)", len(done), group.out.cache(group.kind.name))
    done.update(_new_fits(group, [j for j in jobs if j.task.name not in done], keys, executor, group.kind.progress))
    results = {j.task.name: done[j.task.name] for j in jobs}
    for name, res in results.items():
        if not res.ok:
            log.warning("%s %s: fit failed after %d attempt(s): %s", group.kind.what, name, len(res.attempts), res.reason)
    cross_check_backend(executor, jobs, results)
    return results


def _cached_fits(group: FitGroup, jobs: Sequence[FitJob], keys: Mapping[str, str], refit: frozenset[str]) -> dict[str, FitResult]:
    """The jobs' finished fits in the group's cache under their ``keys`` (none for those in ``refit``), their figures queued."""
    cache = FitCache(group.out.cache(group.kind.name))
    done: dict[str, FitResult] = {}
    for job in jobs:
        cached = None if job.task.name in refit else cache.load(job.task.name, keys[job.task.name])
        if cached is not None:
            done[job.task.name] = cached
            _queue_figure(group, job, cached)
    return done


def _new_fits(
    group: FitGroup, todo: Sequence[FitJob], keys: Mapping[str, str], executor: TaskExecutor, progress: str
) -> dict[str, FitResult]:  # fmt: skip
    """Fit ``todo`` on ``executor``: each result stored in the group's cache under its key and its figure queued as it arrives."""
    cache = FitCache(group.out.cache(group.kind.name))

    def persist(index: int, result: object) -> None:
        if isinstance(result, FitResult):
            cache.store(todo[index].task.name, keys[todo[index].task.name], result)
        _queue_figure(group, todo[index], result)

    names = [j.task.name for j in todo]
    return dict(zip(names, executor.map(fit_job, list(todo), names, progress=progress, on_result=persist)))


def shares_radiation(group: FitGroup, jobs: Sequence[FitJob]) -> bool:
    """Whether the group's fits take radiation parameters from one pooled fit (``fit.fsr_parameters`` other than per_fit)."""
    return bool(jobs) and jobs[0].task.nominal.fsr != "none" and bool(SHARED_PARAMETERS[group.config.fit.fsr_parameters])


def shared_radiation_job(group: FitGroup, pooled: Sequence[FitJob]) -> FitJob:
    """The pooled fit of the group: all the events of ``pooled``, their mean acceptance, radiation floating."""
    nominal = group.spec_for(SHARED_FSR_NAME)
    tasks = [j.task for j in pooled]
    acceptance = None
    if nominal.uses_acceptance:
        with_table = [t for t in tasks if t.acceptance is not None]
        tables = [t.acceptance for t in with_table]
        shares = [events_in_range(t.events, t.nominal.range_gev) for t in with_table]
        acceptance = pooled_acceptance(tables, shares, nominal.params["bw_mass"].value, nominal.params["bw_width"].value)  # type: ignore[arg-type]
    median = pooled_median([t.median_sigma_pred for t in tasks], [t.n_events for t in tasks])
    return group.job(nominal, pooled_events([t.events for t in tasks]), median, acceptance)


def _found_no_radiation(result: FitResult, pooled_spec: FitSpec, tolerance: float) -> bool:
    """Whether the pooled fit converged with the radiating share it was to measure fixed at its lower limit (within
    ``tolerance`` of its range, as ``lib.fitting.fsr.fsr_undetermined`` fixes it): the group's events show no radiation."""
    if covariance_failed(result.chosen) or pooled_spec.params["fsr_fraction"].constant:
        return False
    fraction = next((p for p in result.chosen.params if p.name == "fsr_fraction"), None)
    if fraction is None or not fraction.constant or fraction.min is None or fraction.max is None:
        return False
    return no_radiation(fraction.value, fraction.min, fraction.max, tolerance)


def _shared_values(result: FitResult, pooled_spec: FitSpec, names: Sequence[str]) -> tuple[dict[str, float] | None, str]:
    """The pooled fit's values of the radiation parameters ``names``, or None and why they cannot be shared.

    Not shared: Minuit or Hesse failed (a model gate alone, chi2 on the pooled events, does not
    count), or a parameter the pooled fit was to measure came out fixed (at a limit, or not
    determined): its value was never measured.
    """
    if covariance_failed(result.chosen):
        return None, result.reason or "Minuit or Hesse failed"
    params = {p.name: p for p in result.chosen.params}
    missing = [name for name in names if name not in params or not np.isfinite(params[name].value)]
    if missing:
        return None, "it has no finite value of " + ", ".join(missing)
    unmeasured = [name for name in names if params[name].constant and not pooled_spec.params[name].constant]
    if unmeasured:
        return None, f"{', '.join(unmeasured)} came out fixed (the data did not determine it)"
    return {name: params[name].value for name in names}, ""


def with_shared_radiation(group: FitGroup, jobs: Sequence[FitJob], executor: TaskExecutor, pooled: Sequence[FitJob]) -> list[FitJob]:
    """``jobs`` with the shared radiation parameters fixed at the pooled fit's values, where the group shares any; the pooled fit written.

    The pooled fit is cached like the group's fits (its key holds all their events). Where it
    finds no radiation in all the group's events, the fits have no radiation component: the line
    shape of ``fit.fsr: none``, whose DCB takes its own position and two tails (a symmetric,
    centred DCB cannot follow residuals that a pT window sculpted, and radiation is not there to
    shape the low side). When its values cannot be shared, a warning says why and each fit floats
    its own radiation.
    """
    if not shares_radiation(group, jobs) or not pooled:
        return list(jobs)
    job = shared_radiation_job(group, pooled)
    keys = {job.task.name: job_key(job)}
    result = _cached_fits(group, [job], keys, frozenset()).get(job.task.name)
    if result is None:
        result = _new_fits(group, [job], keys, executor, f"{group.kind.progress} (shared FSR)")[job.task.name]
    if _found_no_radiation(result, job.task.nominal, group.config.fit.undetermined.limit_tolerance):
        record = {"shared": False, "radiation_found": False, "shared_parameters": [], "not_shared_because": "it found no radiation"}
        group.out.write_shared_fsr(group.kind.name, record | result.to_dict())
        log.info("the pooled radiation fit found no radiation: the %s have no radiation component", group.kind.progress)
        return [_without_radiation(j) for j in jobs]
    values, why_not = _shared_values(result, job.task.nominal, SHARED_PARAMETERS[group.config.fit.fsr_parameters])
    record = {
        "shared": values is not None, "radiation_found": True if values is not None else None,  # None: the pooled fit did not say
        "shared_parameters": list(values or ()), "not_shared_because": why_not or None,
    }  # fmt: skip
    group.out.write_shared_fsr(group.kind.name, record | result.to_dict())
    if values is None:
        log.warning("the pooled radiation fit of the %s cannot be shared: %s; each fit floats its own radiation", group.kind.progress, why_not)
        return list(jobs)
    shared = ", ".join(f"{name} {value:.4g}" for name, value in values.items())
    log.info("FSR shared by the %s: %s (pooled fit of %d events)", group.kind.progress, shared, job.task.n_events)
    return [_with_radiation(j, values) for j in jobs]


def _with_radiation(job: FitJob, values: dict[str, float]) -> FitJob:
    """``job`` with ``values`` fixed in its nominal spec and every retry step."""
    return dataclasses.replace(job, task=job.task.with_specs(lambda spec: with_fixed_radiation(spec, values)), shared=tuple(values))


def _without_radiation(job: FitJob) -> FitJob:
    """``job`` with the line shape of ``fit.fsr: none`` in its nominal spec and every retry step."""
    return dataclasses.replace(job, task=job.task.with_specs(lambda spec: spec.model_copy(update={"fsr": "none"})))


def cross_check_backend(
    executor: TaskExecutor, jobs: Sequence[FitJob], results: dict[str, FitResult], reference: str = "cpu"
) -> FitResult | None:
    """When the fits ran on a backend other than ``reference``, refit the first fitted job on it and log both.

    Backends have been wrong before (ROOT issue 21159: ``cpu`` vs ``legacy`` for an FFT
    convolution inside a RooAddPdf; 18039: CUDA fits in LCG 106/107), and the same data and model
    must give the same minimum whatever evaluates them: one job fitted both ways shows, in the log
    of every such run, whether this installation can be trusted. Returns the reference fit (None
    when there was nothing to compare).
    """
    from lib.fitting.runner import backend_agreement, reference_fit

    first = next((j for j in jobs if isinstance(results.get(j.task.name), FitResult)), None)
    if first is None or first.task.nominal.backend == reference:
        return None
    result = results[first.task.name]
    try:
        (ref,) = executor.map(partial(reference_fit, reference=reference), [first.task], [f"{first.task.name}-{reference}"])
    except ExecutionError as err:
        log.warning("%s: the %s cross-check of backend %s crashed: %s", first.task.name, reference, first.task.nominal.backend, err)
        return None
    agree, message = backend_agreement(result, ref)  # type: ignore[arg-type]
    log.log(logging.INFO if agree else logging.WARNING, "cross-check: %s", message)
    return ref


def _fit_outputs(results: Mapping[str, FitResult | str], n_events: Mapping[str, int], order: Sequence[str]) -> Fits:
    """The fits as step 1 returns them: a summary row and the full record per category, in ``order``.

    A category's result is its fit, or the reason it was not fitted (too few events).
    """
    rows: dict[str, FitRow] = {}
    records: dict[str, object] = {}
    for name in (n for n in order if n in results):
        res = results[name]
        if isinstance(res, str):
            rows[name] = FitRow.not_fitted(name, res, n_events.get(name, 0))
            records[name] = {"name": name, "ok": False, "reason": res}
        else:
            rows[name] = res.summary_row()
            records[name] = res.to_dict()
    return Fits(rows, records)
