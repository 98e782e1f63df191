"""Writing figures: PNG for a quick look and PDF for notes, each renamed into place only when complete."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lib.io.atomic import atomic_path

# Every figure file kind a run can write: PNG for a quick look (and the report), PDF for notes.
PLOT_FORMATS = ("png", "pdf")
# Pixels per inch of every figure, and so of its PNG.
PNG_DPI = 100


def save_figure(fig: Any, path_stem: Path, tight: bool = True, close: bool = True, formats: tuple[str, ...] = PLOT_FORMATS) -> list[Path]:
    """Save ``fig`` as ``<path_stem>.png`` and ``.pdf`` (``formats``) atomically, close it unless ``close`` is False, return the paths.

    ``tight`` crops to the drawn content, at the price of one more draw per file; a figure drawn by
    the dozen sets its own margins and stays open to be re-used.
    """
    import matplotlib.pyplot as plt

    written = []
    for ext in formats:
        target = Path(f"{path_stem}.{ext}")
        with atomic_path(target) as tmp:
            # zlib level 1: much cheaper than the default level for slightly larger files (docs/performance.md).
            options = {"pil_kwargs": {"compress_level": 1}} if ext == "png" else {}
            fig.savefig(tmp, format=ext, dpi=PNG_DPI, bbox_inches="tight" if tight else None, **options)
        written.append(target)
    if close:
        plt.close(fig)
    return written


def discard_other_formats(path_stem: Path, formats: tuple[str, ...]) -> None:
    """Remove ``<path_stem>.<ext>`` of the formats not drawn now: a PDF left by an earlier run beside a PNG
    redrawn with ``--plot-formats png`` (a --fixCat, say) would show the fit that was replaced."""
    for ext in PLOT_FORMATS:
        if ext not in formats:
            Path(f"{path_stem}.{ext}").unlink(missing_ok=True)
