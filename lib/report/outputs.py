"""Read what a run left in an output directory, as the report needs it: no fit, no ROOT, only files.

The report is rebuilt from the directory alone, so that a later ``--fixCat``, step 3 or closure
run shows its own results beside the earlier ones exactly as the files now hold them, and the
other sample's directory (Data beside MC) can be read the same way.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from lib.categories import CategoryScheme
from lib.closure import CLOSURE_CSV, UNCALIBRATED_CSV
from lib.fit_step import FIT_CSV, FIT_JSON
from lib.run.higgs import HIGGS_CSV
from lib.io.tables import read_csv
from lib.factors import FACTOR_CSV
from lib.run.outputs import PROVENANCE_JSON
from lib.run.step2 import MEDIAN_CSV

__all__ = [
    "CategoryRow", "SampleOutputs", "ValidationBin", "Validation", "read_sample", "read_validation", "sibling_dir",
    "CLOSURE_VERDICT", "HIGGS_VERDICT",
]  # fmt: skip

# Written by lib.run.closure and lib.run.higgs; lib.closure and lib.run.higgs name them.
CLOSURE_VERDICT = "closure_verdict.txt"
HIGGS_VERDICT = "higgs_validation_verdict.txt"
SAMPLE_LABELS = ("Data", "MC")


def _float(value: str | None) -> float:
    try:
        return float(value) if value not in (None, "") else math.nan
    except ValueError:
        return math.nan


def _int(value: str | None) -> int | None:
    number = _float(value)
    return int(number) if math.isfinite(number) else None


def _relative(out_dir: Path, path: Path) -> str | None:
    """``path`` relative to the report (POSIX separators), None when the file is not there."""
    return path.relative_to(out_dir).as_posix() if path.exists() else None


@dataclass(frozen=True)
class CategoryRow:
    """One category as steps 1-3 left it; NaN/empty where a step has not run (yet)."""

    name: str
    n_events: int
    fit_val: float
    fit_err: float
    median: float
    median_err: float
    factor: float
    factor_err: float
    source: str  # "fit", "fallback:..." or "" before step 3
    quality: str  # "ok", "failed" or "" before step 1
    status: int | None
    cov_qual: int | None
    chi2_ndf: float
    attempts: int
    label: str  # the accepted rung of the retry ladder
    reason: str
    plot: str | None  # PNG of the fit, relative to the output directory
    plot_pdf: str | None
    log: str | None  # what ROOT printed while fitting it

    @property
    def failed(self) -> bool:
        return self.quality == "failed"

    @property
    def fallback(self) -> bool:
        return self.source.startswith("fallback")

    @property
    def retried(self) -> bool:
        return self.attempts > 1


@dataclass(frozen=True)
class SampleOutputs:
    """One output directory: its categories, correction JSON and provenance."""

    out_dir: Path
    label: str  # "Data" or "MC"
    year: str
    rows: tuple[CategoryRow, ...]
    correction_json: Path | None
    provenance: dict[str, object]
    # What sigma_fit is (``fit.width`` of the fits: "effective" or "core"); "" before step 1 or for
    # fits written before the choice existed (they are core sigmas).
    width_definition: str = ""

    @property
    def has_fits(self) -> bool:
        return any(r.quality for r in self.rows)

    @property
    def has_factors(self) -> bool:
        return any(r.source for r in self.rows)

    def factors(self) -> dict[str, tuple[float, float]]:
        """Factor and error per category (step 3's table); empty before step 3."""
        return {r.name: (r.factor, r.factor_err) for r in self.rows if r.source}

    def mtime(self, name: str) -> float | None:
        """Modification time of one of the directory's files, None when it is missing."""
        path = self.out_dir / name
        return path.stat().st_mtime if path.exists() else None


def _by_name(path: Path) -> dict[str, dict[str, str]]:
    return {r["cat_name"]: r for r in read_csv(path)} if path.exists() else {}


def _correction_json(out_dir: Path, label: str, year: str) -> Path | None:
    """The directory's correction file; the newest when several NanoAOD versions were written."""
    found = sorted(out_dir.glob(f"res_calib_BS_correction_{year}_{label}_nanoAODv*.json"), key=lambda p: p.stat().st_mtime)
    return found[-1] if found else None


def sibling_dir(out_dir: Path) -> Path:
    """The other sample's directory of the same year and suffix (``Data_2018_x`` beside ``MC_2018_x``)."""
    label, _, rest = Path(out_dir).name.partition("_")
    other = SAMPLE_LABELS[1] if label == SAMPLE_LABELS[0] else SAMPLE_LABELS[0]
    return Path(out_dir).parent / f"{other}_{rest}"


def read_sample(out_dir: Path, scheme: CategoryScheme) -> SampleOutputs:
    """Steps 1-3 of ``<Data|MC>_<year>[_suffix]``: every category of the scheme, filled from what exists."""
    out_dir = Path(out_dir)
    label = out_dir.name.partition("_")[0]
    year = out_dir.parent.name
    fits, medians, factors = (_by_name(out_dir / name) for name in (FIT_CSV, MEDIAN_CSV, FACTOR_CSV))
    rows = []
    for name in scheme.names:
        fit, med, fac = fits.get(name, {}), medians.get(name, {}), factors.get(name, {})
        rows.append(
            CategoryRow(
                name=name,
                n_events=_int(med.get("n_events") or fit.get("n_events")) or 0,
                fit_val=_float(fit.get("fit_val")),
                fit_err=_float(fit.get("fit_err")),
                median=_float(med.get("median_val_NonCal")),
                median_err=_float(med.get("median_err_NonCal")),
                factor=_float(fac.get("calibration_factor")),
                factor_err=_float(fac.get("calibration_factor_err")),
                source=fac.get("source", ""),
                quality=fit.get("quality", ""),
                status=_int(fit.get("status")),
                cov_qual=_int(fit.get("cov_qual")),
                chi2_ndf=_float(fit.get("chi2_ndf")),
                attempts=_int(fit.get("attempts")) or 0,
                label=fit.get("label", ""),
                reason=fit.get("reason", ""),
                plot=_relative(out_dir, out_dir / "fits" / f"fit_{name}.png"),
                plot_pdf=_relative(out_dir, out_dir / "fits" / f"fit_{name}.pdf"),
                log=_relative(out_dir, out_dir / "logs" / f"fit_{name}.log"),
            )
        )
    provenance_path = out_dir / PROVENANCE_JSON
    provenance = json.loads(provenance_path.read_text()) if provenance_path.exists() else {}
    return SampleOutputs(out_dir, label, year, tuple(rows), _correction_json(out_dir, label, year), provenance, _width_definition(out_dir))


def _width_definition(out_dir: Path) -> str:
    """The fits' ``width_definition`` in ``fit_params.json`` ("core" for fits written before it was recorded)."""
    path = out_dir / FIT_JSON
    if not path.exists():
        return ""
    kinds = {str(fit.get("width_definition", "core")) for fit in json.loads(path.read_text()).values()}
    return "/".join(sorted(kinds))


@dataclass(frozen=True)
class ValidationBin:
    """One bin of a closure or Higgs CSV: fitted width over median predicted width."""

    low: float
    high: float
    n_events: int
    fit_val: float
    fit_err: float
    median: float  # median calibrated sigma_pred of the bin
    ratio: float
    ratio_err: float
    fit_quality: str
    verdict: str  # "pass", "fail" or "not tested: ..."
    plot: str | None

    @property
    def tested(self) -> bool:
        return self.verdict in ("pass", "fail")

    @property
    def deviation(self) -> float:
        return self.ratio - 1.0


@dataclass(frozen=True)
class Validation:
    """A closure (after and before calibration) or the Higgs check, as the run wrote it."""

    after: tuple[ValidationBin, ...]
    before: tuple[ValidationBin, ...]
    verdict_lines: tuple[str, ...]
    plot: str | None  # the summary figure (fit / median against median)
    csv_mtime: float

    @property
    def passed(self) -> bool:
        tested = [b for b in self.after if b.tested]
        return bool(tested) and all(b.verdict == "pass" for b in tested)

    def worst(self) -> ValidationBin | None:
        """The tested bin farthest from 1 (a bin whose fit failed counts as the farthest)."""
        tested = [b for b in self.after if b.tested]
        if not tested:
            return None
        return max(tested, key=lambda b: math.inf if b.fit_quality != "ok" or not math.isfinite(b.ratio) else abs(b.deviation))


def _bins(out_dir: Path, csv_path: Path, plot_dir: Path, prefix: str) -> tuple[ValidationBin, ...]:
    if not csv_path.exists():
        return ()
    bins = []
    for row in read_csv(csv_path):
        low, high = _float(row["low"]), _float(row["high"])
        bins.append(
            ValidationBin(
                low=low, high=high, n_events=_int(row["nEvents"]) or 0, fit_val=_float(row["fit_val"]),
                fit_err=_float(row["fit_err"]), median=_float(row["median_val"]), ratio=_float(row["ratio"]),
                ratio_err=_float(row["ratio_err"]), fit_quality=row["fit_quality"], verdict=row["verdict"],
                plot=_relative(out_dir, plot_dir / f"fit_{prefix}_{low:g}-{high:g}.png"),
            )  # fmt: skip
        )
    return tuple(bins)


def _lines(path: Path, starts: str) -> tuple[str, ...]:
    if not path.exists():
        return ()
    return tuple(line for line in path.read_text().splitlines() if line.startswith(starts))


def read_validation(out_dir: Path, kind: str) -> Validation | None:
    """The closure (``kind="closure"``) or Higgs check (``"higgs"``) of the directory; None when not run."""
    out_dir = Path(out_dir)
    if kind == "closure":
        csv_path = out_dir / CLOSURE_CSV
        if not csv_path.exists():
            return None
        fits = out_dir / "closure" / "fits"
        return Validation(
            after=_bins(out_dir, csv_path, fits, "closure"),
            before=_bins(out_dir, out_dir / UNCALIBRATED_CSV, fits / "uncalibrated", "closure"),
            verdict_lines=_lines(out_dir / CLOSURE_VERDICT, "closure"),
            plot=_relative(out_dir, out_dir / "closure_resolution.png"),
            csv_mtime=csv_path.stat().st_mtime,
        )
    csv_path = out_dir / HIGGS_CSV
    if not csv_path.exists():
        return None
    return Validation(
        after=_bins(out_dir, csv_path, out_dir / "higgs" / "fits", "higgs"),
        before=(),
        verdict_lines=_lines(out_dir / HIGGS_VERDICT, "Higgs"),
        plot=_relative(out_dir, out_dir / "higgs_validation_resolution.png"),
        csv_mtime=csv_path.stat().st_mtime,
    )
