"""A 3×3 heatmap of one pT bin as a plain HTML table: leading |η| region down, subleading across.

A table with background colours needs no script, no image and no font, prints as it shows, and
its numbers can be selected and copied; each cell carries its value, its error and a mark for a
borrowed (fallback) or audit-flagged factor.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from lib.categories import CategoryScheme
from lib.report.colors import Scale, text_colour
from lib.report.markup import esc, tag

__all__ = ["Cell", "grid"]


@dataclass(frozen=True)
class Cell:
    """What one category's cell shows: the coloured value, its text, a second line, marks and a tooltip."""

    value: float  # drives the colour
    text: str
    detail: str = ""
    marks: tuple[str, ...] = ()  # CSS classes: "fallback", "flagged"
    tooltip: str = ""


def grid(scheme: CategoryScheme, i_pt: int, cell_for: Callable[[str], Cell | None], scale: Scale, caption: str) -> str:
    """The table of pT bin ``i_pt``; ``cell_for(name)`` None leaves a grey, empty cell."""
    regions = scheme.region_names
    n_eta = scheme.n_eta
    header = tag("tr", [tag("th", "lead ↓ sub →", class_="corner")] + [tag("th", esc(r), scope="col") for r in regions])
    body = []
    for i1, lead in enumerate(regions):
        cells = [tag("th", esc(lead), scope="row")]
        for i2 in range(n_eta):
            name = scheme.names[n_eta * n_eta * i_pt + n_eta * i1 + i2]
            cell = cell_for(name)
            if cell is None:
                cells.append(tag("td", "–", class_="cell empty", title=f"{name}: no value"))
                continue
            background = scale.colour(cell.value)
            lines = esc(cell.text) + (tag("span", esc(cell.detail), class_="detail") if cell.detail else "")
            cells.append(
                tag(
                    "td", lines, class_=" ".join(("cell",) + cell.marks), title=cell.tooltip or name,
                    style=f"background:{background};color:{text_colour(background)}",
                )  # fmt: skip
            )
        body.append(tag("tr", cells))
    return tag("table", [tag("caption", esc(caption)), tag("thead", header), tag("tbody", body)], class_="grid")
