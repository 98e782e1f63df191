"""The content of ``truth.json``: the k each category was generated with, and how the sample was made.

The truth file is what a calibration is checked against (tests, benchmarks), so it records, next
to the k maps, everything needed to read them right: the categories they are defined on, the
event count per category and kind, the files of each dataset, the settings and the versions.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pyarrow as pa

from lib.categories import CategoryScheme
from lib.generator.kmaps import KOverride
from lib.generator.plan import Dataset, FileTask
from lib.generator.settings import KINDS, GeneratorSettings

__all__ = ["GENERATOR_VERSION", "truth_content"]

GENERATOR_VERSION = "1.0.0"


def _k_source(override: KOverride) -> str:
    """Human-readable origin of a k map, recorded in the truth file."""
    if override is None:
        return "builtin"
    if isinstance(override, Mapping):
        return f"builtin with {len(override)} categories overridden"
    return f"uniform {float(override):g}"


def truth_content(
    seed: int,
    year: int,
    sizes: Mapping[str, int],
    plan: list[Dataset],
    tasks: list[FileTask],
    counts: list[np.ndarray],
    k_maps: Mapping[str, Mapping[str, float]],
    overrides: Mapping[str, KOverride],
    scheme: CategoryScheme,
    settings: GeneratorSettings,
) -> dict[str, object]:
    """Content of ``truth.json``: everything needed to compare a calibration with the truth."""
    per_kind = {kind: np.zeros(scheme.n_categories, dtype=np.int64) for kind in KINDS}
    for task, c in zip(tasks, counts):
        per_kind[task.dataset.kind] += c
    datasets = {
        ds.name: {
            "kind": ds.kind,
            "era": ds.era,
            "events": ds.n_events,
            "files": [f"compacted/{t.rel_path}" for t in tasks if t.dataset == ds],
        }
        for ds in plan
    }
    return {
        "generator_version": GENERATOR_VERSION,
        "seed": seed,
        "year": year,
        "events": {"data": sizes["n_data"], "mc": sizes["n_mc"], "signal": sizes["n_signal"]},
        "k_data": dict(k_maps["data"]),
        "k_mc": dict(k_maps["mc"]),
        "k_signal_uses": settings.samples.signal.k_map,
        "k_source": {which: _k_source(overrides[which]) for which in ("data", "mc")},
        "truth_model": (
            f"mass_model {settings.mass_model}: each muon pT smeared by k[cat] x ptErr/pT, cat from the true "
            "post-FSR kinematics (leading pT clamped into the pT edges); dimuon_mass "
            + ("is the invariant mass of the written muons" if settings.mass_model == "muons"
               else "smeared with residuals of its own (same k x ptErr/pT), independent of the written muons")
            + "; ideal calibration factor = k"
        ),
        "categories": {
            "names": scheme.names,
            "pt_edges_gev": list(scheme.pt_edges),
            "abseta_edges": list(scheme.abseta_edges),
            "out_of_range_pt": "clamped to the nearest pT bin",
        },
        "category_counts": {kind: dict(zip(scheme.names, c.tolist())) for kind, c in per_kind.items()},
        "datasets": datasets,
        "layout": {key: sizes[key] for key in ("files_per_dataset", "row_group_rows", "chunk_rows")},
        "settings": settings.model_dump(mode="json"),
        "versions": {"numpy": np.__version__, "pyarrow": pa.__version__},
    }
