"""Where the numbers come from: the JSON's hash, the inputs, the configuration, the runs and versions.

The input files are listed as they are on disk now and fingerprinted the way the reduction cache
does (path, size, mtime): a fingerprint equal to the one recorded in ``provenance.json`` says the
report describes these very files, a different one that they changed since the fits.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from lib.config import Config
from lib.errors import CalibrationError
from lib.io.cache import inputs_fingerprint
from lib.io.reader import find_files
from lib.outputs import OutputDir
from lib.report.markup import esc, link, tag
from lib.report.outputs import SampleOutputs
from lib.report.runs import RunRecord

__all__ = ["InputFiles", "find_inputs", "provenance_section", "outputs_section", "file_digest"]


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


def _utc(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _mib(size: int) -> str:
    return f"{size / 2**20:.1f} MiB"


def _pairs(rows: list[tuple[str, str]]) -> str:
    """A two-column key/value table; values are markup already."""
    return tag("table", tag("tbody", [tag("tr", [tag("th", esc(k), scope="row"), tag("td", v)]) for k, v in rows]), class_="pairs")


def _inputs_rows(sample: SampleOutputs, inputs: InputFiles) -> list[tuple[str, str]]:
    recorded = str(sample.provenance.get("inputs_fingerprint", "not recorded"))
    rows = [("input root", esc(inputs.root)), ("input glob", tag("code", esc(inputs.pattern)))]
    if inputs.error:
        return rows + [("input files", esc(f"not found now: {inputs.error}")), ("fingerprint recorded", tag("code", esc(recorded)))]
    total = sum(size for _, size in inputs.files)
    listing = tag("details", [tag("summary", esc(f"{len(inputs.files)} files, {_mib(total)}")),
                              tag("ul", [tag("li", esc(f"{path} ({_mib(size)})")) for path, size in inputs.files])])  # fmt: skip
    same = inputs.fingerprint == recorded
    verdict = "the files read by steps 1-2" if same else "differs: the inputs changed since steps 1-2 read them"
    rows += [
        ("input files", listing),
        ("fingerprint recorded", tag("code", esc(recorded))),
        ("fingerprint now", tag("code", esc(inputs.fingerprint)) + esc(f" ({verdict})")),
    ]
    skipped = sample.provenance.get("skipped_files") or []
    if skipped:
        rows.append(("skipped as damaged", esc(", ".join(map(str, skipped)))))  # type: ignore[arg-type]
    return rows


def _runs_table(runs: list[RunRecord]) -> str:
    if not runs:
        return tag("p", "No run of this directory was recorded (it was filled before runs were recorded).")
    head = tag("thead", tag("tr", [tag("th", esc(c), scope="col") for c in ("started (UTC)", "command", "wall time")]))
    body = tag("tbody", [tag("tr", [tag("td", esc(r.started_utc.replace("T", " ").rstrip("Z"))), tag("td", tag("code", esc(r.command))), tag("td", esc(f"{r.seconds:.1f} s"), class_="num")])
                         for r in runs])  # fmt: skip
    return tag("div", tag("table", [head, body], class_="runs"), class_="scroll")


def provenance_section(sample: SampleOutputs, inputs: InputFiles, runs: list[RunRecord]) -> str:
    """JSON identity, inputs, configuration, the runs on this directory and the versions of the last one."""
    rows: list[tuple[str, str]] = []
    if sample.correction_json is not None:
        stat = sample.correction_json.stat()
        rows.append(("correction JSON", link(sample.correction_json.name, sample.correction_json.name)
                     + esc(f" · sha256 {file_digest(sample.correction_json)} · {stat.st_size:,} bytes · written {_utc(stat.st_mtime)}")))  # fmt: skip
    rows += _inputs_rows(sample, inputs)
    prov = sample.provenance
    tuned = prov.get("tuned_categories") or {}
    rows += [
        ("config fingerprint", tag("code", esc(prov.get("config_fingerprint", "not recorded")))
         + esc(f" (without fit.overrides: {prov.get('config_fingerprint_without_overrides', 'not recorded')})")),
        ("tuned by fit.overrides", esc(", ".join(f"{k} ({', '.join(v)})" for k, v in tuned.items()) if tuned else "none")),  # type: ignore[union-attr]
        ("fits", esc(f"{'binned' if prov.get('binned') else 'unbinned'}, {prov.get('sample', sample.label)}, ebe-calib {prov.get('tool_version', '?')}")),
    ]  # fmt: skip
    if runs:
        versions = ", ".join(f"{k} {v}" for k, v in runs[-1].versions.items())
        rows.append(("versions (last run)", esc(versions)))
    return tag("section", [tag("h2", "Provenance"), _pairs(rows), tag("h3", "Runs on this directory"), _runs_table(runs)], id="provenance")


def outputs_section(out_dir: Path) -> str:
    """Every top-level output of the directory, linked, with its size (the report's own files left out)."""
    own = (OutputDir.REPORT_HTML, OutputDir.REPORT_PDF)
    files = sorted(p for p in OutputDir(Path(out_dir)).top_level_outputs() if p.name not in own)
    items = [tag("li", link(p.name, p.name) + esc(f" ({p.stat().st_size:,} bytes)")) for p in files]
    return tag("section", [tag("h2", "All outputs"), tag("ul", items, class_="outputs")], id="outputs")
