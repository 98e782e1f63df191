"""Read what a run left in an output directory, as the report needs it: no fit, no ROOT, only files.

The report is rebuilt from the directory alone, so that a later ``--fixCat``, step 3 or closure
run shows its own results beside the earlier ones exactly as the files now hold them, and the
other sample's directory (Data beside MC) can be read the same way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from lib.categories import CategoryScheme
from lib.closure import BinState, JudgedBin
from lib.factors import CategoryFactor
from lib.fitting.result import FitRow
from lib.medians import CategoryMedian
from lib.outputs import OutputDir

__all__ = ["CategoryRow", "SampleOutputs", "ValidationBin", "Validation", "read_sample", "read_validation"]


def _float(value: str | None) -> float:
    try:
        return float(value) if value not in (None, "") else math.nan
    except ValueError:
        return math.nan


def _int(value: str | None) -> int | None:
    number = _float(value)
    return int(number) if math.isfinite(number) else None


@dataclass(frozen=True)
class CategoryRow:
    """One category as steps 1-3 left it: their records (None where a step has not run yet) and its files."""

    name: str
    fit: FitRow | None
    median_row: CategoryMedian | None
    factor_row: CategoryFactor | None
    plot: str | None  # PNG of the fit, relative to the output directory
    plot_pdf: str | None
    log: str | None  # what ROOT printed while fitting it

    @property
    def n_events(self) -> int:
        for record in (self.median_row, self.fit):
            if record is not None and record.n_events:
                return record.n_events
        return 0

    @property
    def fit_val(self) -> float:
        return self.fit.fit_val if self.fit else math.nan

    @property
    def fit_err(self) -> float:
        return self.fit.fit_err if self.fit else math.nan

    @property
    def median(self) -> float:
        return self.median_row.median_val_NonCal if self.median_row else math.nan

    @property
    def median_err(self) -> float:
        return self.median_row.median_err_NonCal if self.median_row else math.nan

    @property
    def factor(self) -> float:
        return self.factor_row.calibration_factor if self.factor_row else math.nan

    @property
    def factor_err(self) -> float:
        return self.factor_row.calibration_factor_err if self.factor_row else math.nan

    @property
    def source(self) -> str:
        """``fit``, ``fallback:...``, or empty before step 3."""
        return self.factor_row.source if self.factor_row else ""

    @property
    def quality(self) -> str:
        """``ok``, ``failed``, or empty before step 1."""
        return self.fit.quality if self.fit else ""

    @property
    def status(self) -> int | None:
        return self.fit.status if self.fit and self.fit.status >= 0 else None

    @property
    def cov_qual(self) -> int | None:
        return self.fit.cov_qual if self.fit and self.fit.cov_qual >= 0 else None

    @property
    def chi2_ndf(self) -> float:
        return self.fit.chi2_ndf if self.fit else math.nan

    @property
    def attempts(self) -> int:
        return self.fit.attempts if self.fit else 0

    @property
    def label(self) -> str:
        """The accepted rung of the retry ladder."""
        return self.fit.label if self.fit else ""

    @property
    def reason(self) -> str:
        return self.fit.reason if self.fit else ""

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


def read_sample(out_dir: Path, scheme: CategoryScheme) -> SampleOutputs:
    """Steps 1-3 of ``<Data|MC>_<year>[_suffix]``: every category of the scheme, filled from what exists."""
    out = OutputDir(Path(out_dir))
    fits = out.read_fits() if (out / out.FITS_CSV).exists() else {}
    medians = out.read_medians() if (out / out.MEDIANS_CSV).exists() else {}
    factors = out.read_factors()
    rows = tuple(
        CategoryRow(
            name, fits.get(name), medians.get(name), factors.get(name), out.relative(out.fit_plot_stem(name).with_suffix(".png")),
            out.relative(out.fit_plot_stem(name).with_suffix(".pdf")), out.relative(out.fit_log(name)),
        )  # fmt: skip
        for name in scheme.names
    )
    return SampleOutputs(out.path, out.sample, out.year, rows, out.find_correction_json(), out.read_provenance(), _width_definition(out))


def _width_definition(out: OutputDir) -> str:
    """The fits' ``width_definition`` in ``fit_params.json`` ("core" for fits written before it was recorded); "" before step 1."""
    kinds = {str(fit.get("width_definition", "core")) for fit in out.read_fit_params().values()}
    return "/".join(sorted(kinds))


@dataclass(frozen=True)
class ValidationBin(JudgedBin):
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
    verdict: str  # "pass", "fail", or why the bin is not judged ("not tested: ...", "not fitted: ...")
    plot: str | None

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
    tested_factors: dict[str, float] | None  # the factors it applied; None: not recorded

    @property
    def passed(self) -> bool:
        tested = [b for b in self.after if b.tested]
        return bool(tested) and all(b.verdict == "pass" for b in tested)

    def worst(self) -> ValidationBin | None:
        """The tested bin farthest from 1 (a bin whose fit failed counts as the farthest)."""
        tested = [b for b in self.after if b.tested]
        if not tested:
            return None
        return max(tested, key=lambda b: math.inf if b.state == BinState.FIT_FAILED else abs(b.deviation))


def _bins(out: OutputDir, kind: str, prefix: str) -> tuple[ValidationBin, ...]:
    group = {"closure": "closure", "uncalibrated": "closure/uncalibrated", "higgs": "higgs"}[kind]
    bins = []
    for row in out.read_validation_rows(kind):
        low, high = _float(row["low"]), _float(row["high"])
        bins.append(
            ValidationBin(
                low=low, high=high, n_events=_int(row["nEvents"]) or 0, fit_val=_float(row["fit_val"]),
                fit_err=_float(row["fit_err"]), median=_float(row["median_val"]), ratio=_float(row["ratio"]),
                ratio_err=_float(row["ratio_err"]), fit_quality=row["fit_quality"], verdict=row["verdict"],
                plot=out.relative(out.fit_plot_stem(f"{prefix}_{low:g}-{high:g}", group).with_suffix(".png")),
            )  # fmt: skip
        )
    return tuple(bins)


def read_validation(out_dir: Path, kind: str) -> Validation | None:
    """The closure (``kind="closure"``) or Higgs check (``"higgs"``) of the directory; None when not run."""
    out = OutputDir(Path(out_dir))
    csv_path = out.validation_csv(kind)
    if not csv_path.exists():
        return None
    closure = kind == "closure"
    return Validation(
        after=_bins(out, kind, kind),
        before=_bins(out, "uncalibrated", "closure") if closure else (),
        verdict_lines=out.read_verdict_lines(kind, "closure" if closure else "Higgs"),
        plot=out.relative(out.figure_stem(kind).with_suffix(".png")),
        tested_factors=out.read_tested_factors(kind),
    )
