"""Convert the original's ROOT calibration maps into the correctionlib JSON layout (uproot, no ROOT).

* ``res_calib_{Data|MC}_<year>.root``: one TH3, x = leading-muon pT, y = leading |eta|, z = subleading
  |eta|. The axes carry no titles; the order follows the older category scheme, whose lowest pT bin
  was merged by the *subleading* muon's region (contents constant along y, varying along z).
* ``ebe_mass_uncertaintiy_calibration_<year>.root`` (sic): one TH2 ``correction{Data|MC}_pt_{i}`` per pT
  bin, x = leading |eta|, y = subleading |eta|, without its pT edges (default: the TH3's). A TH2 with
  coarser |eta| bins (``pt_0``) is spread over the common finer bins: one rectangular MultiBinning.

The histograms' own edges are kept (the open-ended 0 and 9999 GeV pT edges, |eta| edges in single
precision such as 0.8999999761581421), so evaluating the JSON inside any histogram bin gives its content.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import correctionlib.schemav2 as cs
import numpy as np
import uproot

from lib import __version__
from lib.correction.writer import correction_from_grid
from lib.errors import CorrectionError, InputError

logger = logging.getLogger(__name__)

LEGACY_PT_EDGES_GEV: tuple[float, ...] = (0.0, 45.0, 52.0, 62.0, 9999.0)
_AXES = "x = leading-muon pT (GeV), y = leading-muon |eta|, z = subleading-muon |eta|"


def import_root(
    root_path: Path,
    name: str,
    kind: Literal["Data", "MC"] | None = None,
    hist_name: str | None = None,
    pt_edges: Sequence[float] = LEGACY_PT_EDGES_GEV,
) -> cs.CorrectionSet:
    """CorrectionSet named ``name`` holding a legacy ROOT map bin for bin, its format recognised by its content.

    A file with a TH3 (or a ``hist_name`` given) is read as the TH3 map (``None``: its only TH3);
    otherwise the per-pT-bin TH2 set of ``kind``, whose bin (i_pt, i_eta1, i_eta2) holds the
    content of histogram ``pt_{i_pt}`` at that |eta| bin, on the leading-muon ``pt_edges``.

    Raises:
        InputError: unreadable file, no such (or no unique) TH3, a TH2 set without ``kind``, TH2s
            missing, or their number disagreeing with ``pt_edges``.
        CorrectionError: a bin content is not finite, or the TH2s' |eta| binnings cannot be merged
            onto common edges.
    """
    root_path = Path(root_path)
    try:
        root = uproot.open(root_path)
    except FileNotFoundError as err:
        raise InputError(f"ROOT file {root_path} does not exist") from err
    except (OSError, ValueError) as err:
        raise InputError(f"cannot read {root_path} as a ROOT file: {' '.join(str(err).split())}") from err
    with root:
        if hist_name is not None or any(c.startswith("TH3") for c in root.classnames().values()):
            values, edges, source = _th3(root, root_path, hist_name)
        elif kind is None:
            raise InputError(f"{root_path} holds per-pT-bin TH2 maps for Data and MC; say which with kind 'Data' or 'MC' (--kind)")
        else:
            values, edges, source = _th2_set(root, root_path, kind, pt_edges)
    logger.info("imported %s with edges %s", source, [list(map(float, e)) for e in edges])
    description = f"Dimuon mass resolution calibration factor, imported bin for bin from the legacy ROOT {source} by ebe-calib {__version__}"
    return correction_from_grid(values, edges, name, description)


def _th3(root: Any, root_path: Path, hist_name: str | None) -> tuple[np.ndarray, list[np.ndarray], str]:
    """The TH3's contents, its edges and what it is."""
    found = {k.split(";")[0]: c for k, c in root.classnames().items()}
    if hist_name is None:
        matches = [k for k, c in found.items() if c.startswith("TH3")]
        if len(matches) != 1:
            raise InputError(f"{root_path} holds {len(matches)} TH3 histograms {matches}; name the one to import")
        hist_name = matches[0]
    elif not found.get(hist_name, "").startswith("TH3"):
        raise InputError(f"{root_path} has no TH3 named '{hist_name}' (objects: {found})")
    hist = root[hist_name]
    values = hist.values(flow=False)
    _warn_empty(values, root_path, hist_name)
    return values, [hist.axis(i).edges() for i in range(3)], f"map {root_path.name}:{hist_name} ({_AXES})"


def _th2_set(root: Any, root_path: Path, kind: str, pt_edges: Sequence[float]) -> tuple[np.ndarray, list[np.ndarray], str]:
    """The TH2s ``correction{kind}_pt_{i}`` spread onto common |eta| edges, the edges and what they are."""
    prefix = f"correction{kind}_pt_"
    n_pt = len(pt_edges) - 1
    present = {k.split(";")[0] for k, c in root.classnames().items() if c.startswith("TH2")}
    wanted = [f"{prefix}{i}" for i in range(n_pt)]
    missing = [w for w in wanted if w not in present]
    extra = sorted(p for p in present if p.startswith(prefix) and p not in wanted)
    if missing or extra:
        raise InputError(
            f"{root_path}: expected TH2 {prefix}0..{n_pt - 1} for {n_pt} pT bins {list(pt_edges)}; "
            f"missing {missing or 'none'}, unexpected {extra or 'none'} (pass the pT edges matching the file)"
        )
    hists = [(root[w].axis(0).edges(), root[w].axis(1).edges(), root[w].values(flow=False)) for w in wanted]
    eta1 = _common_edges([h[0] for h in hists], root_path, "x (leading |eta|)")
    eta2 = _common_edges([h[1] for h in hists], root_path, "y (subleading |eta|)")
    grid = np.empty((n_pt, len(eta1) - 1, len(eta2) - 1))
    c1, c2 = 0.5 * (eta1[:-1] + eta1[1:]), 0.5 * (eta2[:-1] + eta2[1:])
    for i_pt, (x_edges, y_edges, values) in enumerate(hists):
        ix = np.searchsorted(x_edges, c1, side="right") - 1
        iy = np.searchsorted(y_edges, c2, side="right") - 1
        grid[i_pt] = values[np.ix_(ix, iy)]
        _warn_empty(values, root_path, wanted[i_pt])
    source = (
        f"maps {root_path.name}:{prefix}0..{n_pt - 1} (one TH2 per leading-muon pT bin {list(pt_edges)} GeV; "
        "x = leading-muon |eta|, y = subleading-muon |eta|)"
    )
    return grid, [np.asarray(pt_edges, dtype=float), eta1, eta2], source


def _common_edges(all_edges: list[np.ndarray], root_path: Path, axis: str) -> np.ndarray:
    """Union of several binnings of one range, onto which each of them maps as a coarsening."""
    ranges = sorted({(float(e[0]), float(e[-1])) for e in all_edges})
    if len(ranges) > 1:
        raise CorrectionError(f"{root_path}: histograms cover different {axis} ranges {ranges}; cannot merge them")
    return np.unique(np.concatenate(all_edges))


def _warn_empty(values: np.ndarray, root_path: Path, key: str) -> None:
    """Log bins holding 0, which in a legacy map usually means a category never filled."""
    if np.any(values == 0):
        logger.warning("%s:%s has %d empty (0) bins; they are imported as 0", root_path.name, key, int(np.sum(values == 0)))
