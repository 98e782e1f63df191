"""What a run changed that the user must know: factors that moved, and outputs that are now stale.

A ``--fixCat`` refit or a step 3 replaces numbers that a JSON, a closure or a colleague may
already use; the run says which moved, by how much, and the command that brings the rest up to date.
"""

from __future__ import annotations

import math

from lib.fitting.result import FitRow
from lib.outputs import OutputDir
from lib.request import Request
from lib.results import Factors, Fits, Medians

# Relative change below which a factor counts as unchanged (the CSV keeps full precision).
UNCHANGED = 1e-9


def rerun_command(request: Request, year: str, *flags: str) -> str:
    """The command line that reruns ``flags`` on the same sample, year and output directory."""
    s, p = request.selection, request.paths
    parts = ["python getCalibrationFactor.py", *flags, "--years", year]
    parts += ["--isMC"] if s.is_mc else []
    parts += ["--ifbinned"] if s.binned else []
    parts += ["--extraString", p.extra_string] if p.extra_string else []
    parts += ["--output_path", str(p.output_path)] if str(p.output_path) != "plots" else []
    parts += ["--nanoAODv", s.nanoaod_v] if s.nanoaod_v != "12" else []
    return " ".join(parts)


def _change(old: float, new: float) -> str:
    return f"{(new / old - 1) * 100:+.1f} %" if old and math.isfinite(old) else "new"


def refit_lines(refit: Fits, earlier: Fits, medians: Medians, in_use: Factors, request: Request, year: str) -> list[str]:
    """Per refitted category: its width before and after and the factor it gives against the one ``in_use``; then what is stale."""
    lines = []
    median_of, factor_of = medians.by_name(), in_use.by_name()
    for name, row in refit.rows.items():
        old = earlier.rows.get(name)
        before = f"{old.fit_val:.4f}" if old is not None and math.isfinite(old.fit_val) else "none"
        line = f"{name} refitted ({row.quality}): sigma_fit {before} -> {row.fit_val:.4f} +- {row.fit_err:.4f} GeV"
        median = median_of.get(name)
        if median is not None and math.isfinite(row.fit_val):
            factor = row.fit_val / median.median_val_NonCal
            current = factor_of.get(name)
            if current is not None:
                line += f"; factor {current.calibration_factor:.4f} -> {factor:.4f} ({_change(current.calibration_factor, factor)}) once step 3 runs"
            else:
                line += f"; factor {factor:.4f} once step 3 runs"
        lines.append(line)
    if all(_same_fit(earlier.rows.get(name), row) for name, row in refit.rows.items()):
        lines.append("the refit gives the same fit as before: nothing else to refresh")
    elif "step3" not in request.selection.steps:
        lines.append(f"the correction JSON still holds the earlier fit: refresh it with  {rerun_command(request, year, '--steps step3')}")
    return lines


def _same_fit(old: FitRow | None, new: FitRow) -> bool:
    """Whether a refit reproduced the earlier fit's width and error (NaN equal to NaN)."""
    return old is not None and same_number(old.fit_val, new.fit_val) and same_number(old.fit_err, new.fit_err)


def same_number(earlier: float | None, now: float) -> bool:
    """Whether ``now`` repeats the ``earlier`` number (None: there was none), NaN equal to NaN.

    Example:
        >>> same_number(float("nan"), float("nan")), same_number(None, 1.0), same_number(1.0, 1.0)
        (True, False, True)
    """
    return earlier is not None and (earlier == now or (math.isnan(earlier) and math.isnan(now)))


def factor_change_lines(derived: Factors, previous: Factors, request: Request, out: OutputDir) -> list[str]:
    """Per category whose factor moved against the previous step 3 (``30-45_EE: 1.4120 -> 1.3980 (-1.0 %, error 0.0210)``),
    then a closure that tested the earlier factors."""
    earlier = previous.by_name()
    if not earlier:
        return []
    lines = []
    for factor in derived.rows:
        old = earlier.get(factor.cat_name)
        new = factor.calibration_factor
        if old is not None and abs(new - old.calibration_factor) <= UNCHANGED * abs(old.calibration_factor):
            continue
        before = f"{old.calibration_factor:.4f}" if old is not None else "none"
        after = f"{new:.4f} ({_change(old.calibration_factor if old else math.nan, new)}, error {factor.calibration_factor_err:.4f})"
        lines.append(f"{factor.cat_name}: {before} -> {after}" + (f" [{factor.source}]" if factor.source != "fit" else ""))
    if not lines:
        return ["every factor is unchanged against the previous step 3"]
    if out.has_validation("closure"):
        lines.append(f"the closure in {out.path} tested the earlier factors: rerun it with  {rerun_command(request, out.year, '--closure_test')}")
    return lines
