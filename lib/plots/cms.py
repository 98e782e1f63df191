"""The CMS look of every figure: mplhep's CMS style, the main panel over a ratio panel, and the header ("CMS" and its
status on the left; the sample and its year's centre-of-mass energy on the right)."""

from __future__ import annotations

import re
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator

from lib.plots.save import PNG_DPI

# The proton-proton centre-of-mass energy in TeV of each calendar year with collisions: Run 2 at 13,
# Run 3 at 13.6. A fact of the LHC that only the figures print, not a setting of the calibration.
ENERGY_TEV = {2015: 13.0, 2016: 13.0, 2017: 13.0, 2018: 13.0, 2022: 13.6, 2023: 13.6, 2024: 13.6, 2025: 13.6, 2026: 13.6}
# A year key: the calendar year, then its era if any (2016preVFP, 2022postEE, 2023BPix, 2018_RERECO).
_CALENDAR_YEAR = re.compile(r"(\d{4})(?!\d)")
# A long right-hand label is set smaller, down to this share of its size, to keep an em clear of the status.
SMALLEST_SHARE = 0.6


def centre_of_mass(year: str) -> str:
    """The energy the header gives ``year`` (an output directory's year key): "(13 TeV)", "(13.6 TeV)", or empty.

    A year ``ENERGY_TEV`` lacks gets no energy rather than a guess: a missing energy is visibly
    incomplete, a wrong one is a false statement on a figure that may go into a note.
    """
    match = _CALENDAR_YEAR.match(year)
    energy = ENERGY_TEV.get(int(match.group(1))) if match else None
    return f"({energy:g} TeV)" if energy is not None else ""


@dataclass(frozen=True)
class Header:
    """A figure's right-hand header: its text (the sample and year, a category) and the output directory's year key,
    which alone decides the energy."""

    text: str
    year: str

    def right(self) -> str:
        """The text, then the year's centre-of-mass energy."""
        return f"{self.text} {centre_of_mass(self.year)}".strip()


@contextmanager
def cms_style() -> Iterator[Any]:
    """pyplot on the Agg backend in mplhep's CMS style for what is built, measured, drawn and saved inside; yields pyplot.

    A figure is saved inside it too: matplotlib reads fonts and the minus sign from the style when
    it draws, and caches text metrics and parsed mathtext without those settings, so text drawn
    outside would come out in another font.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import mplhep

    with plt.style.context(mplhep.style.CMS):
        yield plt


def two_panels(plt: Any, hspace: float) -> tuple[Any, Any, Any]:
    """A 10 x 10 inch figure: the main panel over a ratio (or pull) panel a third of its height, sharing x.

    The ratio panel gets up to five tick intervals: the automatic count would leave it only its ends and zero.
    """
    from matplotlib.ticker import MaxNLocator

    fig, (ax, rax) = plt.subplots(2, 1, figsize=(10, 10), dpi=PNG_DPI, sharex=True, gridspec_kw={"height_ratios": [3, 1], "hspace": hspace})
    rax.yaxis.set_major_locator(MaxNLocator(nbins=5, steps=[1, 2, 5, 10]))
    return fig, ax, rax


def cms_label(ax: Any, simulation: bool, right: str, fontsize: float) -> tuple[Any, Any, Any]:
    """Write the header above ``ax``: "CMS", then "Preliminary" ("Simulation Preliminary" for a simulated sample), and
    ``right`` (a ``Header.right()``) on the right; return the three texts.

    The status starts with a space: mplhep's automatic gap after "CMS" reads "CMSPreliminary".
    The texts sit in axes coordinates, so ``ax`` keeps its final position from here on.
    """
    import mplhep

    status = "Simulation Preliminary" if simulation else "Preliminary"
    texts = mplhep.cms.label(ax=ax, llabel=f" {status}", rlabel=right, fontsize=fontsize)
    return texts[0], texts[1], texts[2]


def fit_right_label(status: Any, right: Any, size: float, renderer: Any) -> None:
    """Set ``right`` at ``size``, or smaller where it would come within an em of ``status`` (a long category title)."""
    right.set_fontsize(size)
    smallest = SMALLEST_SHARE * size
    end = status.get_window_extent(renderer).x1
    while right.get_fontsize() > smallest:
        em = right.get_fontsize() * renderer.points_to_pixels(1.0)
        if right.get_window_extent(renderer).x0 >= end + em:
            return
        right.set_fontsize(max(smallest, 0.92 * right.get_fontsize()))
