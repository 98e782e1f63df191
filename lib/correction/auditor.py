"""Audit a correction file before anyone ships it: loadable, complete, plausible, no lone outliers.

A failed fit that reaches the file (the original's 2018 Data JSON holds 0.0629 for ``30-45_EE``) is
caught by two independent checks: the plausibility band, and the comparison with the median of the
neighbouring categories (one bin away in exactly one of pT, |eta1|, |eta2|; neighbours outside the
band left out), which also catches a factor inside the band but inconsistent with its surroundings.
Both thresholds are the configuration's (``step3``), the rule step 3 applies to its own fits, so the
command line, ``install`` and the report flag the same categories.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import correctionlib.schemav2 as cs

from lib.categories import CategoryScheme
from lib.config import Config
from lib.correction.writer import load_correction
from lib.errors import ConfigError
from lib.factors import far_from, neighbour_median

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CategoryAudit:
    """One category's factor, what it was compared with, and why it is flagged (empty: fine)."""

    name: str
    value: float
    neighbour_median: float
    previous: float | None = None
    reasons: tuple[str, ...] = ()

    @property
    def relative_change(self) -> float | None:
        """``value / previous - 1``, ``None`` without a previous file."""
        if self.previous is None:
            return None
        return self.value / self.previous - 1.0 if self.previous != 0 else math.inf


@dataclass(frozen=True)
class AuditReport:
    """Result of :func:`audit_correction`; ``ok`` when no category is flagged."""

    path: Path
    correction_name: str
    band: tuple[float, float]
    outlier_threshold: float
    categories: tuple[CategoryAudit, ...]
    notes: tuple[str, ...] = ()
    previous_path: Path | None = None

    @property
    def flags(self) -> list[tuple[str, str]]:
        """(category, reason) for every problem found."""
        return [(c.name, r) for c in self.categories for r in c.reasons]

    @property
    def flagged(self) -> list[str]:
        """Names of the flagged categories, in category order."""
        return [c.name for c in self.categories if c.reasons]

    @property
    def ok(self) -> bool:
        return not self.flagged

    def to_text(self) -> str:
        """A fixed-width table followed by notes and a one-line verdict."""
        lo, hi = self.band
        lines = [
            f"audit of {self.path} (correction '{self.correction_name}')",
            f"plausible band [{lo:g}, {hi:g}]; outlier when factor / neighbour median is outside "
            f"[1/{self.outlier_threshold:g}, {self.outlier_threshold:g}]",
        ]
        header = f"{'category':<12} {'factor':>8} {'nbr.med':>8} {'ratio':>6}"
        if self.previous_path is not None:
            lines.append(f"previous: {self.previous_path}")
            header += f" {'previous':>8} {'change':>8}"
        lines += ["", header + "  flags", "-" * (len(header) + 7)]
        for c in self.categories:
            ratio = c.value / c.neighbour_median if c.neighbour_median > 0 else math.nan
            row = f"{c.name:<12} {c.value:8.4f} {c.neighbour_median:8.4f} {ratio:6.3f}"
            if c.previous is not None:
                row += f" {c.previous:8.4f} {c.relative_change:+8.2%}"
            lines.append(row + ("  " + "; ".join(c.reasons) if c.reasons else ""))
        lines.append("")
        lines += [f"note: {n}" for n in self.notes]
        if self.ok:
            lines.append(f"OK: all {len(self.categories)} categories pass")
        else:
            lines.append(f"FLAGGED {len(self.flagged)} of {len(self.categories)} categories: {', '.join(self.flagged)}")
        return "\n".join(lines)


def audit_correction(
    path: Path,
    config: Config,
    previous: Path | None = None,
    name: str | None = None,
    band: tuple[float, float] | None = None,
    outlier_threshold: float | None = None,
) -> AuditReport:
    """Check a correction file category by category, against an earlier file when ``previous`` is given.

    Factors are evaluated at the centres of the configuration's categories (a file with other edges
    gets a note); ``band`` and ``outlier_threshold`` default to the configuration's ``step3`` values.

    Raises:
        CorrectionError: the file (or the previous one) does not load or validate.
        ConfigError: ``band`` is not increasing or ``outlier_threshold`` is not above 1.
    """
    lo, hi = band or config.step3.plausible_factor_band
    threshold = config.step3.neighbour_outlier_ratio if outlier_threshold is None else outlier_threshold
    if not lo < hi:
        raise ConfigError(f"plausible factor band must be increasing, got {[lo, hi]}")
    if not threshold > 1.0:
        raise ConfigError(f"outlier threshold is a ratio and must be above 1, got {threshold}")
    scheme = CategoryScheme.from_config(config.categories)
    loaded = load_correction(path, name)
    factors = loaded.factors(scheme)
    old = load_correction(previous, name).factors(scheme) if previous is not None else None
    usable = {i: v for i, v in enumerate(factors.values()) if math.isfinite(v) and lo <= v <= hi}
    audits = []
    for index, (cat, value) in enumerate(factors.items()):
        nbr = neighbour_median(scheme, index, usable)  # a factor outside the band is judged too
        reasons = []
        if not math.isfinite(value):
            reasons.append(f"factor is {value}")
        elif not lo <= value <= hi:
            reasons.append(f"outside plausible band [{lo:g}, {hi:g}]")
        if far_from(value, nbr, threshold):
            reasons.append(f"x{value / nbr:.3f} the median of its neighbours ({nbr:.4f})")
        audits.append(CategoryAudit(cat, value, nbr, None if old is None else old[cat], tuple(reasons)))
    report = AuditReport(
        path=Path(path), correction_name=loaded.name, band=(float(lo), float(hi)), outlier_threshold=float(threshold),
        categories=tuple(audits), notes=tuple(_binning_notes(loaded.model, scheme)), previous_path=None if previous is None else Path(previous),
    )  # fmt: skip
    logger.info("audit of %s: %d of %d categories flagged %s", path, len(report.flagged), len(audits), report.flagged)
    return report


def _binning_notes(model: cs.Correction, scheme: CategoryScheme) -> list[str]:
    """Non-fatal remarks: binning other than the scheme's, or a flow other than clamp."""
    node = model.data
    if not isinstance(node, cs.MultiBinning):
        return [f"top node is {getattr(node, 'nodetype', type(node).__name__)}, not multibinning; values read at category centres"]
    expected = {
        "leading_mu_pt": list(scheme.pt_edges),
        "leading_mu_abseta": list(scheme.abseta_edges),
        "subleading_mu_abseta": list(scheme.abseta_edges),
    }
    notes = []
    for var, edges in zip(node.inputs, node.edges):
        have = [float(e) for e in edges] if isinstance(edges, list) else f"uniform({edges.n}, {edges.low}, {edges.high})"
        if have != expected.get(var):
            notes.append(f"{var} edges {have} differ from the categories' {expected.get(var)}; values read at category centres")
    if node.flow != "clamp":
        notes.append(f"flow is {node.flow!r}, not 'clamp': muons outside the edges will not get the edge factor")
    return notes
