"""What runs left in an output directory (or the other sample's), as the report needs it: the stages' containers read back
through ``OutputDir``, and the figures and logs beside them. No fit, no ROOT, only files."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from lib.categories import CategoryScheme
from lib.closure import BinState, ClosureBin, bin_label
from lib.factors import CategoryFactor
from lib.fitting.result import FitRow
from lib.medians import CategoryMedian
from lib.outputs import OutputDir
from lib.results import HIGGS_LABEL, Factors, Fits, Medians

_NAN = math.nan
# The record of a step that has not run here: NaN numbers, no quality, no source, so the page shows dashes.
NO_FIT = FitRow("", _NAN, _NAN, -1, -1, "", "", _NAN, 0, _NAN, 0, "")
NO_MEDIAN = CategoryMedian("", 0, _NAN, _NAN, _NAN)
NO_FACTOR = CategoryFactor("", _NAN, _NAN, 0, _NAN, _NAN, _NAN, _NAN, "", "")


@dataclass(frozen=True)
class CategoryRow:
    """One category's line of the report: its records of steps 1-3 (a step that has not run here: the empty record) and its files."""

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
    """One output directory: steps 1-3 as ``OutputDir`` reads them back, and its provenance."""

    out: OutputDir
    names: tuple[str, ...]  # the scheme's categories, in order
    fits: Fits
    medians: Medians
    factors: Factors  # with the directory's correction JSON
    provenance: dict[str, object]
    shared_fsr: dict[str, object]  # step 1's pooled radiation fit (``OutputDir.read_shared_fsr``); empty where none ran

    @property
    def label(self) -> str:
        """``"Data"`` or ``"MC"``."""
        return self.out.sample

    @property
    def year(self) -> str:
        return self.out.year

    @property
    def correction_json(self) -> Path | None:
        return self.factors.correction_json

    @property
    def width_definition(self) -> str:
        """What sigma_fit is (``Fits.width_definitions``, "/"-joined); "" before step 1."""
        return "/".join(self.fits.width_definitions())

    @cached_property
    def rows(self) -> tuple[CategoryRow, ...]:
        """Every category of the scheme, filled from the steps that have run here."""
        fits, medians, factors, out = self.fits.rows, self.medians.by_name(), self.factors.by_name(), self.out
        return tuple(
            CategoryRow(
                name, fits.get(name, NO_FIT), medians.get(name, NO_MEDIAN), factors.get(name, NO_FACTOR),
                out.relative(out.fit_plot(name, fmt="png")), out.relative(out.fit_plot(name, fmt="pdf")), out.relative(out.fit_log(name)),
            )  # fmt: skip
            for name in self.names
        )

    @property
    def has_fits(self) -> bool:
        return any(r.fit.quality for r in self.rows)

    @property
    def has_factors(self) -> bool:
        return any(r.factor.source for r in self.rows)

    def factor_values(self) -> dict[str, tuple[float, float]]:
        """Factor and error per category (step 3's table); empty before step 3."""
        return {r.name: (r.factor.calibration_factor, r.factor.calibration_factor_err) for r in self.rows if r.factor.source}


def read_sample(out: OutputDir, scheme: CategoryScheme) -> SampleOutputs:
    """Steps 1-3 of ``<Data|MC>_<year>[_suffix]``, as far as they have run."""
    return SampleOutputs(out, scheme.names, out.read_fits(missing_ok=True), out.read_medians(missing_ok=True), out.read_factors(),
                         out.read_provenance(), out.read_shared_fsr().get("categories", {}))  # fmt: skip


@dataclass(frozen=True)
class CheckOutputs:
    """What the closure (after and before calibration) or the Higgs check left here: its bins, verdict and summary figure."""

    kind: str  # "closure" or "higgs": also the kind of its fits (``lib.outputs.FIT_KINDS``)
    after: tuple[ClosureBin, ...]
    before: tuple[ClosureBin, ...]
    verdict_lines: tuple[str, ...]
    plot: str | None  # the summary figure (fit / median against median)
    tested_factors: dict[str, float] | None  # the factors it applied; None: not recorded

    @property
    def passed(self) -> bool:
        tested = [b for b in self.after if b.tested]
        return bool(tested) and all(b.verdict == "pass" for b in tested)

    def before_of(self, after: ClosureBin) -> ClosureBin | None:
        """The same bin before calibration, when the closure ran it."""
        return next((b for b in self.before if (b.low, b.high) == (after.low, after.high)), None)

    def worst(self) -> ClosureBin | None:
        """The tested bin farthest from 1 (a bin whose fit failed counts as the farthest)."""
        tested = [b for b in self.after if b.tested]
        if not tested:
            return None
        return max(tested, key=lambda b: math.inf if b.state == BinState.FIT_FAILED else abs(b.ratio - 1.0))


def read_check(out: OutputDir, kind: str) -> CheckOutputs | None:
    """The closure (``kind="closure"``) or Higgs check (``"higgs"``) of the directory; None when not run."""
    if not out.has_validation(kind):
        return None
    closure = kind == "closure"
    return CheckOutputs(
        kind=kind,
        after=out.read_validation(kind),
        before=out.read_validation("uncalibrated") if closure else (),
        verdict_lines=out.read_verdict_lines(kind, "closure" if closure else HIGGS_LABEL),
        plot=out.relative(out.figure(kind)),
        tested_factors=out.read_tested_factors(kind),
    )


def bin_plot(out: OutputDir, kind: str, b: ClosureBin) -> str | None:
    """The figure of a ``closure``, ``uncalibrated`` or ``higgs`` bin's fit, relative to the directory; None when not drawn."""
    return out.relative(out.fit_plot(bin_label(b.low, b.high, "higgs" if kind == "higgs" else "closure"), kind))
