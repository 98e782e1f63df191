"""One-page report of a calibration (docs/report.md), built from the files of an output directory alone (``collect``),
rendered as self-contained HTML (``page``) and optionally as a PDF (``pdf``) at the end of every successful run."""

from __future__ import annotations

from pathlib import Path

from lib.config import Config
from lib.io.atomic import write_text_atomic
from lib.outputs import OutputDir
from lib.report.collect import collect
from lib.report.page import render_html
from lib.report.runs import run_record


def _write(out: OutputDir, config: Config, pdf: bool) -> Path:
    report = collect(out, config)
    html_path = write_text_atomic(out.report_file("html"), render_html(report))
    if pdf:
        from lib.report.pdf import write_pdf

        write_pdf(report, out.report_file("pdf"))
    return html_path


def write_report(out_dir: Path, config: Config, pdf: bool = False) -> Path:
    """Write the directory's report (``pdf``: also the PDF) and return its ``report.html``; rewrite the other sample's
    report if it has one (it shows this sample's factors too), its PDF only where it has one."""
    out = OutputDir(Path(out_dir))
    path = _write(out, config, pdf)
    other = out.sibling()
    if other.report_file("html").exists():
        _write(other, config, other.report_file("pdf").exists())
    return path
