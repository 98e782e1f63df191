"""Events as the detector records them: each muon smeared with k times its predicted resolution, then cut.

This is the part of the generator that k enters (the true dimuon comes from ``kinematics``):

* Each muon gets a predicted relative resolution ``r`` (written as ``ptErr = r * pt``) and is
  smeared as ``pt_reco = pt_true * (1 + k * r * z)``, ``z`` a unit Gaussian core with wider
  tails, ``k`` that of the category of the true (post-FSR) kinematics. So the observed core width
  is ``k`` times what ``ptErr`` predicts, and the ideal calibration factor of a category is ``k``.
* ``mass_model: muons``: ``dimuon_mass`` is the mass of the written muons, as in real data;
  ``independent``: the mass is smeared with residuals of its own (same ``k * r``), so cuts on the
  muons act on the true mass.
* Acceptance and the mass window act on the written quantities, rounded to float32 first, so the
  event content depends on ``k`` and a reader of the files computes the same cuts. Near a pT edge
  the reco category may differ from the true one (migration), as in data. A leading-muon pT
  outside the category pT edges takes the nearest pT bin's k (correctionlib's ``flow: clamp``).
* Per-muon k (``muon_k_maps``): each muon takes the k of its own |eta| region and true pT; the
  event's true mass resolution is then ``m/2 * sqrt((k_1 r_1)^2 + (k_2 r_2)^2)`` (``truth_sigma_m``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from lib.categories import CategoryScheme
from lib.errors import ConfigError
from lib.generator.kinematics import Angles, after_fsr, as_written, decay_to_lab, pair_mass, qed_beta, sample_mass
from lib.generator.kmaps import KOverride, builtin_k_map, default_scheme, muon_k, resolve_k_map
from lib.generator.settings import (
    KINDS, GeneratorSettings, Kind, MuonKMapSettings, ProcessSettings, ResolutionSettings, SmearingSettings, load_settings,
)  # fmt: skip

# Candidates simulated per batch: bounds memory whatever the requested event count.
_MAX_BATCH = 1_000_000
# Numerical guard only: keeps a reco pT positive for an (astronomically rare) r*z below -1.
_MIN_PT_SCALE = 1e-3


def _relative_resolution(
    abseta: np.ndarray, pt: np.ndarray, res: ResolutionSettings, rng: np.random.Generator
) -> np.ndarray:
    """Predicted relative pT resolution sqrt(a(|eta|)^2 + (b pT)^2) with a log-normal event spread."""
    a = np.interp(abseta, res.a_abseta_knots, res.a_values)
    r = np.hypot(a, res.b_per_gev * pt)
    return r * np.exp(res.lognormal_sigma * rng.standard_normal(len(pt)))


def _unit_residual(n: int, smearing: SmearingSettings, rng: np.random.Generator) -> np.ndarray:
    """Unit residual: N(0,1) core with probability core_fraction, N(0, tail_sigma) otherwise."""
    width = np.where(rng.random(n) < smearing.core_fraction, 1.0, smearing.tail_sigma)
    return width * rng.standard_normal(n)


@dataclass(frozen=True)
class EventModel:
    """What events are drawn from: the settings, the categories k is defined on, a k override and a fixed resolution.

    ``k_map``: None for the sample's built-in map, a number for a uniform k, or ``{category: k}``
    replacing the categories named; unused where the sample's k map is per muon.
    ``fixed_relative_resolution`` gives every muon this relative resolution (no |eta|/pT
    dependence, no spread), so fit tests see ``sigma_pred`` in a narrow band.

    Raises:
        ConfigError: a non-positive fixed resolution.
    """

    settings: GeneratorSettings = field(default_factory=load_settings)
    scheme: CategoryScheme = field(default_factory=default_scheme)
    k_map: KOverride = None
    fixed_relative_resolution: float | None = None

    def __post_init__(self) -> None:
        if self.fixed_relative_resolution is not None and not self.fixed_relative_resolution > 0:
            raise ConfigError(f"fixed_relative_resolution must be positive, got {self.fixed_relative_resolution}")


@dataclass(frozen=True)
class FileChunk:
    """Where events go in a file: the Data era of their runs (None: drawn by luminosity), the first
    event number, and whether the truth includes the per-muon and resolution columns (they cost
    time on every event, so a file without them leaves them out).
    """

    era: str | None = None
    first_event: int = 1
    truth_detail: bool = True


@dataclass(frozen=True, eq=False)
class _Detector:
    """What every candidate of a sample meets after its decay: the settings, the mass window, the resolution and the k map."""

    settings: GeneratorSettings
    window: tuple[float, float]
    fixed_r: float | None
    k_values: np.ndarray  # k per flat category index
    scheme: CategoryScheme
    muon_k_map: MuonKMapSettings | None
    detailed_truth: bool


# A value per muon of a candidate: (first decay muon, second decay muon).
_Pair = tuple[np.ndarray, np.ndarray]


def _central_decays(
    proc: ProcessSettings, n: int, rng: np.random.Generator, settings: GeneratorSettings
) -> tuple[np.ndarray, Angles, _Pair]:
    """Decays whose muons both lie inside the |eta| acceptance: their true mass before FSR, directions and muon pTs.

    |eta| is not smeared, so this early cut is exact and saves most of the work.
    """
    gen_mass = sample_mass(proc, n, rng)
    px1, py1, pz1, px2, py2, pz2 = decay_to_lab(proc, gen_mass, rng, settings.muon_mass_gev)
    limit = math.sinh(settings.acceptance.abseta_max)
    central = (np.abs(pz1) < limit * np.hypot(px1, py1)) & (np.abs(pz2) < limit * np.hypot(px2, py2))
    angles, pt1, pt2 = Angles.from_momenta(px1[central], py1[central], pz1[central], px2[central], py2[central], pz2[central])
    return gen_mass[central], angles, (pt1, pt2)


def _radiated(gen_mass: np.ndarray, gen_pt: _Pair, settings: GeneratorSettings, rng: np.random.Generator) -> _Pair:
    """The muon pTs after FSR (what is not recovered)."""
    beta = None if settings.fsr.shape == "exponential" else qed_beta(gen_mass, settings.muon_mass_gev)
    return after_fsr(gen_pt[0], settings.fsr, rng, beta), after_fsr(gen_pt[1], settings.fsr, rng, beta)


def _resolutions(angles: Angles, pt: _Pair, detector: _Detector, rng: np.random.Generator) -> _Pair:
    """Each muon's predicted relative resolution: from |eta| and pT, or the detector's fixed one."""
    if detector.fixed_r is not None:
        fixed = np.full(len(pt[0]), detector.fixed_r)
        return fixed, fixed
    res = detector.settings.resolution
    return _relative_resolution(np.abs(angles.eta1), pt[0], res, rng), _relative_resolution(np.abs(angles.eta2), pt[1], res, rng)


def _true_k(angles: Angles, pt: _Pair, r: _Pair, detector: _Detector) -> tuple[np.ndarray, np.ndarray, _Pair]:
    """The k category of the true (post-FSR) kinematics, the event's k and each muon's k.

    With a per-muon map the event's k is its effective one: true over predicted mass resolution.
    """
    lead_first = pt[0] >= pt[1]
    category = _k_category(
        np.where(lead_first, pt[0], pt[1]), np.where(lead_first, angles.eta1, angles.eta2),
        np.where(lead_first, angles.eta2, angles.eta1), detector.scheme,
    )  # fmt: skip
    if detector.muon_k_map is None:
        k = detector.k_values[category]
        return category, k, (k, k)
    k1 = muon_k(detector.muon_k_map, np.abs(angles.eta1), pt[0])
    k2 = muon_k(detector.muon_k_map, np.abs(angles.eta2), pt[1])
    return category, np.hypot(k1 * r[0], k2 * r[1]) / np.hypot(r[0], r[1]), (k1, k2)


def _smeared(pt: np.ndarray, r: np.ndarray, k_muon: np.ndarray, smearing: SmearingSettings, rng: np.random.Generator) -> np.ndarray:
    """``pt * (1 + k r z)`` as written (float32), ``z`` a unit residual."""
    return as_written(pt * np.maximum(1.0 + k_muon * r * _unit_residual(len(pt), smearing, rng), _MIN_PT_SCALE))


def _reconstructed(
    angles: Angles, pt: _Pair, r: _Pair, k_mu: _Pair, settings: GeneratorSettings, rng: np.random.Generator
) -> tuple[_Pair, np.ndarray]:
    """The written muon pTs and dimuon mass: of those muons (``mass_model: muons``) or smeared on its own."""
    smear = settings.smearing
    reco = (_smeared(pt[0], r[0], k_mu[0], smear, rng), _smeared(pt[1], r[1], k_mu[1], smear, rng))
    if settings.mass_model == "independent":
        reco_for_mass = (_smeared(pt[0], r[0], k_mu[0], smear, rng), _smeared(pt[1], r[1], k_mu[1], smear, rng))
    else:
        reco_for_mass = reco
    return reco, pair_mass(reco_for_mass[0], reco_for_mass[1], angles, settings.muon_mass_gev)


def _passes(reco: _Pair, mass: np.ndarray, angles: Angles, detector: _Detector) -> np.ndarray:
    """The acceptance and the mass window, on the written (reco) quantities."""
    acc = detector.settings.acceptance
    return (
        (np.maximum(reco[0], reco[1]) > acc.lead_pt_min_gev)
        & (np.minimum(reco[0], reco[1]) > acc.sublead_pt_min_gev)
        & (np.abs(angles.eta1) < acc.abseta_max)
        & (np.abs(angles.eta2) < acc.abseta_max)
        & (mass > detector.window[0])
        & (mass < detector.window[1])
    )


def _simulate_batch(proc: ProcessSettings, n: int, rng: np.random.Generator, detector: _Detector) -> dict[str, np.ndarray]:
    """Simulate ``n`` candidates and return the accepted ones: float64 reco columns, ``mu1`` the leading muon, and the truth."""
    settings = detector.settings
    gen_mass, angles, gen_pt = _central_decays(proc, n, rng, settings)
    pt = _radiated(gen_mass, gen_pt, settings, rng)
    true_mass = pair_mass(pt[0], pt[1], angles, settings.muon_mass_gev)
    r = _resolutions(angles, pt, detector, rng)
    category, k, k_mu = _true_k(angles, pt, r, detector)
    reco, mass = _reconstructed(angles, pt, r, k_mu, settings, rng)

    keep = _passes(reco, mass, angles, detector)
    kept = {"mass": mass, "truth_category": category, "truth_k": k, "truth_gen_mass": gen_mass, "truth_mass": true_mass}
    cols = {name: values[keep] for name, values in kept.items()}
    angles = angles.select(keep)
    n_kept = len(cols["mass"])
    # Per muon, named with {} for its number; the first decay muon is the mu- one.
    pairs = {
        "mu{}_pt": (reco[0][keep], reco[1][keep]),
        "mu{}_r": (r[0][keep], r[1][keep]),
        "mu{}_eta": (angles.eta1, angles.eta2),
        "mu{}_phi": (angles.phi1, angles.phi2),
        "mu{}_charge": (np.full(n_kept, -1.0), np.full(n_kept, 1.0)),
    }
    if detector.detailed_truth:
        k1, k2, pt1, pt2 = k_mu[0][keep], k_mu[1][keep], pt[0][keep], pt[1][keep]
        cols["truth_sigma_m"] = 0.5 * cols["truth_mass"] * np.hypot(k1 * pairs["mu{}_r"][0], k2 * pairs["mu{}_r"][1])
        pairs |= {
            "truth_mu{}_k": (k1, k2),
            "truth_mu{}_pt": (pt1, pt2),
            "truth_mu{}_fsr_fraction": (1.0 - pt1 / gen_pt[0][keep], 1.0 - pt2 / gen_pt[1][keep]),
        }
    swap = (reco[1] > reco[0])[keep]
    for name, (first, second) in pairs.items():
        cols[name.format(1)] = np.where(swap, second, first)
        cols[name.format(2)] = np.where(swap, first, second)
    return cols


def _accepted_events(proc: ProcessSettings, n: int, rng: np.random.Generator, detector: _Detector) -> dict[str, np.ndarray]:
    """Exactly ``n`` accepted events, simulated in bounded batches sized from the running efficiency."""
    parts: list[dict[str, np.ndarray]] = []
    have, tried, efficiency = 0, 0, 0.3
    while have < n:
        n_candidates = min(_MAX_BATCH, max(1000, int(1.1 * (n - have) / efficiency)))
        batch = _simulate_batch(proc, n_candidates, rng, detector)
        accepted, tried = len(batch["mass"]), tried + n_candidates
        if have + accepted == 0 and tried >= _MAX_BATCH:
            raise ConfigError(
                f"no {proc.lineshape} candidate in {tried} passes the acceptance and the mass window "
                f"{list(detector.window)} GeV; check mass_range_gev and mass_window_gev in the generator settings"
            )
        efficiency = max(accepted / n_candidates, 1e-3)
        parts.append(batch)
        have += accepted
    if not parts:  # n == 0: an empty batch still yields the column set
        return _simulate_batch(proc, 0, rng, detector)
    return {key: np.concatenate([p[key] for p in parts])[:n] for key in parts[0]}


def _dimuon_pt_rapidity(cols: Mapping[str, np.ndarray], muon_mass: float) -> tuple[np.ndarray, np.ndarray]:
    """pT and rapidity of the k=1 reco dimuon."""
    px = cols["mu1_pt"] * np.cos(cols["mu1_phi"]) + cols["mu2_pt"] * np.cos(cols["mu2_phi"])
    py = cols["mu1_pt"] * np.sin(cols["mu1_phi"]) + cols["mu2_pt"] * np.sin(cols["mu2_phi"])
    pz1, pz2 = cols["mu1_pt"] * np.sinh(cols["mu1_eta"]), cols["mu2_pt"] * np.sinh(cols["mu2_eta"])
    e1 = np.sqrt(pz1**2 + cols["mu1_pt"] ** 2 + muon_mass**2)
    e2 = np.sqrt(pz2**2 + cols["mu2_pt"] ** 2 + muon_mass**2)
    energy, pz = e1 + e2, pz1 + pz2
    return np.hypot(px, py), 0.5 * np.log((energy + pz) / (energy - pz))


def _k_category(lead_pt: np.ndarray, lead_eta: np.ndarray, sublead_eta: np.ndarray, scheme: CategoryScheme) -> np.ndarray:
    """Category of true kinematics, the leading pT clamped into the pT edges (|eta| is always inside)."""
    top = np.nextafter(scheme.pt_edges[-1], -np.inf)
    return scheme.assign(np.clip(lead_pt, scheme.pt_edges[0], top), np.abs(lead_eta), np.abs(sublead_eta))


def _run_numbers(n: int, era: str | None, settings: GeneratorSettings, rng: np.random.Generator) -> np.ndarray:
    """Runs uniform in the era's range; without an era, eras are drawn by luminosity."""
    names = [era] if era is not None else list(settings.eras)
    lumi = np.array([settings.eras[e].lumi_fb for e in names])
    which = rng.choice(len(names), size=n, p=lumi / lumi.sum())
    first = np.array([settings.eras[e].runs[0] for e in names])
    last = np.array([settings.eras[e].runs[1] for e in names])
    return rng.integers(first[which], last[which], endpoint=True)


def _output_columns(
    cols: dict[str, np.ndarray], kind: Kind, settings: GeneratorSettings, chunk: FileChunk, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """The Stage-1 columns, in the order of a file: muons, the dimuon, bookkeeping, unrelated and opt-in columns."""
    n = len(cols["mass"])
    dimuon_pt, dimuon_rapidity = _dimuon_pt_rapidity(cols, settings.muon_mass_gev)
    out: dict[str, np.ndarray] = {}
    for mu in ("mu1", "mu2"):
        out[f"{mu}_pt"] = cols[f"{mu}_pt"].astype(np.float32)
        out[f"{mu}_ptErr"] = (cols[f"{mu}_r"] * cols[f"{mu}_pt"]).astype(np.float32)
        out[f"{mu}_eta"] = cols[f"{mu}_eta"].astype(np.float32)
        out[f"{mu}_phi"] = cols[f"{mu}_phi"].astype(np.float32)
        out[f"{mu}_charge"] = cols[f"{mu}_charge"].astype(np.int32)
    out["dimuon_mass"] = cols["mass"].astype(np.float32)
    out["dimuon_pt"] = dimuon_pt.astype(np.float32)
    out["dimuon_rapidity"] = dimuon_rapidity.astype(np.float32)
    out["event"] = np.arange(chunk.first_event, chunk.first_event + n, dtype=np.int64)
    if kind == "data":
        out["run"] = _run_numbers(n, chunk.era, settings, rng).astype(np.int32)
    else:
        out["run"] = np.ones(n, dtype=np.int32)
    out["nJets"] = rng.poisson(settings.extra_columns.njets_mean, n).astype(np.int32)
    out["met"] = rng.exponential(settings.extra_columns.met_mean_gev, n).astype(np.float32)
    if getattr(settings.samples, kind).weighted:
        w = settings.weights
        out["wgt_nominal"] = np.maximum(rng.normal(w.mean, w.sigma, n), w.min).astype(np.float32)
    if settings.gen_mass_column and kind != "data":
        out["dimuon_mass_gen"] = cols["truth_gen_mass"].astype(np.float32)
    return out


def _detector_of(kind: Kind, model: EventModel, chunk: FileChunk, detailed_truth: bool) -> _Detector:
    """The detector of a ``kind`` of sample under ``model``, after the kind and the chunk's era are checked."""
    if kind not in KINDS:
        raise ConfigError(f"unknown sample kind '{kind}'; valid: {', '.join(KINDS)}")
    settings, scheme = model.settings, model.scheme
    if chunk.era is not None and chunk.era not in settings.eras:
        raise ConfigError(f"unknown era '{chunk.era}'; valid: {', '.join(settings.eras)}")
    sample = getattr(settings.samples, kind)
    k_map = resolve_k_map(builtin_k_map(sample.k_map, settings, scheme), model.k_map, scheme)
    return _Detector(
        settings, sample.mass_window_gev, model.fixed_relative_resolution, np.array([k_map[name] for name in scheme.names]),
        scheme, getattr(settings.muon_k_maps, sample.k_map), detailed_truth=detailed_truth,
    )  # fmt: skip


def generate_events(
    kind: Kind,
    n: int,
    rng_seed: int | np.random.SeedSequence,
    model: EventModel | None = None,
    *,
    with_truth: bool = False,
    chunk: FileChunk = FileChunk(),
) -> dict[str, np.ndarray]:
    """Generate ``n`` accepted events in memory, with the columns a Stage-1 file holds.

    Args:
        kind: ``data`` (Z + background, no weights), ``mc`` (DY, weighted) or ``signal`` (H, weighted).
        n: number of events returned (exactly).
        rng_seed: seed or ``SeedSequence``; the same seed gives identical arrays.
        model: settings, categories, k override and fixed resolution (``EventModel()`` when omitted).
        with_truth: add the ``truth_*`` columns (float64/int/bool): ``category`` (of the true
            post-FSR kinematics, clamped in pT), ``k`` (with per-muon k: ``sigma_m`` over the
            prediction of the true pT), ``gen_mass`` (pre-FSR), ``mass`` (post-FSR), ``is_background``
            and, with ``chunk.truth_detail``, ``mu1_k``/``mu2_k``, ``mu1_pt``/``mu2_pt`` (after FSR),
            ``mu1_fsr_fraction``/``mu2_fsr_fraction`` (lost to FSR, not recovered) and ``sigma_m``
            (the core's true mass resolution, ``m/2 sqrt((k_1 r_1)^2 + (k_2 r_2)^2)``).
        chunk: the era, first event number and truth detail of events bound for a file.

    Raises:
        ConfigError: unknown kind or era, a negative count, or a bad k map.
    """
    if n < 0:
        raise ConfigError(f"event count must be >= 0, got {n}")
    model = model or EventModel()
    detector = _detector_of(kind, model, chunk, detailed_truth=with_truth and chunk.truth_detail)
    settings = model.settings
    sample = getattr(settings.samples, kind)
    rng = np.random.default_rng(rng_seed)
    n_background = int(round(n * sample.background_fraction))
    parts = [
        _accepted_events(getattr(settings.processes, sample.process), n - n_background, rng, detector),
        _accepted_events(settings.processes.background, n_background, rng, detector),
    ]
    order = rng.permutation(n)
    cols = {key: np.concatenate([p[key] for p in parts])[order] for key in parts[0]}
    out = _output_columns(cols, kind, settings, chunk, rng)
    if with_truth:
        out |= {name: values for name, values in cols.items() if name.startswith("truth_")}
        out["truth_is_background"] = (np.arange(n) >= n - n_background)[order]
    return out
