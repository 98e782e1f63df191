"""What a run produced for each year, and the closing table the command line prints of it."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from lib.factors import CategoryFactor

__all__ = ["YearSummary", "format_summary"]


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
