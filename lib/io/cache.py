"""Skim cache keyed by what could change it: input files (path, size, mtime), config and tool version.

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
from lib.io.reader import Skim

__all__ = ["inputs_fingerprint", "cache_key", "load_cached_skim", "store_skim"]

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


def _cache_file(cache_dir: Path, key: str) -> Path:
    return Path(cache_dir) / f"skim-{key}.npz"


def load_cached_skim(cache_dir: Path, key: str) -> Skim | None:
    """The cached skim for ``key``, or None (a corrupt cache file is ignored and replaced later)."""
    path = _cache_file(cache_dir, key)
    if not path.exists():
        return None
    try:
        with np.load(path) as data:
            weight = data["weight"] if data["weighted"] else None
            skim = Skim(data["category"], data["mass"], data["sigma_pred"], weight)
    except (OSError, KeyError, ValueError) as err:
        log.warning("ignoring unreadable skim cache %s (%s)", path, err)
        return None
    log.info("using cached skim %s (%d events)", path, len(skim))
    return skim


def store_skim(cache_dir: Path, key: str, skim: Skim) -> Path:
    """Write the skim for ``key`` atomically and drop caches of other keys (they can never match again)."""
    path = _cache_file(cache_dir, key)
    for stale in Path(cache_dir).glob("skim-*.npz") if Path(cache_dir).exists() else []:
        if stale != path:
            stale.unlink(missing_ok=True)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.savez(
                handle,
                category=skim.category,
                mass=skim.mass,
                sigma_pred=skim.sigma_pred,
                weight=skim.weight if skim.weight is not None else np.empty(0, np.float32),
                weighted=np.array(skim.weight is not None),
            )
    return path
