"""Read what runs left in an output directory (or the other sample's), as the report needs it: no fit, no ROOT, only files."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

from lib.categories import CategoryScheme
from lib.closure import BinState, ClosureBin, bin_label
from lib.factors import CategoryFactor
from lib.fitting.result import FitRow
from lib.medians import CategoryMedian
from lib.outputs import OutputDir
from lib.results import Fits

_NAN = math.nan
# The record of a step that has not run here: NaN numbers, no quality, no source, so the page shows dashes.
NO_FIT = FitRow("", _NAN, _NAN, -1, -1, "", "", _NAN, 0, _NAN, 0, "")
NO_MEDIAN = CategoryMedian("", 0, _NAN, _NAN, _NAN)
NO_FACTOR = CategoryFactor("", _NAN, _NAN, 0, _NAN, _NAN, _NAN, _NAN, "", "")


@dataclass(frozen=True)
class CategoryRow:
    """One category as steps 1-3 left it (a step that has not run here: its empty record) and its files."""

    name: str
    fit: FitRow
    median: CategoryMedian
    factor: CategoryFactor
    plot: str | None  # PNG of the fit, relative to the output directory
    plot_pdf: str | None
    log: str | None  # what ROOT printed while fitting it

    @property
    def n_events(self) -> int:
        return self.median.n_events or self.fit.n_events

    @property
    def failed(self) -> bool:
        return self.fit.quality == "failed"

    @property
    def fallback(self) -> bool:
        return self.factor.source.startswith("fallback")

    @property
    def retried(self) -> bool:
        return self.fit.attempts > 1

    @property
    def highlight(self) -> str | None:
        """How the page and the PDF mark the row: ``failed``, ``fallback``, ``retried``, or not at all."""
        return "failed" if self.failed else "fallback" if self.fallback else "retried" if self.retried else None


@dataclass(frozen=True)
class SampleOutputs:
    """One output directory: its categories, correction JSON and provenance."""

    out_dir: Path
    label: str  # "Data" or "MC"
    year: str
    rows: tuple[CategoryRow, ...]
    correction_json: Path | None
    provenance: dict[str, object]
    # What sigma_fit is (``Fits.width_definitions``, "/"-joined); "" before step 1.
    width_definition: str = ""

    @property
    def has_fits(self) -> bool:
        return any(r.fit.quality for r in self.rows)

    @property
    def has_factors(self) -> bool:
        return any(r.factor.source for r in self.rows)

    def factors(self) -> dict[str, tuple[float, float]]:
        """Factor and error per category (step 3's table); empty before step 3."""
        return {r.name: (r.factor.calibration_factor, r.factor.calibration_factor_err) for r in self.rows if r.factor.source}


def read_sample(out_dir: Path, scheme: CategoryScheme) -> SampleOutputs:
    """Steps 1-3 of ``<Data|MC>_<year>[_suffix]``: every category of the scheme, filled from what exists."""
    out = OutputDir(Path(out_dir))
    fits, medians, factors = out.read_fits(missing_ok=True), out.read_medians(missing_ok=True), out.read_factors()
    rows = tuple(
        CategoryRow(
            name, fits.get(name, NO_FIT), medians.get(name, NO_MEDIAN), factors.get(name, NO_FACTOR),
            out.relative(out.fit_plot(name, fmt="png")), out.relative(out.fit_plot(name, fmt="pdf")), out.relative(out.fit_log(name)),
        )  # fmt: skip
        for name in scheme.names
    )
    return SampleOutputs(out.path, out.sample, out.year, rows, out.find_correction_json(), out.read_provenance(), _width_definition(out))


def _width_definition(out: OutputDir) -> str:
    """The fits' ``width_definition`` in ``fit_params.json`` (``Fits.width_definitions``), "/"-joined; "" before step 1."""
    return "/".join(Fits({}, out.read_fit_params()).width_definitions())


@dataclass(frozen=True)
class ValidationBin(ClosureBin):
    """One bin of a closure or Higgs CSV, read back as the run wrote it, with its fit's figure."""

    plot: str | None = None  # PNG of the bin's fit, relative to the output directory

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

    def before_of(self, after: ValidationBin) -> ValidationBin | None:
        """The same bin before calibration, when the closure ran it."""
        return next((b for b in self.before if (b.low, b.high) == (after.low, after.high)), None)

    def worst(self) -> ValidationBin | None:
        """The tested bin farthest from 1 (a bin whose fit failed counts as the farthest)."""
        tested = [b for b in self.after if b.tested]
        if not tested:
            return None
        return max(tested, key=lambda b: math.inf if b.state == BinState.FIT_FAILED else abs(b.deviation))


def _bins(out: OutputDir, kind: str, prefix: str) -> tuple[ValidationBin, ...]:
    """The bins of a validation table (none when it has not run here), each with the figure of its fit."""
    bins = out.read_validation(kind, ValidationBin)
    return tuple(replace(b, plot=out.relative(out.fit_plot(bin_label(b.low, b.high, prefix), kind))) for b in bins)


def read_validation(out_dir: Path, kind: str) -> Validation | None:
    """The closure (``kind="closure"``) or Higgs check (``"higgs"``) of the directory; None when not run."""
    out = OutputDir(Path(out_dir))
    if not out.has_validation(kind):
        return None
    closure = kind == "closure"
    return Validation(
        after=_bins(out, kind, kind),
        before=_bins(out, "uncalibrated", "closure") if closure else (),
        verdict_lines=out.read_verdict_lines(kind, "closure" if closure else "Higgs"),
        plot=out.relative(out.figure(kind)),
        tested_factors=out.read_tested_factors(kind),
    )
