"""Audit a correction file before anyone ships it: loadable, complete, plausible, no lone outliers.

The 2018 data file of the original shipped 0.0629 for ``30-45_EE`` (a failed fit) and nobody
noticed. Two independent checks catch such a value: a fixed plausibility band, and a comparison
with the neighbouring categories, which also catches a factor that is inside the band but
inconsistent with its surroundings.

Outlier rule: the neighbours of a category are the categories one bin away in exactly one of
(pT, |eta1|, |eta2|). A factor is an outlier when it differs from the median of its neighbours
(neighbours outside the band are left out) by more than ``outlier_threshold`` as a ratio.

Both thresholds are the configuration's (``step3.plausible_factor_band`` and
``step3.neighbour_outlier_ratio``, the rule step 3 applies to its own fits), so the command line,
``install`` and the report flag the same categories.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import correctionlib.schemav2 as cs

from lib.categories import CategoryScheme
from lib.config import Config
from lib.correction.writer import load_correction, read_factors
from lib.errors import ConfigError
from lib.factors import far_from, neighbour_median

__all__ = ["AuditReport", "CategoryAudit", "audit_correction"]

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
    def ratio_to_neighbours(self) -> float:
        return self.value / self.neighbour_median if self.neighbour_median > 0 else math.nan

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

    def values(self) -> dict[str, float]:
        return {c.name: c.value for c in self.categories}

    def to_text(self) -> str:
        """A fixed-width table followed by notes and a one-line verdict."""
        lo, hi = self.band
        lines = [
            f"audit of {self.path} (correction '{self.correction_name}')",
            f"plausible band [{lo:g}, {hi:g}]; outlier when factor / neighbour median is outside "
            f"[1/{self.outlier_threshold:g}, {self.outlier_threshold:g}]",
        ]
        if self.previous_path is not None:
            lines.append(f"previous: {self.previous_path}")
        header = f"{'category':<12} {'factor':>8} {'nbr.med':>8} {'ratio':>6}"
        if self.previous_path is not None:
            header += f" {'previous':>8} {'change':>8}"
        lines += ["", header + "  flags", "-" * (len(header) + 7)]
        for c in self.categories:
            row = f"{c.name:<12} {c.value:8.4f} {c.neighbour_median:8.4f} {c.ratio_to_neighbours:6.3f}"
            if self.previous_path is not None:
                change = c.relative_change
                row += f" {c.previous:8.4f} {change:+8.2%}" if c.previous is not None and change is not None else ""
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
    """Check a correction file category by category, with the configuration's thresholds unless given.

    Args:
        path: the JSON to audit (ours, an imported one, or the original's).
        config: its categories are evaluated at their centres (files with other edges are read at
            these centres too, a note says so); its ``step3.plausible_factor_band`` and
            ``step3.neighbour_outlier_ratio`` are the thresholds where ``band``/``outlier_threshold`` are None.
        previous: an earlier file to diff against (per-category relative change, not flagged).
        name: correction to audit; ``None`` takes the only one in the file.
        band: plausible factor range ``[lo, hi]``.
        outlier_threshold: largest allowed ratio (either way) to the neighbour median, > 1.

    Returns:
        The report; flagged categories carry their reasons.

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
    loaded = load_correction(Path(path), name)
    factors = loaded.factors(scheme)
    old = read_factors(Path(previous), scheme, name) if previous is not None else None
    usable = {i: v for i, v in enumerate(factors.values()) if math.isfinite(v) and lo <= v <= hi}
    audits = []
    for index, (cat, value) in enumerate(factors.items()):
        # Step 3's outlier rule, against the usable neighbours; a factor outside the band is judged too.
        nbr = neighbour_median(scheme, index, usable)
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
    notes = []
    expected = {
        "leading_mu_pt": list(scheme.pt_edges),
        "leading_mu_abseta": list(scheme.abseta_edges),
        "subleading_mu_abseta": list(scheme.abseta_edges),
    }
    for var, edges in zip(node.inputs, node.edges):
        have = [float(e) for e in edges] if isinstance(edges, list) else f"uniform({edges.n}, {edges.low}, {edges.high})"
        if have != expected.get(var):
            notes.append(f"{var} edges {have} differ from the categories' {expected.get(var)}; values read at category centres")
    if node.flow != "clamp":
        notes.append(f"flow is {node.flow!r}, not 'clamp': muons outside the edges will not get the edge factor")
    return notes
