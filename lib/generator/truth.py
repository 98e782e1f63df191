"""The content of ``truth.json``: the k each category was generated with, and how the sample was made.

The truth file is what a calibration is checked against (tests, benchmarks), so it records, next
to the k maps, everything needed to read them right: the categories they are defined on, the
event count per category and kind, the files of each dataset, the settings and the versions.

Where each muon has its own k, no category has one k: the truth is then per event (the
``truth_*`` columns of the files, ``TRUTH_COLUMNS``), and the k of a category in the truth file is
a summary of its events, sqrt(sum sigma_true^2 / sum sigma_pred^2) over the events a reader puts
in it, which is k wherever the events' k is one number.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pyarrow as pa

from lib.categories import CategoryScheme
from lib.generator.plan import FileTask, SamplePlan
from lib.generator.settings import KINDS, GeneratorSettings, settings_record
from lib.resolution import sigma_pred

GENERATOR_VERSION = "1.0.0"

# The per-event truth a file carries when asked for (or when k is per muon), and its written type.
TRUTH_COLUMNS = {
    "truth_gen_mass": np.float32,  # before FSR and smearing
    "truth_mass": np.float32,  # after FSR (what is not recovered), before smearing
    "truth_sigma_m": np.float32,  # true mass resolution of the residual core: m/2 sqrt((k1 r1)^2 + (k2 r2)^2)
    "truth_k": np.float32,  # sigma_m over the predicted resolution of the same true mass
    "truth_mu1_k": np.float32,
    "truth_mu2_k": np.float32,
    "truth_is_background": np.bool_,
}


def category_truth_sums(cols: Mapping[str, np.ndarray], scheme: CategoryScheme, resolution: bool) -> np.ndarray:
    """Per category: the events by k category, then sum sigma_true^2 and sum sigma_pred^2 by the reader's category.

    The reader's category is what a calibration computes from the written (float32) columns,
    so the summary k of a category describes the events it fits. Without ``resolution`` the two
    sums stay zero: only a per-muon k map needs them.
    """
    n = scheme.n_categories
    sums = np.zeros((3, n))
    sums[0] = np.bincount(cols["truth_category"], minlength=n)
    if resolution:
        pt1, pt2 = cols["mu1_pt"].astype(np.float64), cols["mu2_pt"].astype(np.float64)
        read = scheme.assign(pt1, np.abs(cols["mu1_eta"]), np.abs(cols["mu2_eta"]))
        inside = read >= 0
        predicted = sigma_pred(cols["dimuon_mass"].astype(np.float64), pt1, cols["mu1_ptErr"], pt2, cols["mu2_ptErr"])
        sums[1] = np.bincount(read[inside], weights=cols["truth_sigma_m"][inside] ** 2, minlength=n)
        sums[2] = np.bincount(read[inside], weights=predicted[inside] ** 2, minlength=n)
    return sums


def _k_record(plan: SamplePlan, per_kind: Mapping[str, np.ndarray]) -> dict[str, object]:
    """The Data and MC k maps and, in words, where they come from.

    A per-muon map is recorded as given, and summarised per category from the truth sums of the
    kind of the same name (the Z samples, not the signal); None for a category without events.
    """
    record: dict[str, object] = {}
    sources: dict[str, str] = {}
    for which, override in (("data", plan.request.k_data), ("mc", plan.request.k_mc)):
        muon_map = getattr(plan.settings.muon_k_maps, which)
        if muon_map is not None:
            _, true, pred = per_kind[which]
            record[f"k_{which}"] = {
                name: round(float(np.sqrt(t / p)), 6) if p > 0 else None for name, t, p in zip(plan.scheme.names, true, pred)
            }
            record[f"k_muon_{which}"] = muon_map.model_dump(mode="json")
            sources[which] = "per-muon map"
            continue
        record[f"k_{which}"] = dict(plan.k_maps[which])
        if override is None:
            sources[which] = "builtin"
        elif isinstance(override, Mapping):
            sources[which] = f"builtin with {len(override)} categories overridden"
        else:
            sources[which] = f"uniform {float(override):g}"
    return record | {"k_signal_uses": plan.settings.samples.signal.k_map, "k_source": sources}


def _datasets_record(plan: SamplePlan, tasks: list[FileTask]) -> dict[str, object]:
    """Each dataset's kind, era, event count and files."""
    return {
        ds.name: {
            "kind": ds.kind,
            "era": ds.era,
            "events": ds.n_events,
            "files": [f"compacted/{t.rel_path}" for t in tasks if t.dataset == ds],
        }
        for ds in plan.datasets
    }


def truth_content(plan: SamplePlan, tasks: list[FileTask], counts: list[np.ndarray]) -> dict[str, object]:
    """Content of ``truth.json`` for a written sample: its plan, its files and their truth sums (``category_truth_sums``)."""
    scheme, settings = plan.scheme, plan.settings
    per_kind = {kind: np.zeros((3, scheme.n_categories)) for kind in KINDS}
    for task, c in zip(tasks, counts):
        per_kind[task.dataset.kind] += c
    return {
        "generator_version": GENERATOR_VERSION,
        "seed": plan.request.seed,
        "year": plan.request.year,
        "events": {"data": plan.request.n_data, "mc": plan.request.n_mc, "signal": plan.request.n_signal},
        **_k_record(plan, per_kind),
        "truth_model": _truth_model(settings),
        "categories": {
            "names": scheme.names,
            "pt_edges_gev": list(scheme.pt_edges),
            "abseta_edges": list(scheme.abseta_edges),
            "out_of_range_pt": "clamped to the nearest pT bin",
        },
        "category_counts": {kind: dict(zip(scheme.names, c[0].astype(np.int64).tolist())) for kind, c in per_kind.items()},
        "datasets": _datasets_record(plan, tasks),
        "layout": plan.options.layout(),
        "settings": settings_record(settings),
        "versions": {"numpy": np.__version__, "pyarrow": pa.__version__},
    }


def _truth_model(settings: GeneratorSettings) -> str:
    """One sentence on how k entered the sample, so the truth file says what its k maps mean."""
    mass = (
        "is the invariant mass of the written muons" if settings.mass_model == "muons"
        else "smeared with residuals of its own (same k x ptErr/pT), independent of the written muons"
    )  # fmt: skip
    text = (
        f"mass_model {settings.mass_model}: each muon pT smeared by k[cat] x ptErr/pT, cat from the true "
        f"post-FSR kinematics (leading pT clamped into the pT edges); dimuon_mass {mass}; ideal calibration factor = k"
    )
    per_muon = [which for which in ("data", "mc") if getattr(settings.muon_k_maps, which) is not None]
    if per_muon:
        text += (
            f"; k maps {', '.join(per_muon)} are per muon instead: each muon smeared by its own k(|eta|, post-FSR pT) "
            "x ptErr/pT, the event's true mass resolution in the column truth_sigma_m, and k_<map> summarises each "
            "category as sqrt(sum truth_sigma_m^2 / sum sigma_pred^2) over the events a reader puts in it"
        )
    return text
