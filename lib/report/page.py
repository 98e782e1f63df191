"""The whole page: ``page.html`` (a Jinja2 template, its style inline, every value escaped) filled from the report's inputs.

Self-contained: system fonts, no script, and every image and link a relative path inside the
output directory (or its sibling's report), so the folder can be copied or opened offline.
"""

from __future__ import annotations

import math
import pickle
from datetime import datetime, timezone
from functools import cache
from pathlib import Path

import jinja2

from lib.config import WIDTH_DEFINITIONS
from lib.outputs import OutputDir
from lib.report.collect import ReportInputs, file_digest
from lib.report.factor_maps import change_section, factor_map_section, region_legend
from lib.report.formats import num, percent, pm
from lib.report.outputs import bin_plot
from lib.report.verdict import deviation_text

ICONS = {"ok": "✔", "info": "ℹ", "warn": "⚠", "fail": "✖"}
FIT_COLUMNS = (
    "category", "events", "σ_fit [GeV]", "median σ_pred [GeV]", "factor ± error", "factor from", "χ²/NDF",
    "status / covQual", "accepted rung", "attempts", "reason", "files",
)  # fmt: skip
# With a radiation component in the line shape (fit.fsr), its fraction and mean loss get columns of their own.
FSR_COLUMNS = ("FSR fraction", "FSR mean loss [GeV]")


class _CompiledPages(jinja2.FileSystemBytecodeCache):
    """Jinja2's per-user cache of compiled templates, keyed by the template's source, so a run need not compile the page.

    The cache only saves time: an entry that cannot be read or written is passed over.
    """

    def load_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        try:
            super().load_bytecode(bucket)
        except (OSError, EOFError, ValueError, TypeError, pickle.UnpicklingError):  # an entry cut short in its header
            bucket.reset()

    def dump_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        try:
            super().dump_bytecode(bucket)
        except OSError:
            pass


def _compiled_pages() -> _CompiledPages | None:
    """The cache of compiled templates, or None where the temp directory has no safe place for it."""
    try:
        return _CompiledPages()
    except (OSError, RuntimeError):
        return None


@cache
def _template() -> jinja2.Template:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).parent), autoescape=True, trim_blocks=True, lstrip_blocks=True,
        bytecode_cache=_compiled_pages(),
    )  # fmt: skip
    env.filters.update(
        count=lambda n: f"{n:,}", mib=lambda size: f"{size / 2**20:.1f} MiB", deviation=deviation_text,
        utc=lambda t: datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
    )  # fmt: skip
    env.globals.update(num=num, pm=pm, percent=percent)
    return env.get_template("page.html")


def _width_note(definition: str) -> str:
    """What σ_fit is (``fit.width`` of the fits), or nothing where unknown (no fits yet, or two kinds after a config change)."""
    return f": {WIDTH_DEFINITIONS[definition]}" if definition in WIDTH_DEFINITIONS else ""


def render_html(report: ReportInputs) -> str:
    """The report page of one output directory."""
    sample = report.sample
    flagged = {} if report.audit is None else {c.name: "; ".join(c.reasons) for c in report.audit.categories if c.reasons}
    radiating = any(math.isfinite(r.fit.fsr_fraction) for r in sample.rows)
    out = sample.out
    own = (out.report_file("html"), out.report_file("pdf"))
    return _template().render(
        report=report, verdict=report.verdict, sample=sample, icons=ICONS, regions=report.scheme.region_names,
        when=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        factors=factor_map_section((sample, report.other), report.scheme, sample.label, flagged),
        changes=change_section(report.audit, report.scheme), region_legend=region_legend(report.scheme),
        radiating=radiating, shared_fsr=sample.shared_fsr, out_shared=OutputDir.SHARED_FSR_JSON,
        fit_columns=(*FIT_COLUMNS[:6], *FSR_COLUMNS, *FIT_COLUMNS[6:]) if radiating else FIT_COLUMNS,
        width_note=_width_note(sample.width_definition), bin_plot=lambda kind, b: bin_plot(out, kind, b),
        json_digest=file_digest(sample.correction_json) if sample.correction_json else "",
        outputs=sorted(p for p in out.top_level_outputs() if p not in own),
    ) + "\n"  # fmt: skip
