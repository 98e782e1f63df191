"""The fit-quality table with its fit-plot thumbnails, and the closure and Higgs tables.

The table has one row per category in the original's order, so it reads like the LaTeX tables;
failed, fallback and retried rows are coloured so that the rows to look at are found at a glance,
and each row links to the plot and the ROOT log of its fit.
"""

from __future__ import annotations

import math

from lib.config import WIDTH_DEFINITIONS
from lib.fitting.result import FitRow
from lib.report.markup import esc, image, link, num, pm, tag
from lib.report.outputs import CategoryRow, SampleOutputs, Validation, ValidationBin
from lib.report.verdict import deviation_text

__all__ = ["fit_table_section", "thumbnails_section", "validation_section"]

FIT_COLUMNS = (
    "category", "events", "σ_fit [GeV]", "median σ_pred [GeV]", "factor ± error", "factor from", "χ²/NDF",
    "status / covQual", "accepted rung", "attempts", "reason", "files",
)  # fmt: skip


def _row_class(row: CategoryRow) -> str | None:
    if row.failed:
        return "failed"
    if row.fallback:
        return "fallback"
    return "retried" if row.retried else None


def _files(row: CategoryRow) -> str:
    links = [link(path, text) for path, text in ((row.plot, "png"), (row.plot_pdf, "pdf"), (row.log, "log")) if path]
    return " ".join(links) if links else "–"


def _status(fit: FitRow) -> str:
    if fit.status < 0:
        return "–"
    return f"{fit.status} / {fit.cov_qual if fit.cov_qual >= 0 else '–'}"


# With a radiation component in the line shape (fit.fsr), its fraction and mean loss get columns of their own.
FSR_COLUMNS = ("FSR fraction", "FSR mean loss [GeV]")


def _radiating(sample: SampleOutputs) -> bool:
    return any(math.isfinite(r.fit.fsr_fraction) for r in sample.rows)


def _fit_row(row: CategoryRow, radiating: bool = False) -> str:
    fit, factor = row.fit, row.factor
    # A failed fit's sigma is its best attempt's: shown for diagnosis, struck through as unused.
    sigma = tag("span", esc(pm(fit.fit_val, fit.fit_err)), class_="unused") if row.failed else esc(pm(fit.fit_val, fit.fit_err))
    # pm() shows a dash for a fit without a radiation component.
    fsr = [tag("td", esc(pm(fit.fsr_fraction, fit.fsr_fraction_err)), class_="num"), tag("td", esc(pm(fit.fsr_scale, fit.fsr_scale_err)), class_="num")]
    cells = [
        tag("th", link(row.plot, row.name), scope="row"),
        tag("td", esc(f"{row.n_events:,}"), class_="num"),
        tag("td", sigma, class_="num"),
        tag("td", esc(pm(row.median.median_val_NonCal, row.median.median_err_NonCal)), class_="num"),
        tag("td", esc(pm(factor.calibration_factor, factor.calibration_factor_err)), class_="num"),
        tag("td", esc(factor.source or "–"), class_="source"),
        *(fsr if radiating else []),
        tag("td", esc(num(fit.chi2_ndf, 2)), class_="num"),
        tag("td", esc(_status(fit)), class_="num"),
        tag("td", esc(fit.label or "–")),
        tag("td", esc(fit.attempts or "–"), class_="num"),
        tag("td", esc(fit.reason or ""), class_="reason"),
        tag("td", _files(row)),
    ]
    return tag("tr", cells, class_=_row_class(row), id=f"fit-{row.name}")


def _width_note(definition: str) -> str:
    """What σ_fit is (``fit.width`` of the fits), or nothing where unknown (no fits yet, or two kinds after a config change)."""
    return f": {WIDTH_DEFINITIONS[definition]}" if definition in WIDTH_DEFINITIONS else ""


def fit_table_section(sample: SampleOutputs) -> str:
    """All categories of the report's own sample, one row each, failed/fallback/retried highlighted."""
    radiating = _radiating(sample)
    columns = (*FIT_COLUMNS[:6], *FSR_COLUMNS, *FIT_COLUMNS[6:]) if radiating else FIT_COLUMNS
    head = tag("thead", tag("tr", [tag("th", esc(c), scope="col") for c in columns]))
    body = tag("tbody", [_fit_row(r, radiating) for r in sample.rows])
    key = tag(
        "p",
        [tag("span", "failed fit", class_="key failed"), " ", tag("span", "fallback factor", class_="key fallback"), " ",
         tag("span", "accepted after retries", class_="key retried"),
         esc(f" · σ_fit{_width_note(sample.width_definition)}; a failed fit's is its best attempt's, not used."
             + (" The line shape radiates (fit.fsr): σ_fit is the detector's DCB alone." if radiating else ""))],
        class_="note",
    )  # fmt: skip
    return tag("section", [tag("h2", "Fit quality"), key, tag("div", tag("table", [head, body], class_="fits"), class_="scroll")], id="fits")


def thumbnails_section(sample: SampleOutputs) -> str:
    """Every fit plot in a grid (the PNGs themselves, scaled down), each linking to its full size."""
    figures = []
    for row in sample.rows:
        if not row.plot:
            continue
        thumb = image(row.plot, f"fit of {row.name}")
        caption = tag("figcaption", esc(f"{row.name} · factor {num(row.factor.calibration_factor, 3)}"))
        figures.append(tag("figure", thumb + caption, class_=" ".join(filter(None, ("thumb", _row_class(row))))))
    if not figures:
        return tag("section", [tag("h2", "Fit plots"), tag("p", "No fit plots (run without --no-plots to draw them).")], id="plots")
    return tag("section", [tag("h2", "Fit plots"), tag("div", figures, class_="thumbs")], id="plots")


def _verdict_cell(b: ValidationBin | None) -> str:
    if b is None:
        return tag("td", "–") + tag("td", "–")
    klass = {"pass": "pass", "fail": "fail"}.get(b.verdict, "untested")
    return tag("td", esc(deviation_text(b)), class_="num") + tag("td", link(b.plot, b.verdict), class_=klass)


def _validation_row(after: ValidationBin, before: ValidationBin | None, with_before: bool) -> str:
    cells = [
        tag("th", esc(f"{after.low:g}–{after.high:g}"), scope="row"),
        tag("td", esc(f"{after.nEvents:,}"), class_="num"),
        tag("td", esc(pm(after.fit_val, after.fit_err)), class_="num"),
        tag("td", esc(num(after.median_val)), class_="num"),
        _verdict_cell(after),
    ]
    if with_before:
        cells.append(_verdict_cell(before))
    return tag("tr", cells, class_="failed" if after.verdict == "fail" else None)


def validation_section(title: str, anchor: str, validation: Validation | None, what: str, what_binned: str) -> str:
    """A closure (after and, beside it, before calibration) or the Higgs check: verdict, figure, table.

    ``what``: how to run it, shown when it has not run; ``what_binned``: the binning variable.
    """
    if validation is None:
        return tag("section", [tag("h2", esc(title)), tag("p", esc(f"Not run yet: run {what}."))], id=anchor)
    with_before = bool(validation.before)
    columns = ["σ_pred bin [GeV]", "events", "σ_fit [GeV]", "median σ_pred [GeV]", "fit/median − 1", "verdict"]
    if with_before:
        columns += ["before: fit/median − 1", "before: verdict"]
    before = {(b.low, b.high): b for b in validation.before}
    head = tag("thead", tag("tr", [tag("th", esc(c), scope="col") for c in columns]))
    body = tag("tbody", [_validation_row(b, before.get((b.low, b.high)), with_before) for b in validation.after])
    lines = tag("ul", [tag("li", esc(line)) for line in validation.verdict_lines], class_="verdicts")
    figure = image(validation.plot, f"{title} figure", class_="wide") if validation.plot else ""
    note = tag("p", esc(f"Per bin of {what_binned}: fitted width over median predicted width, minus 1 (0 is perfect closure)."), class_="note")
    table = tag("div", [note, tag("table", [head, body], class_="validation")], class_="scroll")
    return tag("section", [tag("h2", esc(title)), lines, tag("div", [figure, table], class_="side")], id=anchor)
