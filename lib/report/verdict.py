"""The answer at the top of the report: can this JSON be shipped, and if not, why not.

Each check gives one finding with a level; the worst level is the headline. ``fail``: not to be
shipped as it is; ``warn``: a person must look first; ``info`` only tells. Whether a check tested
the JSON is judged by the factors it recorded, not by file times: step 3 re-made with the same
factors leaves it valid.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from lib.closure import FIT_OK, BinState, ClosureBin
from lib.correction.auditor import AuditReport
from lib.run.changes import same_number
from lib.run.checks import steps_disagreement
from lib.report.formats import percent
from lib.report.outputs import CategoryRow, CheckOutputs, SampleOutputs

Level = Literal["ok", "info", "warn", "fail"]
_RANK = {"ok": 0, "info": 0, "warn": 1, "fail": 2}
HEADLINES = {0: "ready to ship", 1: "look before shipping", 2: "do not ship"}


@dataclass(frozen=True)
class Finding:
    """One check's outcome: its level, what was checked, and one sentence that says what was found."""

    level: Level
    topic: str
    text: str


@dataclass(frozen=True)
class Verdict:
    """All findings, in the order a physicist reads them."""

    findings: tuple[Finding, ...]

    @property
    def rank(self) -> int:
        return max((_RANK[f.level] for f in self.findings), default=2)

    @property
    def level(self) -> Level:
        return ("ok", "warn", "fail")[self.rank]  # type: ignore[return-value]

    @property
    def headline(self) -> str:
        return HEADLINES[self.rank]


def _names(rows: list[CategoryRow], limit: int = 8) -> str:
    shown = ", ".join(r.name for r in rows[:limit])
    return shown + (f" and {len(rows) - limit} more" if len(rows) > limit else "")


def deviation_text(b: ClosureBin) -> str:
    """``+4.2 % ± 3.1 %`` where the bin has a good fit, else what became of its fit (``not fitted``, ``fit failed``)."""
    if b.fit_quality == FIT_OK and math.isfinite(b.ratio):
        return f"{percent(b.ratio - 1.0)} ± {percent(b.ratio_err, sign=False)}"
    return str(BinState.NOT_FITTED if b.state == BinState.NOT_FITTED else BinState.FIT_FAILED)


def _categories(sample: SampleOutputs) -> Finding:
    rows = list(sample.rows)
    if not sample.has_fits and not sample.has_factors:
        return Finding("fail", "categories", "no fits and no factors in this directory: run --steps all")
    fitted = [r for r in rows if r.fit.quality == "ok"]
    failed = [r for r in rows if r.failed]
    missing = [r for r in rows if not r.fit.quality]
    fallback = [r for r in rows if r.fallback]
    parts = [f"{len(rows)} categories: {len(fitted)} fitted, {len(failed)} failed, {len(fallback)} with a fallback factor"]
    if failed:
        parts.append("failed: " + "; ".join(f"{r.name} ({r.fit.reason or 'no reason recorded'})" for r in failed[:6]))
    outliers = [r for r in fallback if not r.failed]
    if outliers:
        parts.append(f"fitted but replaced as outliers or out of band: {_names(outliers)}")
    if missing:
        parts.append(f"no fit recorded for {_names(missing)}")
    level: Level = "warn" if failed or fallback or missing else "ok"
    return Finding(level, "categories", "; ".join(parts))


def _retries(sample: SampleOutputs) -> Finding | None:
    retried = [r for r in sample.rows if r.retried and r.fit.quality == "ok"]
    if not retried:
        return None
    detail = "; ".join(f"{r.name} ({r.fit.label}, {r.fit.attempts} attempts)" for r in retried[:6])
    fits = "fit" if len(retried) == 1 else "fits"
    return Finding("info", "retries", f"{len(retried)} {fits} accepted after retries: {detail}")


def _json(sample: SampleOutputs) -> Finding:
    if sample.correction_json is None:
        return Finding("fail", "correction JSON", "no correction JSON in this directory: run --steps step3")
    differ = steps_disagreement(sample.provenance)
    if differ:
        return Finding(
            "fail", "correction JSON",
            f"the fits and the medians in this directory were made from different {' and '.join(differ)}: run --steps all",
        )  # fmt: skip
    written = sample.correction_json.stat().st_mtime
    tables = [sample.out.step_table(step) for step in ("step1", "step2", "step3")]
    newer = [path.name for path in tables if path.exists() and path.stat().st_mtime > written]
    if newer:
        return Finding(
            "fail", "correction JSON",
            f"{sample.correction_json.name} is older than {', '.join(newer)} (a later step 1, step 2 or --fixCat): run --steps step3",
        )  # fmt: skip
    return Finding("ok", "correction JSON", f"{sample.correction_json.name} written after the fits it is made of")


def _audit(audit: AuditReport | None, error: str | None) -> Finding | None:
    if error:
        return Finding("fail", "audit", f"the correction JSON does not load: {error}")
    if audit is None:
        return None
    if not audit.ok:
        flags = "; ".join(f"{name}: {reason}" for name, reason in audit.flags[:6])
        return Finding("fail", "audit", f"{len(audit.flagged)} of {len(audit.categories)} factors flagged: {flags}")
    lo, hi = audit.band
    return Finding(
        "ok", "audit",
        f"all {len(audit.categories)} factors inside [{lo:g}, {hi:g}] and within ×{audit.outlier_threshold:g} of their neighbours' median",
    )  # fmt: skip


def _not_this_json(check: CheckOutputs, audit: AuditReport | None, rerun: str) -> str | None:
    """Why ``check`` does not speak for the directory's JSON, judged by the factors it applied; None when it does, or
    without a JSON to compare with (its own finding says so)."""
    if audit is None:
        return None
    if check.tested_factors is None:
        return f"it does not record which factors it tested: re-run {rerun}"
    changed = [(c.name, check.tested_factors.get(c.name, math.nan), c.value) for c in audit.categories
               if not same_number(check.tested_factors.get(c.name), c.value)]  # fmt: skip
    if not changed:
        return None
    name, tested, now = changed[0]
    more = f" and {len(changed) - 1} more" if len(changed) > 1 else ""
    return f"it tested other factors than {audit.path.name} ({name} {tested:.4f} → {now:.4f}{more}): re-run {rerun}"


def _checked(level: Level, topic: str, text: str, check: CheckOutputs, audit: AuditReport | None, rerun: str) -> Finding:
    """The finding of a closure or Higgs check: a check of other factors than the JSON's is at least a warning."""
    stale = _not_this_json(check, audit, rerun)
    if stale is None:
        return Finding(level, topic, text)
    return Finding("warn" if _RANK[level] < _RANK["warn"] else level, topic, f"{text}; {stale}")


def _outcome(check: CheckOutputs, worst: ClosureBin) -> str:
    """``PASS: 7 bins tested, worst 1.5–1.7 GeV: +4.2 % ± 3.1 %`` (the worst bin's state where it has no good fit)."""
    tested = sum(b.tested for b in check.after)
    return f"{'PASS' if check.passed else 'FAIL'}: {tested} bins tested, worst {worst.low:g}–{worst.high:g} GeV: {deviation_text(worst)}"


def _closure(closure: CheckOutputs | None, audit: AuditReport | None) -> Finding:
    if closure is None:
        return Finding("warn", "closure", "closure not run: run --closure_test")
    worst = closure.worst()
    if worst is None:
        return Finding("fail", "closure", "closure tested no bin (every bin below closure.min_events)")
    text = _outcome(closure, worst)
    failing = [b for b in closure.after if b.verdict == "fail"]
    if failing:
        text += f"; {len(failing)} failing: " + ", ".join(f"{b.low:g}–{b.high:g}" for b in failing)
    return _checked("ok" if closure.passed else "fail", "closure", text, closure, audit, "--closure_test")


def _higgs(higgs: CheckOutputs | None, sample: SampleOutputs, audit: AuditReport | None) -> Finding | None:
    if higgs is None:
        return None
    worst = higgs.worst()
    if worst is None:
        return Finding("warn", "Higgs check", "Higgs check tested no bin")
    text = _outcome(higgs, worst)
    rerun = "--closure_test --validate-higgs"
    if sample.label != "MC":
        # Simulated signal with Data factors measures data against simulation, not the calibration.
        return _checked("info" if higgs.passed else "warn", "Higgs check", text + " (Data factors on simulated signal)", higgs, audit, rerun)
    return _checked("ok" if higgs.passed else "fail", "Higgs check", text, higgs, audit, rerun)


def _previous(audit: AuditReport | None, error: str | None) -> Finding | None:
    if error:
        return Finding("warn", "previous JSON", f"the previous JSON does not load: {error}")
    if audit is None or audit.previous_path is None:
        return None
    changes = [(c.name, c.relative_change) for c in audit.categories if c.relative_change is not None]
    if not changes:
        return None
    name, change = max(changes, key=lambda item: abs(item[1]) if math.isfinite(item[1]) else math.inf)
    return Finding("info", "previous JSON", f"against {audit.previous_path.name}: largest change {name} {percent(change)}")


def judge_outputs(
    sample: SampleOutputs,
    closure: CheckOutputs | None,
    higgs: CheckOutputs | None,
    audit: AuditReport | None,
    audit_error: str | None = None,
    previous_error: str | None = None,
) -> Verdict:
    """The findings of one output directory (``audit``: of its JSON, with the previous file if one was given)."""
    findings = [
        _categories(sample), _retries(sample), _json(sample), _audit(audit, audit_error), _closure(closure, audit),
        _higgs(higgs, sample, audit), _previous(audit, previous_error),
    ]  # fmt: skip
    return Verdict(tuple(f for f in findings if f is not None))
