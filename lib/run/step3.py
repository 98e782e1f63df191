"""Step 3: factors from the step-1 and step-2 tables on disk, the factor tables and the correction JSON.

It reads what steps 1 and 2 wrote (typed, ``lib.rows``), so it runs alone after a --fixCat
refit exactly as the original's step 3 did.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from lib import __version__
from lib.categories import CategoryScheme
from lib.config import WIDTH_DEFINITIONS, Config
from lib.correction.writer import build_correction, correction_filename, write_correction
from lib.factors import FACTOR_CSV, compute_factors
from lib.fit_step import FIT_CSV
from lib.fitting.result import FitRow
from lib.io.tables import read_rows, write_csv, write_latex_table
from lib.medians import CategoryMedian
from lib.options import RunOptions
from lib.run.outputs import read_provenance, root_version
from lib.run.step2 import MEDIAN_CSV
from lib.run.summary import YearSummary

__all__ = ["FACTOR_COLUMNS", "run_step3"]


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


def run_step3(out_dir: Path, options: RunOptions, config: Config, scheme: CategoryScheme, year: str, summary: YearSummary) -> None:
    fits = {row.cat_name: row for row in read_rows(out_dir / FIT_CSV, FitRow)}
    medians = {row.cat_name: row for row in read_rows(out_dir / MEDIAN_CSV, CategoryMedian)}
    factors = compute_factors(scheme, fits, medians, config.step3, force=options.force)
    rows = [f.row() for f in factors]
    write_csv(out_dir / FACTOR_CSV, rows)
    caption = f"EBE mass-resolution calibration factors, {options.sample_label} {year}"
    # A borrowed factor has no sigma of its own: the tables say "fallback" where the sigma would be.
    table_rows = [r if f.source == "fit" else r | {"fit_val": "fallback", "fit_err": ""} for r, f in zip(rows, factors)]
    for suffix, decimals in (("", None), ("_4dec", 4), ("_3dec", 3)):
        write_latex_table(out_dir / f"calibration_factors{suffix}.tex", table_rows, FACTOR_COLUMNS, decimals, caption)
    fallbacks = [f"{f.cat_name}={f.calibration_factor:.4f} ({f.source})" for f in factors if f.source != "fit"]
    description = _description(options, config, year, fallbacks, read_provenance(out_dir).get("inputs_fingerprint", "unknown"))
    cset = build_correction({f.cat_name: f.calibration_factor for f in factors}, scheme, config.step3.correction_name, description)
    path = out_dir / correction_filename(year, options.is_mc, options.nanoaod_v)
    write_correction(cset, path)
    summary.factors = factors
    summary.correction_json = path
    if options.install:
        from lib.correction.install import install_correction

        summary.installed = install_correction(path, year, options.is_mc, Path.cwd(), config, force=options.force)


def _description(options: RunOptions, config: Config, year: str, fallbacks: list[str], inputs: object) -> str:
    fallback_text = ("; fallback factors: " + ", ".join(fallbacks)) if fallbacks else "; every category from its own fit"
    return (
        "Event-by-event dimuon mass-resolution calibration: multiply sigma_pred = m/2*sqrt((dpT1/pT1)^2+(dpT2/pT2)^2) "
        f"by correction_factor = sigma_fit({WIDTH_DEFINITIONS[config.fit.width]}) / median(sigma_pred) of the category "
        f"(leading pT, |eta1|, |eta2|; bins [lo,hi), clamped). {options.sample_label} {year}, "
        f"{'binned' if options.binned else 'unbinned'} fits{fallback_text}. Provenance: ebe-calib {__version__}, "
        f"{root_version()}, config {config.fingerprint()}, inputs {inputs}, "
        f"created {datetime.now(timezone.utc):%Y-%m-%dT%H:%M:%SZ}."
    )
