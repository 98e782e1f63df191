"""The whole page: the verdict on top, then the sections, with its style inline.

Self-contained by construction: the only style is the ``<style>`` element below (system fonts, no
web font), there is no script, and every image and link is a relative path inside the output
directory (or its sibling's report), so the folder can be copied, zipped or opened offline.
"""

from __future__ import annotations

from datetime import datetime, timezone

from lib.report.collect import ReportInputs
from lib.report.factor_maps import change_section, factor_map_section
from lib.report.markup import esc, link, tag
from lib.report.provenance import outputs_section, provenance_section
from lib.report.tables import fit_table_section, thumbnails_section, validation_section

__all__ = ["render_html"]

ICONS = {"ok": "✔", "info": "ℹ", "warn": "⚠", "fail": "✖"}

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; margin: 0; color: #1a1a1a; background: #fafafa; }
main { max-width: 1380px; margin: 0 auto; padding: 0 20px 40px; }
header.verdict { padding: 16px 20px; border-bottom: 4px solid; }
header.verdict.ok { background: #e6f4ea; border-color: #1e8e3e; }
header.verdict.warn { background: #fff4e0; border-color: #e37400; }
header.verdict.fail { background: #fce8e6; border-color: #c5221f; }
h1 { margin: 0 0 6px; font-size: 24px; }
.headline { font-size: 22px; font-weight: 700; margin: 4px 0 10px; text-transform: uppercase; letter-spacing: 0.03em; }
.findings { list-style: none; padding: 0; margin: 0; }
.findings li { margin: 3px 0; font-size: 15px; }
.findings .icon { display: inline-block; width: 1.4em; font-weight: 700; }
.findings .topic { font-weight: 600; margin-right: 0.4em; }
.findings li.ok .icon { color: #1e8e3e; } .findings li.info .icon { color: #1967d2; }
.findings li.warn .icon { color: #e37400; } .findings li.fail .icon { color: #c5221f; }
.meta { color: #555; font-size: 13px; margin-top: 8px; }
nav { position: sticky; top: 0; background: #fff; border-bottom: 1px solid #ddd; padding: 6px 20px; font-size: 14px; z-index: 2; }
nav a { margin-right: 14px; }
section { margin-top: 28px; }
h2 { font-size: 20px; border-bottom: 1px solid #ccc; padding-bottom: 4px; }
h3 { font-size: 15px; margin: 14px 0 6px; }
.note { color: #555; font-size: 13px; }
.legends { display: flex; gap: 32px; flex-wrap: wrap; }
.legend { display: flex; align-items: center; gap: 6px; font-size: 13px; }
.ramp { display: inline-block; width: 160px; height: 12px; border: 1px solid #999; }
.ptbin { display: inline-block; vertical-align: top; margin: 0 28px 10px 0; }
.grids { display: flex; gap: 14px; }
table.grid { border-collapse: separate; border-spacing: 2px; }
table.grid caption { font-weight: 600; font-size: 13px; }
table.grid th { font-size: 12px; font-weight: 600; color: #444; padding: 0 4px; }
table.grid th.corner { font-size: 10px; font-weight: 400; color: #777; }
td.cell { min-width: 62px; padding: 0 4px; height: 40px; text-align: center; font-size: 14px; font-variant-numeric: tabular-nums; border-radius: 3px; }
td.cell .detail { display: block; font-size: 10.5px; opacity: 0.85; white-space: nowrap; }
td.cell.empty { background: #eee; color: #999; }
td.cell.fallback { outline: 2px dashed #202020; outline-offset: -4px; }
td.cell.flagged { outline: 3px solid #c5221f; outline-offset: -3px; }
.scroll { overflow-x: auto; }
table.fits, table.validation, table.runs { border-collapse: collapse; font-size: 13px; background: #fff; }
table.fits th, table.fits td, table.validation th, table.validation td, table.runs th, table.runs td { border: 1px solid #ddd; padding: 3px 6px; }
table.fits thead th, table.validation thead th, table.runs thead th { background: #f0f0f0; position: sticky; top: 0; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.source { font-size: 12px; max-width: 260px; overflow-wrap: anywhere; }
table.fits tbody th { white-space: nowrap; text-align: left; }
table.fits td { vertical-align: middle; }
td.reason { font-size: 12px; max-width: 340px; color: #7a1010; }
tr.failed { background: #fde0dd; } tr.fallback { background: #fff1c9; } tr.retried { background: #e5effb; }
.unused { text-decoration: line-through; color: #888; }
.key { padding: 1px 6px; border: 1px solid #ccc; border-radius: 3px; }
.key.failed { background: #fde0dd; } .key.fallback { background: #fff1c9; } .key.retried { background: #e5effb; }
td.pass { color: #1e8e3e; font-weight: 600; } td.fail { color: #c5221f; font-weight: 600; } td.untested { color: #777; }
.thumbs { display: grid; grid-template-columns: repeat(auto-fill, minmax(210px, 1fr)); gap: 10px; }
figure.thumb { margin: 0; background: #fff; border: 2px solid #ddd; padding: 4px; }
figure.thumb.failed { border-color: #c5221f; } figure.thumb.fallback { border-color: #e3a000; } figure.thumb.retried { border-color: #5b8fd9; }
figure.thumb img { width: 100%; height: auto; display: block; }
figure.thumb figcaption { font-size: 12px; text-align: center; }
img.wide { width: 520px; max-width: 100%; height: auto; border: 1px solid #ddd; background: #fff; }
.side { display: flex; gap: 20px; align-items: flex-start; flex-wrap: wrap; }
td.pass a, td.fail a, td.untested a { color: inherit; }
ul.verdicts { font-size: 14px; }
table.pairs { border-collapse: collapse; font-size: 13px; }
table.pairs th { text-align: left; vertical-align: top; padding: 3px 12px 3px 0; color: #444; white-space: nowrap; }
table.pairs td { padding: 3px 0; }
ul.outputs { columns: 3; font-size: 13px; }
code { font-size: 12px; }
table.runs td:first-child { white-space: nowrap; }
"""


def _verdict_header(report: ReportInputs) -> str:
    verdict = report.verdict
    findings = tag(
        "ul",
        [tag("li", [tag("span", ICONS[f.level], class_="icon"), tag("span", esc(f.topic), class_="topic"), esc(f.text)], class_=f.level)
         for f in verdict.findings],
        class_="findings",
    )  # fmt: skip
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    meta = tag("p", esc(f"{report.sample.out_dir} · report written {when}"), class_="meta")
    return tag(
        "header", [tag("h1", esc(report.title)), tag("p", esc(verdict.headline), class_="headline"), findings, meta],
        class_=f"verdict {verdict.level}",
    )  # fmt: skip


def _nav(report: ReportInputs) -> str:
    anchors = [("factors", "factor map"), ("fits", "fit quality"), ("plots", "fit plots"), ("closure", "closure")]
    if report.higgs is not None:
        anchors.append(("higgs", "Higgs check"))
    if report.audit is not None and report.audit.previous_path is not None:
        anchors.append(("change", "change vs previous"))
    anchors += [("provenance", "provenance"), ("outputs", "all outputs")]
    links = [tag("a", esc(text), href=f"#{anchor}") for anchor, text in anchors]
    if report.sibling_report:
        links.append(link(report.sibling_report, f"{report.other.label} report" if report.other else "other report"))  # type: ignore[union-attr]
    return tag("nav", links)


def render_html(report: ReportInputs) -> str:
    """The report page of one output directory."""
    flagged = {} if report.audit is None else {c.name: "; ".join(c.reasons) for c in report.audit.categories if c.reasons}
    binning = "calibrated σ_pred"
    sections = [
        factor_map_section((report.sample, report.other), report.scheme, report.sample.label, flagged),
        fit_table_section(report.sample),
        thumbnails_section(report.sample),
        validation_section("Closure", "closure", report.closure, "--closure_test", binning),
    ]
    if report.higgs is not None:
        sections.append(validation_section("Higgs check", "higgs", report.higgs, "--closure_test --validate-higgs", binning))
    sections += [
        change_section(report.audit, report.scheme),
        provenance_section(report.sample, report.inputs, report.runs),
        outputs_section(report.sample.out_dir),
    ]
    head = (
        '<meta charset="utf-8" /><meta name="viewport" content="width=device-width, initial-scale=1" />'
        + tag("title", esc(f"{report.title}: {report.verdict.headline}"))
        + tag("style", STYLE)
    )
    body = _verdict_header(report) + _nav(report) + tag("main", sections)
    return "<!DOCTYPE html>\n" + tag("html", tag("head", head) + tag("body", body), lang="en") + "\n"
