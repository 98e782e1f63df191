"""The results each stage returns: frozen, picklable containers that the route passes on and ``OutputDir`` writes and reads back.

Per category: ``CategoryMedian`` (step 2), ``FitRow`` with its full record (step 1), ``CategoryFactor`` (step 3).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Mapping

from lib.closure import ClosureBin, ClosureVerdict
from lib.factors import CategoryFactor
from lib.fitting.result import FitRow
from lib.medians import CategoryMedian

if TYPE_CHECKING:
    import pandas as pd

# How the verdict line names the Higgs check (the report picks the line by its first word).
HIGGS_LABEL = "Higgs peak (DCB) after calibration"


def _table(rows: Iterable[CategoryMedian | FitRow | CategoryFactor]) -> pd.DataFrame:
    """The per-category records as a DataFrame indexed by category (pandas imported only when a table is asked for)."""
    import pandas as pd

    return pd.DataFrame([r.row() for r in rows]).set_index("cat_name")


@dataclass(frozen=True)
class Medians:
    """Step 2: the median predicted resolution of every category, in the scheme's order."""

    rows: tuple[CategoryMedian, ...]

    def by_name(self) -> dict[str, CategoryMedian]:
        return {m.cat_name: m for m in self.rows}

    def table(self) -> pd.DataFrame:
        return _table(self.rows)


@dataclass(frozen=True)
class Fits:
    """Step 1: per category its summary row and its full record (every attempt; ``fit_params.json``)."""

    rows: Mapping[str, FitRow]
    records: Mapping[str, object]

    @property
    def failed(self) -> list[str]:
        """The categories without a good fit."""
        return [name for name, row in self.rows.items() if row.quality != "ok"]

    def width_definitions(self) -> tuple[str, ...]:
        """What sigma_fit is in these fits (``fit.width`` when made): one kind, or none before any fit.

        A category too small to fit has no width; a record that does not say is a core sigma.
        """
        fitted = (r for r in self.records.values() if isinstance(r, Mapping) and not (r.get("ok") is False and "attempts" not in r))
        return tuple(sorted({str(r.get("width_definition", "core")) for r in fitted}))

    def merged_into(self, earlier: Fits, order: list[str]) -> Fits:
        """These fits replacing their categories in ``earlier`` (``--fixCat``), in category order."""
        rows = {**earlier.rows, **self.rows}
        records = {**earlier.records, **self.records}
        return Fits({n: rows[n] for n in order if n in rows}, {n: records[n] for n in order if n in records})

    def table(self) -> pd.DataFrame:
        return _table(self.rows.values())


@dataclass(frozen=True)
class Factors:
    """Step 3: every category's factor (fitted or its fallback) and where the correction JSON went."""

    rows: tuple[CategoryFactor, ...]
    correction_json: Path | None = None
    installed: Path | None = None

    def by_name(self) -> dict[str, CategoryFactor]:
        return {f.cat_name: f for f in self.rows}

    def values(self) -> dict[str, float]:
        return {f.cat_name: f.calibration_factor for f in self.rows}

    def table(self) -> pd.DataFrame:
        return _table(self.rows)


@dataclass(frozen=True)
class Validation:
    """The closure (after calibration) or the Higgs check: every bin and the verdict over the tested ones."""

    bins: tuple[ClosureBin, ...]
    verdict: ClosureVerdict


@dataclass(frozen=True)
class ClosureResult:
    """The closure after and before calibration, and the correction it tested."""

    after: Validation
    before: Validation  # the same bins without the factors: the miscalibration they correct
    text: str
    correction_json: Path
    factors: tuple[float, ...]  # the tested factors in category order (the Higgs check applies the same)


@dataclass(frozen=True)
class YearSummary:
    """What a run produced for one year: the closing table printed by the command line."""

    year: str
    output_dir: Path
    read_line: str = ""
    factors: Factors | None = None  # step 3's, with where its correction JSON went
    failed_fits: tuple[str, ...] = ()
    closure: ClosureResult | None = None
    higgs: Validation | None = None
    notes: tuple[str, ...] = ()  # what changed (a refit, moved factors) and what is now stale
    timings: Mapping[str, float] = field(default_factory=dict)

    @property
    def closure_text(self) -> str:
        """The closure's verdict lines and the Higgs check's, as ``closure_verdict.txt`` holds them; "" without a closure."""
        if self.closure is None:
            return ""
        return "\n".join([self.closure.text] + ([self.higgs.verdict.text(HIGGS_LABEL)] if self.higgs else []))

    def format(self) -> str:
        """A human-readable table of the factors and where the outputs are."""
        lines = [f"== {self.year}: outputs in {self.output_dir}"]
        if self.read_line:
            lines.append(self.read_line)
        if self.factors is not None:
            lines.append(f"{'category':<12} {'sigma_fit':>10} {'median':>8} {'factor':>8} {'+-':>7}  source")
            for f in self.factors.rows:
                lines.append(
                    f"{f.cat_name:<12} {f.fit_val:>10.4f} {f.median_val_NonCal:>8.4f} {f.calibration_factor:>8.4f} "
                    f"{f.calibration_factor_err:>7.4f}  {f.source}"
                )
        lines += list(self.notes)
        if self.failed_fits:
            lines.append(f"failed fits: {', '.join(self.failed_fits)}")
        if self.factors is not None and self.factors.correction_json:
            lines.append(f"correction JSON: {self.factors.correction_json}")
        if self.factors is not None and self.factors.installed:
            lines.append(f"installed as: {self.factors.installed}")
        if self.closure_text:
            lines.append(self.closure_text)
        if self.timings:
            lines.append("timings: " + ", ".join(f"{k} {v:.1f} s" for k, v in self.timings.items()))
        return "\n".join(lines)
