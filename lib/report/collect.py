"""Gather everything one report shows, once, for the HTML page and the PDF alike.

The input files are fingerprinted now as the reduction cache does, to compare with the fingerprint
in ``provenance.json``. The audit is the one ``install`` runs, so the report flags exactly what
installing would refuse. A JSON or previous JSON that does not load becomes a finding, not an
error: the report is where the user looks to see what went wrong.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from lib.categories import CategoryScheme
from lib.config import Config
from lib.correction.auditor import AuditReport, audit_correction
from lib.correction.writer import load_correction
from lib.errors import CalibrationError
from lib.io.cache import inputs_fingerprint
from lib.io.reader import find_files
from lib.outputs import OutputDir
from lib.report.outputs import CheckOutputs, SampleOutputs, read_check, read_sample
from lib.report.runs import RunRecord
from lib.report.verdict import Verdict, judge_outputs


@dataclass(frozen=True)
class InputFiles:
    """The sample's input files now: root, glob, (path, bytes) per file, their fingerprint, or why none were found."""

    root: Path
    pattern: str
    files: tuple[tuple[str, int], ...]
    fingerprint: str | None
    error: str | None = None


def find_inputs(sample: SampleOutputs, config: Config) -> InputFiles:
    """The files the directory's steps 1-2 read, found again with the configured glob."""
    root = Path(str(sample.provenance.get("input_path") or config.input.stage1_path))
    pattern = config.input.mc_glob if sample.label == "MC" else config.input.data_glob
    try:
        files = find_files(root, pattern, sample.year)
    except CalibrationError as err:
        return InputFiles(root, pattern, (), None, str(err))
    return InputFiles(root, pattern, tuple((str(f), f.stat().st_size) for f in files), inputs_fingerprint(files))


def file_digest(path: Path) -> str:
    """First 16 hex digits of the file's SHA-256: names exactly which JSON the report speaks of."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


@dataclass(frozen=True)
class ReportInputs:
    """One directory's outputs, the other sample's beside it, the checks and the verdict."""

    title: str
    scheme: CategoryScheme
    sample: SampleOutputs
    other: SampleOutputs | None
    closure: CheckOutputs | None
    higgs: CheckOutputs | None
    audit: AuditReport | None
    verdict: Verdict
    inputs: InputFiles
    runs: list[RunRecord]
    sibling_report: str | None  # the other sample's report.html, relative to this one


def _previous(runs: list[RunRecord]) -> Path | None:
    """The ``--previous`` of the latest run that gave one: a later closure run keeps the comparison."""
    return next((Path(r.previous) for r in reversed(runs) if r.previous), None)


def _audit(sample: SampleOutputs, config: Config, previous: Path | None) -> tuple[AuditReport | None, str | None, str | None]:
    """The audit of the directory's JSON; its error, and the previous file's, as text."""
    previous_error = None
    if previous is not None:
        try:
            load_correction(previous)
        except CalibrationError as err:
            previous, previous_error = None, str(err)
    if sample.correction_json is None:
        return None, None, previous_error
    try:
        audit = audit_correction(sample.correction_json, config, previous)
    except CalibrationError as err:
        return None, str(err), previous_error
    return audit, None, previous_error


def collect(out: OutputDir, config: Config) -> ReportInputs:
    """Read the directory (and its sibling of the other sample, when there is one) and judge it."""
    scheme = CategoryScheme.from_config(config.categories)
    sample, sibling = read_sample(out, scheme), out.sibling()
    other = read_sample(sibling, scheme) if sibling.path.is_dir() else None
    closure, higgs = read_check(out, "closure"), read_check(out, "higgs")
    runs = out.read_runs()
    audit, audit_error, previous_error = _audit(sample, config, _previous(runs))
    verdict = judge_outputs(sample, closure, higgs, audit, audit_error, previous_error)
    sibling_report = out.sibling_report_link()
    return ReportInputs(
        title=f"EBE calibration {out.path.name}", scheme=scheme, sample=sample, other=other, closure=closure, higgs=higgs,
        audit=audit, verdict=verdict, inputs=find_inputs(sample, config), runs=runs, sibling_report=sibling_report,
    )  # fmt: skip
