"""One-page report of a calibration: the verdict, the factor maps, the fits, the closure, the provenance.

Built from the files of an output directory alone (``collect``), rendered as self-contained HTML
(``page``) and optionally as a PDF (``pdf``), written by ``build.write_report`` at the end of a run.
"""

from lib.report.build import write_report
from lib.report.runs import RunRecord, record_run

__all__ = ["write_report", "RunRecord", "record_run"]
