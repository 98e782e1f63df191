"""The true resolution scale k per analysis category: the built-in maps, overrides, and per-muon maps.

k is what a calibration must recover, so its definition is kept in one place: an additive model
per sample (``k_maps`` in the generator settings) expanded over the analysis categories, then
overridden by a number (uniform k) or by exact category names. A per-muon map (``muon_k_maps``)
instead gives each muon the k of its |eta| region and pT bin, as a real detector's resolution
scale belongs to the muon; the truth per category then follows from the events (see ``truth``).
"""

from __future__ import annotations

import json
import math

import numpy as np
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from lib.categories import CategoryScheme
from lib.config import load_config
from lib.errors import ConfigError, InputError
from lib.generator.settings import GeneratorSettings, KMapSettings, MuonKMapSettings, validated

# An override of a built-in k map: ``{category: k}`` for the categories named, a number for all, or none.
KOverride = Mapping[str, float] | float | None


def default_scheme() -> CategoryScheme:
    """The categories of the default analysis configuration, used when a caller gives no scheme."""
    return CategoryScheme.from_config(load_config().categories)


def builtin_k_map(which: Literal["data", "mc"], settings: GeneratorSettings, scheme: CategoryScheme) -> dict[str, float]:
    """Expand the additive model of ``k_maps.<which>`` into ``{category name: k}``.

    Raises:
        ConfigError: region names or pT-bin count that do not match the scheme, or an unknown override name.
    """
    spec: KMapSettings = getattr(settings.k_maps, which)
    regions = set(scheme.region_names)
    for key in ("leading_region", "subleading_region"):
        if set(getattr(spec, key)) != regions:
            raise ConfigError(f"k_maps.{which}.{key} must name the regions {sorted(regions)}, got {sorted(getattr(spec, key))}")
    if len(spec.pt_bin) != scheme.n_pt:
        raise ConfigError(f"k_maps.{which}.pt_bin needs {scheme.n_pt} values, got {len(spec.pt_bin)}")
    out: dict[str, float] = {}
    for index, name in enumerate(scheme.names):
        i_pt, i1, i2 = scheme.bin_indices(index)
        lead, sub = scheme.region_names[i1], scheme.region_names[i2]
        out[name] = round(spec.base + spec.leading_region[lead] + spec.subleading_region[sub] + spec.pt_bin[i_pt], 10)
    try:
        return resolve_k_map(out, dict(spec.overrides), scheme)
    except ConfigError as err:
        raise ConfigError(f"k_maps.{which}.overrides of the generator settings: {err}") from err


def resolve_k_map(base: Mapping[str, float], override: KOverride, scheme: CategoryScheme) -> dict[str, float]:
    """Apply an override to a full k map: a number sets every category, a mapping replaces the categories it names.

    Raises:
        ConfigError: unknown category name, or a k that is not a finite positive number.

    >>> s = default_scheme()
    >>> m = resolve_k_map({n: 1.0 for n in s.names}, {"30-45_BB": 1.2}, s)
    >>> m["30-45_BB"], m["30-45_BO"]
    (1.2, 1.0)
    """
    if override is None:
        merged = dict(base)
    elif isinstance(override, Mapping):
        for name in override:
            scheme.validate_name(name)
        merged = {**base, **override}
    else:
        merged = {name: override for name in scheme.names}
    for name, k in merged.items():
        if isinstance(k, bool) or not isinstance(k, (int, float)) or not math.isfinite(k) or k <= 0:
            raise ConfigError(f"k for category '{name}' must be a finite positive number, got {k!r}")
    return {name: float(merged[name]) for name in scheme.names}


def _json_object(path: Path, what: str, hint: str, content: str) -> dict:
    """A JSON file holding an object, read for the ``what`` of a command-line option.

    Raises:
        InputError: the file cannot be read, is not JSON, or not an object (``content`` says what it should hold).
    """
    try:
        raw = json.loads(path.read_text())
    except OSError as err:
        raise InputError(f"cannot read {what} {path}: {err.strerror}; give {hint} or a JSON file") from err
    except json.JSONDecodeError as err:
        raise InputError(f"{what} {path} is not valid JSON (line {err.lineno})") from err
    if not isinstance(raw, dict):
        raise InputError(f"{what} {path} must be a JSON object {content}")
    return raw


def load_k_override(text: str) -> float | dict[str, float]:
    """Parse a ``--k-data``/``--k-mc`` value: a number (uniform k) or a JSON file ``{category: k}``.

    Raises:
        InputError: the file cannot be read or is not a JSON object.
    """
    try:
        return float(text)
    except ValueError:
        return _json_object(Path(text), "k map", "a number", "{category name: k}")


def muon_k(spec: MuonKMapSettings, abseta: np.ndarray, pt: np.ndarray) -> np.ndarray:
    """k of each muon from its |eta| region and pT bin; a pT outside the bins takes the nearest one."""
    region = np.clip(np.searchsorted(spec.abseta_edges, abseta, side="right") - 1, 0, len(spec.abseta_edges) - 2)
    pt_bin = np.searchsorted(spec.pt_edges_gev, pt, side="right")
    return np.asarray(spec.k, dtype=np.float64)[region, pt_bin]


def parse_muon_k_map(text: str, scheme: CategoryScheme) -> MuonKMapSettings:
    """Parse a ``--muon-k-data``/``--muon-k-mc`` value into a per-muon k map.

    ``K1,K2,...``: one k per |eta| region of the analysis categories (a single number: one k for
    every muon); otherwise a JSON file with the ``muon_k_maps`` keys (abseta_edges, pt_edges_gev, k).

    Raises:
        InputError: the file cannot be read, is not JSON, or the numbers do not match the regions.
        ConfigError: a map the settings schema rejects.
    """
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        values = None
    if values is None:
        raw: dict = _json_object(Path(text), "per-muon k map", "K1,K2,...", "with abseta_edges, pt_edges_gev and k")
    else:
        edges = list(scheme.abseta_edges)
        if len(values) == 1:
            edges = [edges[0], edges[-1]]
        elif len(values) != len(edges) - 1:
            raise InputError(f"per-muon k '{text}' needs one value per |eta| region {scheme.region_names} or a single value")
        raw = {"abseta_edges": edges, "k": [[v] for v in values]}
    return validated(MuonKMapSettings, raw, f"per-muon k map '{text}'")
