"""One-page report of a calibration: the verdict, the factor maps, the fits, the closure, the provenance.

Built from the files of an output directory alone (``collect``), rendered as self-contained HTML
(``page``) and optionally as a PDF (``pdf``). ``write_report`` runs at the end of every successful
run, so the report always shows what the directory holds now: a later ``--fixCat``, step 3 or
closure run rewrites it. The other sample's report (Data beside MC) shows this sample's factors and
their ratio, so it is rewritten too when it exists. Both files are written atomically with the
umask's mode, like every other output.
"""

from __future__ import annotations

from pathlib import Path

from lib.config import Config
from lib.io.atomic import write_text_atomic
from lib.outputs import OutputDir
from lib.report.collect import collect
from lib.report.page import render_html
from lib.report.runs import RunRecord, run_record

__all__ = ["write_report", "RunRecord", "run_record"]


def _write(out: OutputDir, config: Config, pdf: bool) -> Path:
    report = collect(out.path, config)
    html_path = write_text_atomic(out.report_file("html"), render_html(report))
    if pdf:
        from lib.report.pdf import write_pdf

        write_pdf(report, out.report_file("pdf"))
    return html_path


def write_report(out_dir: Path, config: Config, pdf: bool = False) -> Path:
    """Write the directory's report (``pdf``: also the PDF); rewrite the sibling's report if it has one.

    The sibling's PDF is rewritten only when it already has one, so its files keep agreeing.
    Returns the path of ``report.html``.
    """
    out = OutputDir(Path(out_dir))
    path = _write(out, config, pdf)
    other = out.sibling()
    if other.report_file("html").exists():
        _write(other, config, other.report_file("pdf").exists())
    return path
