"""Step 3: factors from the fits and the medians, the factor tables and the correction JSON.

It takes the fits and medians of this run, or reads them back through ``OutputDir`` when run
alone (after a --fixCat refit), as the original's step 3 did.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from lib import __version__
from lib.categories import CategoryScheme
from lib.config import WIDTH_DEFINITIONS, Config
from lib.correction.writer import build_correction, write_correction
from lib.factors import compute_factors
from lib.outputs import OutputDir
from lib.request import Request
from lib.results import Factors, Fits, Medians
from lib.run.outputs import root_version

__all__ = ["derive_factors"]


def derive_factors(fits: Fits, medians: Medians, config: Config, scheme: CategoryScheme, request: Request, out: OutputDir) -> Factors:
    """Compute the factors, write their tables and the correction JSON (and install it when asked)."""
    factors = compute_factors(scheme, fits.rows, medians.by_name(), config.step3, force=request.handling.force)
    label = f"{out.sample} {out.year}"
    out.write_factors(factors, f"EBE mass-resolution calibration factors, {label}")
    fallbacks = [f"{f.cat_name}={f.calibration_factor:.4f} ({f.source})" for f in factors if f.source != "fit"]
    description = _description(request, config, label, fallbacks, out.read_provenance().get("inputs_fingerprint", "unknown"))
    cset = build_correction({f.cat_name: f.calibration_factor for f in factors}, scheme, config.step3.correction_name, description)
    path = out.correction_json(request.selection.nanoaod_v)
    write_correction(cset, path)
    installed = None
    if request.handling.install:
        from lib.correction.install import install_correction

        installed = install_correction(path, out.year, request.selection.is_mc, Path.cwd(), config, force=request.handling.force)
    return Factors(tuple(factors), path, installed)


def _description(request: Request, config: Config, label: str, fallbacks: list[str], inputs: object) -> str:
    fallback_text = ("; fallback factors: " + ", ".join(fallbacks)) if fallbacks else "; every category from its own fit"
    return (
        "Event-by-event dimuon mass-resolution calibration: multiply sigma_pred = m/2*sqrt((dpT1/pT1)^2+(dpT2/pT2)^2) "
        f"by correction_factor = sigma_fit({WIDTH_DEFINITIONS[config.fit.width]}) / median(sigma_pred) of the category "
        f"(leading pT, |eta1|, |eta2|; bins [lo,hi), clamped). {label}, "
        f"{'binned' if request.selection.binned else 'unbinned'} fits{fallback_text}. Provenance: ebe-calib {__version__}, "
        f"{root_version()}, config {config.fingerprint()}, inputs {inputs}, "
        f"created {datetime.now(timezone.utc):%Y-%m-%dT%H:%M:%SZ}."
    )
