"""Steps 1-3 for each year: read once, reduce, fit, divide, write; each step's outputs on disk.

Steps can be re-run separately: step 3 reads ``fit_results.csv`` and ``median_for_cats.csv``
back from the output directory, exactly as the original's steps did.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from lib import __version__
from lib.acceptance import threshold_mismatch
from lib.categories import CategoryScheme
from lib.config import Config, override_keys, resolve_fit_spec
from lib.errors import CalibrationError
from lib.executor import TaskCrash
from lib.factors import FACTOR_CSV, CategoryFactor, compute_factors
from lib.figures import FitFigure, MedianFigure, draw_figures
from lib.fit_step import FIT_CSV, FitCache, build_jobs, fit_figures, run_fits, write_fit_outputs
from lib.io.atomic import write_text_atomic
from lib.histograms import CategoryHistograms, category_spec
from lib.io.merge import Reduction
from lib.io.tables import read_csv, write_csv, write_latex_table
from lib.medians import CategoryMedian, compute_medians, sigma_pred_histograms
from lib.fitting.result import FitRow
from lib.options import RunOptions
from lib.rows import parse_row
from lib.run.closure import run_closure
from lib.run.reduction import Executors, InputSource, executors, load_reduction, reading_line

__all__ = ["run", "YearSummary", "MEDIAN_CSV", "FACTOR_CSV", "format_summary"]

log = logging.getLogger(__name__)

MEDIAN_CSV = "median_for_cats.csv"


@dataclass
class YearSummary:
    """What a run produced for one year, for the closing summary printed by the CLI."""

    year: str
    output_dir: Path
    factors: list[CategoryFactor] = field(default_factory=list)
    correction_json: Path | None = None
    installed: Path | None = None
    failed_fits: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    extra: dict[str, object] = field(default_factory=dict)


def _check_writable(out_dir: Path) -> None:
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        probe = out_dir / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as err:
        raise CalibrationError(f"output directory {out_dir} is not writable ({err.strerror})") from err


_CONFIGURATION_KEYS = {
    "config_fingerprint": "config", "config_fingerprint_without_overrides": "config", "binned": "binned", "sample": "sample",
}  # fmt: skip


def fit_spec_hashes(config: Config, binned: bool, backend: str | None) -> dict[str, str]:
    """Per category, a hash of its resolved nominal fit specification (defaults and its overrides)."""
    names = CategoryScheme.from_config(config.categories).names
    return {name: resolve_fit_spec(config, name, binned, backend).fingerprint() for name in names}


def tuned_categories(config: Config) -> dict[str, list[str]]:
    """Per category, the ``fit.overrides`` keys (exact or wildcard) that apply to it; untuned ones left out."""
    matched = {name: override_keys(config, name) for name in CategoryScheme.from_config(config.categories).names}
    return {name: keys for name, keys in matched.items() if keys}


def _configuration_differences(previous: dict[str, object], options: RunOptions, config: Config) -> list[str]:
    """What differs between the run that filled a directory and this one, as ``name old vs new``.

    Inputs may differ: every cache is keyed by the input files, so new inputs cannot pick up old results.
    ``--fixCat CAT`` may change CAT's own fit (its ``fit.overrides``, the users' tuning loop): it
    compares the configuration without the overrides, and then every other category's fit
    specification with the one recorded in the provenance.
    """
    by_parts = bool(options.fix_cat) and "config_fingerprint_without_overrides" in previous
    key = "config_fingerprint_without_overrides" if by_parts else "config_fingerprint"
    now = {key: config.fingerprint(without_overrides=by_parts), "binned": options.binned, "sample": options.sample_label}
    differences = [
        f"{_CONFIGURATION_KEYS[name]} {previous[name]} vs {value}"
        for name, value in now.items()
        if name in previous and previous[name] != value
    ]
    if by_parts and not differences:
        recorded: dict[str, str] = previous.get("fit_specs", {})  # type: ignore[assignment]
        specs = fit_spec_hashes(config, options.binned, options.backend)
        changed = sorted(n for n, h in recorded.items() if n != options.fix_cat and specs.get(n) != h)
        if changed:
            differences.append(f"fit.overrides change the fits of {', '.join(changed)}, not only {options.fix_cat}")
    return differences


def _check_same_configuration(out_dir: Path, options: RunOptions, config: Config) -> bool:
    """Refuse to mix outputs of two configurations in one directory; True when --overwrite lets them be replaced.

    A step run with one configuration next to outputs of another would leave tables, JSON and
    closure verdict that disagree without saying so. --fixCat is refused even with --overwrite:
    merging one category into another configuration's fits is wrong whatever is replaced.

    Raises:
        CalibrationError: the directory holds another configuration's results.
    """
    differences = _configuration_differences(_read_provenance(out_dir), options, config)
    if not differences:
        return False
    if options.overwrite and not options.fix_cat:
        return True
    if options.fix_cat:
        remedy = "--fixCat cannot merge into it; re-run step1 for every category with --overwrite"
    else:
        remedy = "use another --extraString/--output_path or --overwrite"
    raise CalibrationError(
        f"output directory {out_dir} holds results of a different configuration ({', '.join(differences)}); {remedy}"
    )


def _prepare_output_dir(out_dir: Path, options: RunOptions, config: Config, steps: set[str]) -> bool:
    """Check the directory before any work starts; True when another configuration's outputs must go first."""
    _check_writable(out_dir)
    if options.closure_test or not steps & {"step1", "step2"}:
        return False
    return _check_same_configuration(out_dir, options, config)


def _top_level_outputs(out_dir: Path) -> list[Path]:
    """The directory's output files (subdirectories such as plots and hidden caches excluded)."""
    return [p for p in out_dir.iterdir() if p.is_file() and not p.name.startswith(".")]


def _remove_outputs(out_dir: Path) -> None:
    """Delete the top-level outputs of another configuration (after --backup), so none outlives the run.

    Caches stay: they are keyed by content, so the new configuration cannot pick up a stale entry.
    """
    files = _top_level_outputs(out_dir)
    for path in files:
        path.unlink()
    log.warning("--overwrite: removed %d outputs of a different configuration from %s", len(files), out_dir)


def _backup(out_dir: Path) -> None:
    """Copy the current top-level outputs into ``backup_<UTC timestamp>/`` before they are replaced."""
    files = _top_level_outputs(out_dir)
    if not files:
        return
    dest = out_dir / f"backup_{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}"
    dest.mkdir(exist_ok=True)
    for path in files:
        shutil.copy2(path, dest / path.name)
    log.info("backed up %d files to %s", len(files), dest)


def _write_step2(
    out_dir: Path, medians: list[CategoryMedian], hists: CategoryHistograms, config: Config, options: RunOptions, year: str
) -> list[MedianFigure]:
    """Write the medians table; return its figure (drawn with the others once the numbers are written)."""
    write_csv(out_dir / MEDIAN_CSV, [m.row() for m in medians])
    if not options.plots:
        return []
    edges, counts = sigma_pred_histograms(hists, config.step2)
    return [MedianFigure(edges, counts, tuple(medians), out_dir / "sigma_pred_per_category", f"{options.sample_label} {year}")]


def _run_step1(
    out_dir: Path, options: RunOptions, config: Config, scheme: CategoryScheme, reduction: Reduction,
    medians: list[CategoryMedian], execs: Executors, year: str,
) -> tuple[list[str], list[FitFigure]]:  # fmt: skip
    """Fit the categories and write their tables; return the failed ones and the figures to draw."""
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
    results = run_fits(execs.fit, jobs, FitCache(out_dir / ".cache" / "fits"), refit=frozenset(names if options.fix_cat else ()))
    for name, count in too_few.items():
        results[name] = TaskCrash(name, f"{count} events, fewer than fit.min_events = {minimum}: not fitted")
    n_events = {m.cat_name: m.n_events for m in medians}
    rows = write_fit_outputs(out_dir, scheme, results, n_events, merge=bool(options.fix_cat))
    return [str(r["cat_name"]) for r in rows if r["quality"] != "ok"], fit_figures(jobs, results)


FACTOR_COLUMNS = [
    ("cat_name", "Category"),
    ("fit_val", r"$\sigma_{fit}$ [GeV]"),
    ("fit_err", r"$\Delta\sigma_{fit}$"),
    ("n_events", "Events"),
    ("median_val_NonCal", r"median $\sigma_{pred}$ [GeV]"),
    ("median_err_NonCal", r"$\Delta$median"),
    ("calibration_factor", "Factor"),
    ("calibration_factor_err", r"$\Delta$Factor"),
    ("fit_quality", "Fit"),
]


def _run_step3(out_dir: Path, options: RunOptions, config: Config, scheme: CategoryScheme, year: str, summary: YearSummary) -> None:
    from lib.correction.writer import build_correction, correction_filename, write_correction

    fits = {row.cat_name: row for row in (parse_row(FitRow, r, str(out_dir / FIT_CSV)) for r in read_csv(out_dir / FIT_CSV))}
    medians = {m.cat_name: m for m in (parse_row(CategoryMedian, r, str(out_dir / MEDIAN_CSV)) for r in read_csv(out_dir / MEDIAN_CSV))}
    factors = compute_factors(scheme, fits, medians, config.step3, force=options.force)
    rows = [f.row() for f in factors]
    write_csv(out_dir / FACTOR_CSV, rows)
    caption = f"EBE mass-resolution calibration factors, {options.sample_label} {year}"
    # A borrowed factor has no sigma of its own: the tables say "fallback" where the sigma would be.
    table_rows = [r if f.source == "fit" else r | {"fit_val": "fallback", "fit_err": ""} for r, f in zip(rows, factors)]
    for suffix, decimals in (("", None), ("_4dec", 4), ("_3dec", 3)):
        write_latex_table(out_dir / f"calibration_factors{suffix}.tex", table_rows, FACTOR_COLUMNS, decimals, caption)
    fallbacks = [f"{f.cat_name}={f.calibration_factor:.4f} ({f.source})" for f in factors if f.source != "fit"]
    description = _description(options, config, year, fallbacks, _read_provenance(out_dir).get("inputs_fingerprint", "unknown"))
    cset = build_correction({f.cat_name: f.calibration_factor for f in factors}, scheme, config.step3.correction_name, description)
    path = out_dir / correction_filename(year, options.is_mc, options.nanoaod_v)
    write_correction(cset, path)
    summary.factors = factors
    summary.correction_json = path
    if options.install:
        from lib.correction.install import install_correction

        summary.installed = install_correction(path, year, options.is_mc, Path.cwd(), config, force=options.force)


PROVENANCE_JSON = "provenance.json"


def _write_provenance(out_dir: Path, options: RunOptions, config: Config, source: InputSource) -> None:
    """Record what produced this directory's outputs, so step 3 run alone can still state it."""
    payload = {
        "inputs_fingerprint": source.fingerprint,
        "skipped_files": list(source.skipped),
        "input_path": str(options.input_path or config.input.stage1_path),
        "config_fingerprint": config.fingerprint(),
        "config_fingerprint_without_overrides": config.fingerprint(without_overrides=True),
        # What each category was fitted with, so a --fixCat run can tell whether it changes only its
        # category, and a reader which categories were tuned by hand (fit.overrides).
        "fit_specs": fit_spec_hashes(config, options.binned, options.backend),
        "tuned_categories": tuned_categories(config),
        "tool_version": __version__,
        "binned": options.binned,
        "sample": options.sample_label,
    }
    write_text_atomic(out_dir / PROVENANCE_JSON, json.dumps(payload, indent=1, sort_keys=True))


def _read_provenance(out_dir: Path) -> dict[str, object]:
    path = out_dir / PROVENANCE_JSON
    return json.loads(path.read_text()) if path.exists() else {}


def _root_version() -> str:
    try:
        from importlib.metadata import version

        return f"ROOT wheel {version('ROOT')}"
    except Exception:  # noqa: BLE001 - provenance must never fail a run
        return "ROOT version unknown"


def _description(options: RunOptions, config: Config, year: str, fallbacks: list[str], inputs: object) -> str:
    fallback_text = ("; fallback factors: " + ", ".join(fallbacks)) if fallbacks else "; every category from its own fit"
    return (
        "Event-by-event dimuon mass-resolution calibration: multiply sigma_pred = m/2*sqrt((dpT1/pT1)^2+(dpT2/pT2)^2) "
        "by correction_factor = sigma_fit(BW x DCB core sigma) / median(sigma_pred) of the category "
        f"(leading pT, |eta1|, |eta2|; bins [lo,hi), clamped). {options.sample_label} {year}, "
        f"{'binned' if options.binned else 'unbinned'} fits{fallback_text}. Provenance: ebe-calib {__version__}, "
        f"{_root_version()}, config {config.fingerprint()}, inputs {inputs}, "
        f"created {datetime.now(timezone.utc):%Y-%m-%dT%H:%M:%SZ}."
    )


def run(options: RunOptions, config: Config) -> list[YearSummary]:
    """Run the requested steps for every year and return a summary per year."""
    scheme = CategoryScheme.from_config(config.categories)
    if options.fix_cat and not options.closure_test:
        scheme.index_of(options.fix_cat)
    steps = {"step1", "step2", "step3"} if options.steps == "all" else {options.steps}
    replace = {year: _prepare_output_dir(options.output_dir(year), options, config, steps) for year in options.years}
    summaries = []
    with executors(options) as execs:
        for year in options.years:
            out_dir = options.output_dir(year)
            if options.backup:
                _backup(out_dir)
            if replace[year]:
                _remove_outputs(out_dir)
            summary = YearSummary(year, out_dir)
            figures: list[FitFigure | MedianFigure] = []
            if options.closure_test:
                summary.extra["closure"] = run_closure(options, config, scheme, year, execs, out_dir)
                summaries.append(summary)
                continue
            if steps & {"step1", "step2"}:
                start = time.monotonic()
                # Unbinned fits need each event's mass; binned fits and medians only the histograms.
                events = "step1" in steps and not options.binned
                specs = (category_spec(config, scheme, fits="step1" in steps),)
                reduction, source = load_reduction(options, config, scheme, year, execs, out_dir, specs, events)
                summary.extra["read"] = reading_line(reduction)
                _write_provenance(out_dir, options, config, source)
                medians = compute_medians(reduction.histograms[0], scheme, config.step2)
                summary.timings["read+medians"] = time.monotonic() - start
                if "step2" in steps:
                    figures += _write_step2(out_dir, medians, reduction.histograms[0], config, options, year)
                if "step1" in steps:
                    start = time.monotonic()
                    summary.failed_fits, fit_plots = _run_step1(out_dir, options, config, scheme, reduction, medians, execs, year)
                    figures += fit_plots
                    summary.timings["fits"] = time.monotonic() - start
            if "step3" in steps:
                _run_step3(out_dir, options, config, scheme, year, summary)
            if figures:
                summary.timings["figures"] = draw_figures(execs.fit, figures)
            summaries.append(summary)
    return summaries


def format_summary(summary: YearSummary) -> str:
    """A human-readable table of the factors and where the outputs are."""
    lines = [f"== {summary.year}: outputs in {summary.output_dir}"]
    if "read" in summary.extra:
        lines.append(str(summary.extra["read"]))
    if summary.factors:
        lines.append(f"{'category':<12} {'sigma_fit':>10} {'median':>8} {'factor':>8} {'+-':>7}  source")
        for f in summary.factors:
            lines.append(
                f"{f.cat_name:<12} {f.fit_val:>10.4f} {f.median_val_NonCal:>8.4f} {f.calibration_factor:>8.4f} "
                f"{f.calibration_factor_err if math.isfinite(f.calibration_factor_err) else float('nan'):>7.4f}  {f.source}"
            )
    if summary.failed_fits:
        lines.append(f"failed fits: {', '.join(summary.failed_fits)}")
    if summary.correction_json:
        lines.append(f"correction JSON: {summary.correction_json}")
    if summary.installed:
        lines.append(f"installed as: {summary.installed}")
    if "closure" in summary.extra:
        lines.append(str(summary.extra["closure"]["text"]))  # type: ignore[index]
    if summary.timings:
        lines.append("timings: " + ", ".join(f"{k} {v:.1f} s" for k, v in summary.timings.items()))
    return "\n".join(lines)
