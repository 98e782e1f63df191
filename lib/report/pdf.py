"""``report.pdf``: the same report as pages for a logbook or a meeting, drawn with matplotlib's PDF backend
(no external binary): the verdict, the factor maps, the fit table, the fit plots, the closure, the Higgs check, the provenance."""

from __future__ import annotations

import math
import textwrap
from pathlib import Path
from typing import Any

from lib.io.atomic import atomic_path
from lib.report.collect import ReportInputs
from lib.report.factor_maps import factor_maps, text_colour
from lib.report.formats import num, pm
from lib.report.outputs import CheckOutputs, SampleOutputs
from lib.report.verdict import deviation_text

A4_LANDSCAPE = (11.69, 8.27)
PAGE_DPI = 200
LEVEL_COLOURS = {"ok": "#1e8e3e", "info": "#1967d2", "warn": "#e37400", "fail": "#c5221f"}
ROW_COLOURS = {"failed": "#fde0dd", "fallback": "#fff1c9", "retried": "#e5effb"}


def _text_page(pdf: Any, title: str, lines: list[tuple[str, str]]) -> None:
    """A page of wrapped lines, each in its level's colour."""
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=A4_LANDSCAPE)
    fig.text(0.05, 0.94, title, fontsize=18, weight="bold")
    y = 0.88
    for colour, line in lines:
        for part in textwrap.wrap(line, 130) or [""]:
            fig.text(0.05, y, part, fontsize=10, color=colour, family="DejaVu Sans")
            y -= 0.028
    pdf.savefig(fig)
    plt.close(fig)


def _verdict_page(pdf: Any, report: ReportInputs) -> None:
    symbols = {"ok": "OK", "info": "i", "warn": "!", "fail": "X"}
    lines = [(LEVEL_COLOURS[report.verdict.level], f"Verdict: {report.verdict.headline.upper()}"), ("#000000", "")]
    lines += [(LEVEL_COLOURS[f.level], f"[{symbols[f.level]}] {f.topic}: {f.text}") for f in report.verdict.findings]
    _text_page(pdf, report.title, lines)


def _factor_page(pdf: Any, report: ReportInputs) -> None:
    import matplotlib.pyplot as plt
    from matplotlib.colors import to_rgb

    maps = factor_maps((report.sample, report.other))
    if not maps:
        return
    scheme = report.scheme
    n = scheme.n_eta
    fig, axes = plt.subplots(len(maps), scheme.n_pt, figsize=A4_LANDSCAPE, squeeze=False)
    for row, factor_map in enumerate(maps):
        for i in range(scheme.n_pt):
            ax = axes[row][i]
            cells = [[factor_map.values.get(scheme.names[n * n * i + n * a + b], (math.nan, math.nan)) for b in range(n)] for a in range(n)]
            colours = [[factor_map.scale.colour(value) for value, _ in line] for line in cells]
            ax.imshow([[to_rgb(c) for c in line] for line in colours])
            for a in range(n):
                for b in range(n):
                    value, error = cells[a][b]
                    ax.text(b, a, f"{num(value, 3)}\n±{num(error, 3)}", ha="center", va="center", fontsize=7, color=text_colour(colours[a][b]))
            ax.set_xticks(range(n), scheme.region_names)
            ax.set_yticks(range(n), scheme.region_names)
            ax.set_title(f"{factor_map.label} {scheme.pt_edges[i]:g}-{scheme.pt_edges[i + 1]:g} GeV", fontsize=9)
    fig.suptitle("Calibration factors (rows: leading |eta| region, columns: subleading)")
    fig.subplots_adjust(hspace=0.4)
    pdf.savefig(fig)
    plt.close(fig)


def _fit_table_page(pdf: Any, sample: SampleOutputs) -> None:
    import matplotlib.pyplot as plt

    columns = ["category", "events", "sigma_fit", "median", "factor", "chi2/NDF", "status", "rung", "att.", "from / reason"]
    cells, colours = [], []
    for r in sample.rows:
        fit, factor = r.fit, r.factor
        why = fit.reason if r.failed else (factor.source if r.fallback else "")
        cells.append([r.name, f"{r.n_events:,}", pm(fit.fit_val, fit.fit_err), num(r.median.median_val_NonCal),
                      pm(factor.calibration_factor, factor.calibration_factor_err), num(fit.chi2_ndf, 2),
                      "-" if fit.status < 0 else f"{fit.status}/{fit.cov_qual}", fit.label[:28], str(fit.attempts), why[:60]])  # fmt: skip
        colours.append([ROW_COLOURS.get(r.highlight, "#ffffff")] * len(columns))
    fig = plt.figure(figsize=A4_LANDSCAPE)
    ax = fig.add_axes((0.02, 0.02, 0.96, 0.9))
    ax.axis("off")
    table = ax.table(cellText=cells, colLabels=columns, cellColours=colours, loc="upper center", cellLoc="left")
    table.auto_set_font_size(False)
    table.set_fontsize(7.5)
    table.auto_set_column_width(list(range(len(columns))))
    table.scale(1.0, 1.1)
    fig.text(0.02, 0.95, f"Fit quality, {sample.label} {sample.year} (red: failed, yellow: fallback, blue: retried)", fontsize=12)
    pdf.savefig(fig)
    plt.close(fig)


def _scaled(path: Path, width: float) -> Any:
    """The PNG as an RGB array reduced to about ``width`` pixels: full-size fit plots would make the page slow to write and large."""
    import numpy as np
    from PIL import Image

    with Image.open(path) as image:
        rgb = image.convert("RGB")
        return np.asarray(rgb.reduce(max(1, int(rgb.width // width))))


def _images_page(pdf: Any, out_dir: Path, images: list[tuple[str, str]], title: str, columns: int) -> None:
    """``(relative path, caption)`` images in a grid on one page, each at about the resolution it is printed at."""
    import matplotlib.pyplot as plt

    if not images:
        return
    rows = math.ceil(len(images) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=A4_LANDSCAPE, squeeze=False)
    pixels = A4_LANDSCAPE[0] / columns * PAGE_DPI
    for ax in axes.flat:
        ax.axis("off")
    for ax, (path, caption) in zip(axes.flat, images):
        ax.imshow(_scaled(out_dir / path, pixels), interpolation="none")  # embedded as is, not resampled
        ax.set_title(caption, fontsize=6 if columns > 3 else 10)
    fig.suptitle(title)
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=0.92, wspace=0.04, hspace=0.2)
    pdf.savefig(fig, dpi=PAGE_DPI)
    plt.close(fig)


def _validation_lines(validation: CheckOutputs | None, not_run: str) -> list[tuple[str, str]]:
    if validation is None:
        return [("#000000", not_run)]
    lines = [("#000000", line) for line in validation.verdict_lines] + [("#000000", "")]
    for b in validation.after:
        colour = LEVEL_COLOURS["fail"] if b.verdict == "fail" else "#000000"
        lines.append((colour, f"{b.low:g}-{b.high:g} GeV: {b.nEvents:,} events, fit/median - 1 = {deviation_text(b)}: {b.verdict}"))
    return lines


def _provenance_lines(report: ReportInputs) -> list[tuple[str, str]]:
    prov = report.sample.provenance
    lines = [
        ("#000000", f"correction JSON: {report.sample.correction_json}"),
        ("#000000", f"inputs: {report.inputs.root} / {report.inputs.pattern}: {len(report.inputs.files)} files, fingerprint "
                    f"{report.inputs.fingerprint} (recorded {prov.get('inputs_fingerprint', 'not recorded')})"),
        ("#000000", f"config fingerprint {prov.get('config_fingerprint', 'not recorded')}"),
    ]  # fmt: skip
    lines += [("#000000", f"{r.started_utc}  {r.command}  ({r.seconds:.1f} s)") for r in report.runs]
    if report.runs:
        lines.append(("#000000", "versions: " + ", ".join(f"{k} {v}" for k, v in report.runs[-1].versions.items())))
    return lines


def write_pdf(report: ReportInputs, target: Path) -> Path:
    """Write the report's pages to ``target`` atomically."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.backends.backend_pdf import PdfPages

    out_dir = report.sample.out.path
    with atomic_path(target) as tmp:
        with PdfPages(tmp) as pdf:
            _verdict_page(pdf, report)
            _factor_page(pdf, report)
            _fit_table_page(pdf, report.sample)
            _images_page(pdf, out_dir, [(r.plot, r.name) for r in report.sample.rows if r.plot], "Fit plots", 6)
            _text_page(pdf, "Closure", _validation_lines(report.closure, "closure not run (--closure_test)"))
            if report.closure is not None and report.closure.plot:
                _images_page(pdf, out_dir, [(report.closure.plot, "closure")], "Closure", 1)
            if report.higgs is not None:
                _text_page(pdf, "Higgs check", _validation_lines(report.higgs, ""))
            _text_page(pdf, "Provenance", _provenance_lines(report))
    return Path(target)
