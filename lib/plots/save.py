"""Writing figures: PNG for a quick look and PDF for notes, each renamed into place only when complete."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lib.io.atomic import atomic_path

__all__ = ["save_figure"]


def save_figure(fig: Any, path_stem: Path, dpi: int = 100, tight: bool = True) -> list[Path]:
    """Save ``fig`` as ``<path_stem>.png`` and ``.pdf`` atomically, close it, return the paths.

    ``tight`` crops to the drawn content, at the price of one more draw per file; figures drawn
    by the dozen (one per category) set their margins themselves and pass False.
    """
    import matplotlib.pyplot as plt

    written = []
    for ext in ("png", "pdf"):
        target = Path(f"{path_stem}.{ext}")
        with atomic_path(target) as tmp:
            fig.savefig(tmp, format=ext, dpi=dpi, bbox_inches="tight" if tight else None)
        written.append(target)
    plt.close(fig)
    return written
