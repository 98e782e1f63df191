"""The CMS header of every figure: "CMS" and its status on the left, the sample and "(13 TeV)" on the right."""

from __future__ import annotations

from typing import Any

__all__ = ["cms_label", "right_label", "status_text", "fit_right_label"]

CENTRE_OF_MASS = "(13 TeV)"
# A long right-hand label is set smaller, down to this share of its size, to keep an em clear of the status.
SMALLEST_SHARE = 0.6


def status_text(simulation: bool) -> str:
    """What follows "CMS": "Preliminary", or "Simulation Preliminary" for simulated samples."""
    return "Simulation Preliminary" if simulation else "Preliminary"


def right_label(text: str) -> str:
    """The right-hand header: the sample (and category), then the centre-of-mass energy."""
    return f"{text} {CENTRE_OF_MASS}".strip()


def cms_label(ax: Any, simulation: bool, right: str, fontsize: float) -> tuple[Any, Any, Any]:
    """Write the header above ``ax``; return its texts ("CMS", the status, the right-hand label).

    mplhep 1.3.3 places the status a sliver of an em after "CMS" (its automatic gap), which in the
    bold and italic fonts reads "CMSPreliminary": the status starts with a space, a word's gap.
    The texts sit in axes coordinates, so ``ax`` keeps its final position from here on.
    """
    import mplhep

    texts = mplhep.cms.label(ax=ax, llabel=f" {status_text(simulation)}", rlabel=right_label(right), fontsize=fontsize)
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
