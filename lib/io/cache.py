"""Reduction cache keyed by what could change it: input files (path, size, mtime), config and tool version.

The original cached its skim and never invalidated it; here any change to an input file, to the
selection/category config or to the tool gives a new key, so a stale cache cannot be read.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Sequence

import numpy as np

from lib import __version__
from lib.io.atomic import atomic_path
from lib.histograms import CategoryHistograms, HistogramSpec
from lib.io.merge import Reduction
from lib.io.reader import MUON_COLUMNS, Skim

__all__ = ["inputs_fingerprint", "cache_key", "load_cached_reduction", "store_reduction"]

log = logging.getLogger(__name__)


def inputs_fingerprint(files: Sequence[Path]) -> str:
    """Hash of the input files' paths, sizes and modification times (content is not read)."""
    digest = hashlib.sha256()
    for path in files:
        stat = Path(path).stat()
        digest.update(f"{Path(path).resolve()}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def cache_key(files_fingerprint: str, settings: dict[str, object]) -> str:
    """Key combining the inputs, the settings that shape the skim, and the tool version."""
    payload = json.dumps({"files": files_fingerprint, "settings": settings, "version": __version__}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:20]


def _cache_file(cache_dir: Path, key: str, kind: str) -> Path:
    return Path(cache_dir) / f"reduction-{kind}-{key}.npz"


def _kind(n_histograms: int, events: bool, muons: bool) -> str:
    """Cache slot: steps 1-2 and the closure keep one entry each, so alternating runs do not evict each other."""
    return f"h{n_histograms}{'e' if events else ''}{'m' if muons else ''}"


def load_cached_reduction(
    cache_dir: Path, key: str, specs: tuple[HistogramSpec, ...], events: bool, muons: bool = False
) -> Reduction | None:  # fmt: skip
    """The cached reduction for ``key`` (one set of histograms per spec, and/or events), or None.

    A corrupt cache file is ignored and replaced later.
    """
    path = _cache_file(cache_dir, key, _kind(len(specs), events, muons))
    if not path.exists():
        return None
    try:
        with np.load(path) as data:
            arrays = {k: data[k] for k in data.files}
        histograms = tuple(
            CategoryHistograms.from_arrays(
                spec.grids, {k.split("_", 1)[1]: v for k, v in arrays.items() if k.startswith(f"h{i}_")}, spec.acceptance
            )
            for i, spec in enumerate(specs)
        )
        muons = {c: arrays[c] for c in MUON_COLUMNS} if "mu1_pt" in arrays else None
        skim = Skim(arrays["category"], arrays["mass"], arrays["sigma_pred"], arrays.get("weight"), muons) if events else None
        counts = {k: int(arrays[k]) for k in _COUNTS}
        profile = arrays.get("profile")
    except (OSError, KeyError, ValueError) as err:
        log.info("ignoring unreadable reduction cache %s (%s); reading the inputs again", path, err)
        return None
    reduction = Reduction(histograms, skim, **counts, profile=profile)
    log.info("using cached reduction %s (%d events kept)", path, reduction.n_kept)
    return reduction


_COUNTS = ("n_read", "n_bad", "n_outside_window", "n_outside_categories")


def store_reduction(cache_dir: Path, key: str, reduction: Reduction) -> Path:
    """Write the reduction for ``key`` atomically and drop caches of the same kind with other keys (they can never match again)."""
    kind = _kind(len(reduction.histograms), reduction.skim is not None, reduction.skim is not None and reduction.skim.muons is not None)
    path = _cache_file(cache_dir, key, kind)
    for stale in Path(cache_dir).glob(f"reduction-{kind}-*.npz") if Path(cache_dir).exists() else []:
        if stale != path:
            stale.unlink(missing_ok=True)
    arrays: dict[str, np.ndarray] = {k: np.array(getattr(reduction, k)) for k in _COUNTS}
    for i, hists in enumerate(reduction.histograms):
        arrays |= {f"h{i}_{k}": v for k, v in hists.arrays().items()}
    if reduction.skim is not None:
        skim = reduction.skim
        arrays |= {"category": skim.category, "mass": skim.mass, "sigma_pred": skim.sigma_pred}
        if skim.weight is not None:
            arrays["weight"] = skim.weight
        if skim.muons is not None:
            arrays |= skim.muons
    if reduction.profile is not None:
        arrays["profile"] = reduction.profile
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, **arrays)
    return path
