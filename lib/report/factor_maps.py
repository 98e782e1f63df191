"""The factor map (per pT bin, Data | MC | Data/MC) and the change against a previous JSON.

One colour scale serves Data and MC, so the same colour is the same factor in both; the ratio and
the change get a diverging scale centred on 1 and 0, at least ±5 % and ±2 % wide so that
statistical noise stays pale and a real difference stands out.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

from lib.categories import CategoryScheme
from lib.correction.auditor import AuditReport
from lib.report.colors import Scale, diverging, sequential
from lib.report.heatmap import Cell, grid
from lib.report.markup import esc, num, percent, tag
from lib.report.outputs import SampleOutputs

__all__ = ["factor_map_section", "change_section", "region_legend"]

RATIO_MIN_HALF_WIDTH = 0.05
CHANGE_MIN_HALF_WIDTH = 0.02


def _pt_label(scheme: CategoryScheme, i_pt: int) -> str:
    return f"{scheme.pt_edges[i_pt]:g}–{scheme.pt_edges[i_pt + 1]:g} GeV"


def region_legend(scheme: CategoryScheme) -> str:
    """``B: |η| < 0.9 · O: 0.9–1.8 · E: 1.8–2.4`` from the configured edges."""
    edges = scheme.abseta_edges
    parts = [f"{r}: {edges[i]:g} ≤ |η| < {edges[i + 1]:g}" for i, r in enumerate(scheme.region_names)]
    return tag("p", esc("Rows: leading muon, columns: subleading muon. " + " · ".join(parts) + "."), class_="note")


def _legend(scale: Scale, label: str, fmt: str) -> str:
    gradient = ", ".join(f"rgb({r:.0f},{g:.0f},{b:.0f})" for r, g, b in scale.stops)
    return tag(
        "div",
        [tag("span", esc(label)), tag("span", esc(format(scale.low, fmt))),
         tag("span", "", class_="ramp", style=f"background:linear-gradient(to right, {gradient})"),
         tag("span", esc(format(scale.high, fmt)))],
        class_="legend",
    )  # fmt: skip


def _factor_cell(sample: SampleOutputs, flagged: dict[str, str]) -> Callable[[str], Cell | None]:
    """The cell of each category: factor ± error, marked when borrowed or flagged by the audit."""
    rows = {r.name: r for r in sample.rows}

    def cell(name: str) -> Cell | None:
        row = rows[name]
        factor, error, source = row.factor.calibration_factor, row.factor.calibration_factor_err, row.factor.source
        if not source:
            return None
        marks = tuple(m for m, on in (("fallback", row.fallback), ("flagged", name in flagged)) if on)
        tooltip = f"{name}: {factor:.4f} ± {error:.4f} ({source})" + (f"; audit: {flagged[name]}" if name in flagged else "")
        return Cell(factor, num(factor, 3), f"± {num(error, 3)}", marks, tooltip)

    return cell


def _ratio(data: SampleOutputs, mc: SampleOutputs) -> dict[str, tuple[float, float]]:
    ratios = {}
    mc_factors = mc.factors()
    for name, (fd, ed) in data.factors().items():
        if name not in mc_factors:
            continue
        fm, em = mc_factors[name]
        ratio = fd / fm if fm else math.nan
        ratios[name] = (ratio, abs(ratio) * math.hypot(ed / fd if fd else math.nan, em / fm if fm else math.nan))
    return ratios


def factor_map_section(samples: Sequence[SampleOutputs], scheme: CategoryScheme, own: str, flagged: dict[str, str]) -> str:
    """Per pT bin the factor grids of the samples given (Data first) and, with both, their ratio.

    ``flagged``: the audit's reasons per category of the report's own sample, labelled ``own``.
    """
    with_factors = [s for s in samples if s.has_factors]
    if not with_factors:
        return tag("section", [tag("h2", "Factor map"), tag("p", "No factors yet: step 3 has not run.")], id="factors")
    scale = sequential([f for s in with_factors for f, _ in s.factors().values()])
    ratios = _ratio(*with_factors) if len(with_factors) == 2 else {}
    ratio_scale = diverging([r for r, _ in ratios.values()], 1.0, RATIO_MIN_HALF_WIDTH)

    def ratio_cell(name: str) -> Cell | None:
        if name not in ratios:
            return None
        r, e = ratios[name]
        return Cell(r, num(r, 3), f"± {num(e, 3)}", tooltip=f"{name}: Data/MC = {r:.4f} ± {e:.4f}")

    cells = {s.label: _factor_cell(s, flagged if s.label == own else {}) for s in with_factors}
    rows = []
    for i_pt in range(scheme.n_pt):
        grids = [grid(scheme, i_pt, cells[s.label], scale, s.label) for s in with_factors]
        if ratios:
            grids.append(grid(scheme, i_pt, ratio_cell, ratio_scale, f"{with_factors[0].label}/{with_factors[1].label}"))
        rows.append(tag("div", [tag("h3", esc(f"leading pT {_pt_label(scheme, i_pt)}"))] + [tag("div", grids, class_="grids")], class_="ptbin"))
    legends = [_legend(scale, "factor", ".3f")] + ([_legend(ratio_scale, "ratio", ".3f")] if ratios else [])
    marks = tag("p", "Dashed border: fallback factor (borrowed from neighbours); red border: flagged by the audit.", class_="note")
    return tag("section", [tag("h2", "Factor map"), region_legend(scheme), tag("div", legends, class_="legends"), marks] + rows, id="factors")


def change_section(audit: AuditReport | None, scheme: CategoryScheme) -> str:
    """Per pT bin the relative change of each factor against the previous JSON; empty without one."""
    if audit is None or audit.previous_path is None:
        return ""
    by_name = {c.name: c for c in audit.categories}
    changes = [c.relative_change for c in audit.categories if c.relative_change is not None]
    scale = diverging(changes, 0.0, CHANGE_MIN_HALF_WIDTH)

    def cell(name: str) -> Cell | None:
        c = by_name[name]
        if c.previous is None or c.relative_change is None:
            return None
        return Cell(c.relative_change, percent(c.relative_change), f"{num(c.previous, 3)} → {num(c.value, 3)}",
                    tooltip=f"{name}: {c.previous:.4f} → {c.value:.4f}")  # fmt: skip

    rows = [
        tag("div", [tag("h3", esc(f"leading pT {_pt_label(scheme, i)}")), tag("div", grid(scheme, i, cell, scale, "now / previous − 1"), class_="grids")],
            class_="ptbin")
        for i in range(scheme.n_pt)
    ]  # fmt: skip
    intro = tag("p", esc(f"Against {audit.previous_path}: each cell is this JSON's factor over the previous one, minus 1."))
    return tag("section", [tag("h2", "Change against the previous JSON"), intro, _legend(scale, "change", "+.1%")] + rows, id="change")

