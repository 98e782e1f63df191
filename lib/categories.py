"""Analysis categories: leading-muon pT bin x leading |eta| region x subleading |eta| region.

Boundary convention: every bin is ``[lo, hi)``, the same convention correctionlib's ``binning``
uses when the correction is looked up, so an event is categorised here exactly as Stage-1 will
look up its factor (the original categorises with ``(lo, hi]``, which disagrees on boundary events).
Events outside the edges get index -1 and belong to no category.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from lib.config import CategoryConfig
from lib.errors import ConfigError

NO_CATEGORY = -1


@dataclass(frozen=True)
class CategoryScheme:
    """Category edges and names; the flat index is ``n_eta**2 * i_pt + n_eta * i_eta1 + i_eta2``."""

    pt_edges: tuple[float, ...]
    abseta_edges: tuple[float, ...]
    region_names: tuple[str, ...]

    @classmethod
    def from_config(cls, cfg: CategoryConfig) -> "CategoryScheme":
        scheme = cls(tuple(cfg.pt_edges_gev), tuple(cfg.abseta_edges), tuple(cfg.region_names))
        if scheme.n_categories > 127:
            raise ConfigError(f"{scheme.n_categories} categories exceed the 127 an int8 skim index holds")
        return scheme

    @property
    def n_pt(self) -> int:
        return len(self.pt_edges) - 1

    @property
    def n_eta(self) -> int:
        return len(self.abseta_edges) - 1

    @property
    def n_categories(self) -> int:
        return self.n_pt * self.n_eta * self.n_eta

    @property
    def names(self) -> list[str]:
        """Names in the original's order, e.g. ``30-45_OB`` (first letter: leading muon).

        >>> from lib.config import load_config
        >>> CategoryScheme.from_config(load_config().categories).names[:4]
        ['30-45_BB', '30-45_BO', '30-45_BE', '30-45_OB']
        """
        out = []
        for i_pt in range(self.n_pt):
            pt = f"{self.pt_edges[i_pt]:g}-{self.pt_edges[i_pt + 1]:g}"
            for r1 in self.region_names:
                for r2 in self.region_names:
                    out.append(f"{pt}_{r1}{r2}")
        return out

    def index_of(self, name: str) -> int:
        """Flat index of a category name.

        Raises:
            ConfigError: unknown name; the message lists the valid ones.
        """
        names = self.names
        if name not in names:
            raise ConfigError(f"unknown category '{name}'; valid: {', '.join(names)}")
        return names.index(name)

    def bin_indices(self, index: int) -> tuple[int, int, int]:
        """(i_pt, i_eta1, i_eta2) of a flat index."""
        n = self.n_eta
        return index // (n * n), (index // n) % n, index % n

    def center(self, index: int) -> tuple[float, float, float]:
        """(pT, |eta1|, |eta2|) at the centre of a category, for look-up checks."""
        i_pt, i1, i2 = self.bin_indices(index)
        pe, ee = self.pt_edges, self.abseta_edges
        return (
            0.5 * (pe[i_pt] + pe[i_pt + 1]),
            0.5 * (ee[i1] + ee[i1 + 1]),
            0.5 * (ee[i2] + ee[i2 + 1]),
        )

    def assign(self, lead_pt: np.ndarray, lead_abseta: np.ndarray, sublead_abseta: np.ndarray) -> np.ndarray:
        """Vectorised flat category index per event (int8), -1 outside every category.

        >>> from lib.config import load_config
        >>> s = CategoryScheme.from_config(load_config().categories)
        >>> s.assign(np.array([30.0, 45.0, 29.9, 200.0]), np.array([0.0, 0.9, 0.1, 0.1]), np.array([2.39, 1.8, 0.1, 0.1])).tolist()
        [2, 14, -1, -1]
        """
        i_pt = bin_index(lead_pt, self.pt_edges)
        i_e1 = bin_index(np.abs(lead_abseta), self.abseta_edges)
        i_e2 = bin_index(np.abs(sublead_abseta), self.abseta_edges)
        n = self.n_eta
        index = (n * n * i_pt + n * i_e1 + i_e2).astype(np.int8)
        index[(i_pt < 0) | (i_e1 < 0) | (i_e2 < 0)] = NO_CATEGORY
        return index

    def validate_name(self, name: str) -> str:
        self.index_of(name)
        return name


def bin_index(values: np.ndarray, edges: Sequence[float]) -> np.ndarray:
    """Bin index for [lo, hi) bins, -1 outside (NaN included).

    Counting the edges at or below each value is ``searchsorted(side="right") - 1`` at half its cost
    for a handful of edges (the reader's hottest line).
    """
    idx = np.full(np.shape(values), -1, dtype=np.intp)
    for edge in np.asarray(edges, dtype=np.float64):
        idx += values >= edge
    idx[idx >= len(edges) - 1] = -1
    return idx


def group_rows(index: np.ndarray, n_groups: int) -> list[np.ndarray]:
    """Row numbers of each group ``0 .. n_groups - 1`` of ``index`` (-1: in none), in row order within a group (one stable sort)."""
    order = np.argsort(index, kind="stable")
    bounds = np.searchsorted(index[order], np.arange(n_groups + 1))
    return [order[bounds[i] : bounds[i + 1]] for i in range(n_groups)]

