"""Synthetic Stage-1 "compacted" samples whose true resolution scale per category is known.

The calibration can only be validated against truth, and the real Stage-1 files have none, so
this module writes files with the real layout and columns from a simple but realistic model
(all numbers in ``configs/generator.yaml``):

* Z (Breit-Wigner, 1+cos^2 decay), a falling background, or H -> mumu; boson pT ~ Gamma,
  rapidity ~ Gaussian; boosted to the lab.
* FSR: a muon sometimes loses a fraction of its momentum (the low-mass tail).
* Each muon gets a predicted relative resolution ``r`` (written as ``ptErr = r * pt``) and is
  smeared as ``pt_reco = pt_true * (1 + r * z)``, ``z`` a unit Gaussian core with wider tails.

How the truth enters: each muon is smeared with ``k`` times its predicted resolution,
``pt_reco = pt_true * (1 + k[cat] * r * z)``, ``cat`` the category of the true (post-FSR)
kinematics, while ``ptErr`` stays ``r * pt``. So the observed core width is ``k`` times what
``ptErr`` predicts, and the ideal calibration factor of a category is ``k``.

* ``mass_model: muons`` (default): ``dimuon_mass`` is the invariant mass of the written muons,
  as in real data, so the leading-pT window of a category acts on the reconstructed mass.
  ``independent``: the mass is smeared with residuals of its own (same ``k * r``), so cuts on
  the muons act on the true mass. Both placements are tested against truth.
* Acceptance and the mass window are applied to the written (reco) quantities, so the event
  content depends on ``k``, as it does in real data.
* Kinematics are rounded to float32 before cutting, so an event's cuts are exactly what a reader
  of the written float32 columns computes. Near a pT edge the reco category may differ from the
  true one (migration), as in data: its events then carry the neighbouring category's ``k``.
* A leading-muon pT outside the category pT edges (26-30 GeV, >= 200 GeV) takes the nearest
  pT bin's k, as correctionlib's ``flow: clamp`` look-up would; |eta| is always inside.
"""

from __future__ import annotations

import json
import logging
import math
import multiprocessing
import shutil
import tempfile
import zlib
from collections.abc import Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict, Field, model_validator

from lib.categories import CategoryScheme
from lib.config import load_config, load_yaml_model
from lib.errors import ConfigError, InputError
from lib.executor import default_workers
from lib.io.atomic import write_text_atomic

__all__ = [
    "GENERATOR_VERSION",
    "DEFAULT_SETTINGS",
    "KINDS",
    "GeneratorSettings",
    "load_settings",
    "default_scheme",
    "builtin_k_map",
    "resolve_k_map",
    "load_k_override",
    "generate_events",
    "generate_sample",
]

log = logging.getLogger(__name__)

GENERATOR_VERSION = "1.0.0"
DEFAULT_SETTINGS = Path(__file__).resolve().parent.parent / "configs" / "generator.yaml"
KINDS = ("data", "mc", "signal")
DEFAULT_CHUNK_ROWS = 1_000_000
# Candidates simulated per batch: bounds memory whatever the requested event count.
_MAX_BATCH = 1_000_000
# Stage-1 job directories hold a few parts each: <dataset>/<n>/part<i>.parquet.
_PARTS_PER_DIRECTORY = 2
# Numerical guard only: keeps a reco pT positive for an (astronomically rare) r*z below -1.
_MIN_PT_SCALE = 1e-3

Kind = Literal["data", "mc", "signal"]
KOverride = Mapping[str, float] | float | None


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _increasing(pair: tuple[float, float], what: str) -> None:
    if not pair[0] < pair[1]:
        raise ValueError(f"{what} must be increasing, got {list(pair)}")


class ProcessSettings(_Model):
    lineshape: Literal["relativistic_breit_wigner", "breit_wigner", "exponential"] = Field(
        description="True-mass shape: Cauchy in s, Cauchy in m, or exp(slope * m)."
    )
    mass_gev: float | None = Field(None, gt=0, description="Breit-Wigner pole mass.")
    width_gev: float | None = Field(None, gt=0, description="Breit-Wigner width.")
    slope_per_gev: float | None = Field(None, description="Exponential slope (non-zero).")
    mass_range_gev: tuple[float, float] = Field(description="Truth-level truncation of the mass.")
    angular: Literal["one_plus_cos2", "isotropic"] = Field(description="Rest-frame decay distribution.")
    pt_gamma_shape: float = Field(gt=0, description="Boson pT ~ Gamma(shape, scale).")
    pt_gamma_scale_gev: float = Field(gt=0)
    rapidity_sigma: float = Field(gt=0, description="Boson rapidity ~ N(0, sigma).")

    @model_validator(mode="after")
    def _shape_parameters(self) -> "ProcessSettings":
        _increasing(self.mass_range_gev, "mass_range_gev")
        if self.mass_range_gev[0] <= 0:
            raise ValueError(f"mass_range_gev must be positive, got {list(self.mass_range_gev)}")
        if self.lineshape == "exponential":
            if not self.slope_per_gev:
                raise ValueError("an exponential lineshape needs a non-zero slope_per_gev")
        elif self.mass_gev is None or self.width_gev is None:
            raise ValueError(f"lineshape {self.lineshape} needs mass_gev and width_gev")
        return self


class ProcessesSettings(_Model):
    z: ProcessSettings
    background: ProcessSettings
    higgs: ProcessSettings


class SampleSettings(_Model):
    dataset: str | None = Field(None, description="Dataset directory name (Data uses data_<era>).")
    process: Literal["z", "higgs"]
    background_fraction: float = Field(ge=0, lt=1, description="Share of written events that are background.")
    mass_window_gev: tuple[float, float] = Field(description="Kept if lo < m_reco(k=1) < hi.")
    k_map: Literal["data", "mc"]
    weighted: bool = Field(description="Write a wgt_nominal column.")

    @model_validator(mode="after")
    def _window(self) -> "SampleSettings":
        _increasing(self.mass_window_gev, "mass_window_gev")
        return self


class SamplesSettings(_Model):
    data: SampleSettings
    mc: SampleSettings
    signal: SampleSettings

    @model_validator(mode="after")
    def _datasets(self) -> "SamplesSettings":
        for kind in ("mc", "signal"):
            if not getattr(self, kind).dataset:
                raise ValueError(f"samples.{kind}.dataset is required")
        return self


class EraSettings(_Model):
    lumi_fb: float = Field(gt=0, description="Share of the Data events is proportional to this.")
    runs: tuple[int, int] = Field(description="Run numbers drawn uniformly in [first, last].")

    @model_validator(mode="after")
    def _runs(self) -> "EraSettings":
        if not 0 < self.runs[0] <= self.runs[1]:
            raise ValueError(f"runs must be positive and ordered, got {list(self.runs)}")
        return self


class FsrSettings(_Model):
    probability: float = Field(ge=0, le=1, description="Per-muon probability to radiate.")
    mean_fraction: float = Field(gt=0, description="Mean momentum fraction lost (exponential).")
    max_fraction: float = Field(gt=0, lt=1, description="Truncation of the lost fraction.")


class ResolutionSettings(_Model):
    a_abseta_knots: list[float] = Field(description="|eta| knots of the constant term a(|eta|).")
    a_values: list[float] = Field(description="a at each knot (relative resolution).")
    b_per_gev: float = Field(ge=0, description="Curvature term: r grows as b * pT.")
    lognormal_sigma: float = Field(ge=0, description="Event-by-event spread of ln r.")

    @model_validator(mode="after")
    def _knots(self) -> "ResolutionSettings":
        knots = self.a_abseta_knots
        if len(knots) < 2 or any(b <= a for a, b in zip(knots, knots[1:])):
            raise ValueError(f"a_abseta_knots must be at least two increasing values, got {knots}")
        if len(self.a_values) != len(knots) or min(self.a_values) <= 0:
            raise ValueError(f"a_values needs {len(knots)} positive values, got {self.a_values}")
        return self


class SmearingSettings(_Model):
    core_fraction: float = Field(gt=0, le=1, description="Probability of the N(0,1) core.")
    tail_sigma: float = Field(gt=0, description="Width of the Gaussian tail component.")


class AcceptanceSettings(_Model):
    lead_pt_min_gev: float = Field(ge=0)
    sublead_pt_min_gev: float = Field(ge=0)
    abseta_max: float = Field(gt=0)


class KMapSettings(_Model):
    base: float = Field(gt=0)
    leading_region: dict[str, float] = Field(description="Added per leading-muon |eta| region.")
    subleading_region: dict[str, float] = Field(description="Added per subleading-muon |eta| region.")
    pt_bin: list[float] = Field(description="Added per leading-muon pT bin.")
    overrides: dict[str, float] = Field(default_factory=dict, description="Exact category name -> k.")


class KMapsSettings(_Model):
    data: KMapSettings
    mc: KMapSettings


class WeightSettings(_Model):
    mean: float = Field(gt=0)
    sigma: float = Field(ge=0)
    min: float = Field(gt=0, description="Weights are clipped below here, so all are positive.")


class ExtraColumnSettings(_Model):
    njets_mean: float = Field(ge=0)
    met_mean_gev: float = Field(gt=0)


class GeneratorSettings(_Model):
    """The whole of ``configs/generator.yaml``."""

    muon_mass_gev: float = Field(gt=0)
    processes: ProcessesSettings
    samples: SamplesSettings
    eras: dict[str, EraSettings] = Field(min_length=1)
    fsr: FsrSettings
    resolution: ResolutionSettings
    smearing: SmearingSettings
    acceptance: AcceptanceSettings
    k_maps: KMapsSettings
    weights: WeightSettings
    extra_columns: ExtraColumnSettings
    mass_model: Literal["muons", "independent"] = Field(
        default="muons",
        description="muons: dimuon_mass is the mass of the written (smeared) muons, as in real data; "
        "independent: the mass is smeared with residuals of its own, so muon cuts act on the true mass.",
    )


def load_settings(path: str | Path | None = None) -> GeneratorSettings:
    """Read and validate the generator YAML (``configs/generator.yaml`` by default).

    Raises:
        ConfigError: unreadable file, bad YAML, or a key/value the schema rejects (named in the message).
    """
    return load_yaml_model(Path(path) if path else DEFAULT_SETTINGS, GeneratorSettings, "generator settings")


def default_scheme() -> CategoryScheme:
    """The analysis categories of the default configuration, which the k maps are defined on."""
    return CategoryScheme.from_config(load_config().categories)


# ---------------------------------------------------------------------------------------------
# k maps


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
    return resolve_k_map(out, dict(spec.overrides), scheme)


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


def load_k_override(text: str) -> float | dict[str, float]:
    """Parse a ``--k-data``/``--k-mc`` value: a number (uniform k) or a JSON file ``{category: k}``.

    Raises:
        InputError: the file cannot be read or is not a JSON object.
    """
    try:
        return float(text)
    except ValueError:
        pass
    path = Path(text)
    try:
        raw = json.loads(path.read_text())
    except OSError as err:
        raise InputError(f"cannot read k map {path}: {err.strerror}; give a number or a JSON file") from err
    except json.JSONDecodeError as err:
        raise InputError(f"k map {path} is not valid JSON (line {err.lineno})") from err
    if not isinstance(raw, dict):
        raise InputError(f"k map {path} must be a JSON object {{category name: k}}")
    return raw


def _k_array(k_map: Mapping[str, float], scheme: CategoryScheme) -> np.ndarray:
    """k per flat category index, for a vectorised look-up."""
    return np.array([k_map[name] for name in scheme.names], dtype=np.float64)


# ---------------------------------------------------------------------------------------------
# physics


def _sample_mass(proc: ProcessSettings, n: int, rng: np.random.Generator) -> np.ndarray:
    """True mass by inverse CDF, truncated to the configured range."""
    lo, hi = proc.mass_range_gev
    u = rng.random(n)
    if proc.lineshape == "exponential":
        slope = proc.slope_per_gev
        return lo + np.log1p(u * np.expm1(slope * (hi - lo))) / slope
    mass, width = proc.mass_gev, proc.width_gev
    if proc.lineshape == "breit_wigner":
        t_lo, t_hi = np.arctan(2 * (lo - mass) / width), np.arctan(2 * (hi - mass) / width)
        return mass + 0.5 * width * np.tan(t_lo + u * (t_hi - t_lo))
    scale = mass * width
    t_lo, t_hi = np.arctan((lo**2 - mass**2) / scale), np.arctan((hi**2 - mass**2) / scale)
    s = mass**2 + scale * np.tan(t_lo + u * (t_hi - t_lo))
    return np.sqrt(np.clip(s, lo**2, hi**2))


def _sample_cos_theta(angular: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """cos(theta) flat, or from 1 + cos^2 by solving the cubic CDF with Cardano's formula."""
    u = rng.random(n)
    if angular == "isotropic":
        return 2.0 * u - 1.0
    # CDF (c + c^3/3 + 4/3) * 3/8 = u  <=>  c^3 + 3c + (4 - 8u) = 0, one real root.
    half_q = 2.0 - 4.0 * u
    root = np.sqrt(half_q * half_q + 1.0)
    return np.cbrt(-half_q + root) + np.cbrt(-half_q - root)


def _decay_to_lab(
    proc: ProcessSettings, mass: np.ndarray, rng: np.random.Generator, muon_mass: float
) -> tuple[np.ndarray, ...]:
    """Boson kinematics and two-body decay boosted to the lab: (px, py, pz) of both muons."""
    n = len(mass)
    pt = rng.gamma(proc.pt_gamma_shape, proc.pt_gamma_scale_gev, n)
    rapidity = rng.normal(0.0, proc.rapidity_sigma, n)
    phi = rng.uniform(-np.pi, np.pi, n)
    cos_t = _sample_cos_theta(proc.angular, n, rng)
    phi_star = rng.uniform(-np.pi, np.pi, n)

    mt = np.sqrt(mass * mass + pt * pt)
    energy = mt * np.cosh(rapidity)
    bx, by, bz = pt * np.cos(phi) / energy, pt * np.sin(phi) / energy, mt * np.sinh(rapidity) / energy
    gamma = energy / mass
    p_star = np.sqrt(np.maximum(0.25 * mass * mass - muon_mass**2, 0.0))
    sin_t = np.sqrt(np.maximum(1.0 - cos_t * cos_t, 0.0))
    kx, ky, kz = p_star * sin_t * np.cos(phi_star), p_star * sin_t * np.sin(phi_star), p_star * cos_t
    # Lorentz boost of +-k with velocity b: p = +-k + b * (g^2/(g+1) (b.(+-k)) + g E*).
    b_dot_k = gamma * gamma / (gamma + 1.0) * (bx * kx + by * ky + bz * kz)
    g_e = gamma * 0.5 * mass
    c1, c2 = g_e + b_dot_k, g_e - b_dot_k
    return kx + bx * c1, ky + by * c1, kz + bz * c1, -kx + bx * c2, -ky + by * c2, -kz + bz * c2


def _as_written(values: np.ndarray) -> np.ndarray:
    """Round to float32 (what the files hold) and return float64 for further arithmetic."""
    return values.astype(np.float32).astype(np.float64)


def _pair_mass(pt1: np.ndarray, pt2: np.ndarray, angles: "_Angles", muon_mass: float) -> np.ndarray:
    """Invariant mass of two muons with the given pT and fixed directions."""
    e1 = np.sqrt((pt1 * angles.cosh1) ** 2 + muon_mass**2)
    e2 = np.sqrt((pt2 * angles.cosh2) ** 2 + muon_mass**2)
    m2 = 2.0 * (muon_mass**2 + e1 * e2 - pt1 * pt2 * angles.cos_open)
    return np.sqrt(np.maximum(m2, 0.0))


@dataclass(frozen=True)
class _Angles:
    """Per-event muon directions; FSR and smearing change only pT, never these."""

    eta1: np.ndarray
    phi1: np.ndarray
    eta2: np.ndarray
    phi2: np.ndarray
    cosh1: np.ndarray
    cosh2: np.ndarray
    cos_open: np.ndarray  # cos(dphi) + sinh(eta1) sinh(eta2) = p1.p2 / (pt1 pt2)

    @classmethod
    def from_momenta(cls, px1, py1, pz1, px2, py2, pz2) -> tuple["_Angles", np.ndarray, np.ndarray]:
        pt1, pt2 = np.hypot(px1, py1), np.hypot(px2, py2)
        eta1, eta2 = _as_written(np.arcsinh(pz1 / pt1)), _as_written(np.arcsinh(pz2 / pt2))
        phi1, phi2 = _as_written(np.arctan2(py1, px1)), _as_written(np.arctan2(py2, px2))
        cos_open = np.cos(phi1 - phi2) + np.sinh(eta1) * np.sinh(eta2)
        return cls(eta1, phi1, eta2, phi2, np.cosh(eta1), np.cosh(eta2), cos_open), pt1, pt2

    def select(self, mask: np.ndarray) -> "_Angles":
        return _Angles(*(getattr(self, f)[mask] for f in self.__dataclass_fields__))


def _fsr(pt: np.ndarray, fsr: FsrSettings, rng: np.random.Generator) -> np.ndarray:
    """pT after FSR: a fraction x ~ truncated exponential is lost with the configured probability."""
    n = len(pt)
    radiates = rng.random(n) < fsr.probability
    u = rng.random(n)
    kept_probability = -np.expm1(-fsr.max_fraction / fsr.mean_fraction)  # P(x < max_fraction) untruncated
    x = -fsr.mean_fraction * np.log1p(-u * kept_probability)
    return np.where(radiates, pt * (1.0 - x), pt)


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


def _simulate_batch(
    proc: ProcessSettings,
    n: int,
    rng: np.random.Generator,
    settings: GeneratorSettings,
    window: tuple[float, float],
    fixed_r: float | None,
    k_values: np.ndarray,
    scheme: CategoryScheme,
) -> dict[str, np.ndarray]:
    """Simulate ``n`` candidates and return the accepted ones (float64 truth and reco columns).

    Each muon is smeared with ``k`` times its predicted resolution, ``k`` of the category of the
    true (post-FSR) kinematics. ``mass_model: muons`` builds the mass from those muons, as real
    data do, so every cut on a muon also acts on the mass; ``independent`` smears the mass with
    residuals of its own (same ``k * r``), so cuts on the muons act on the true mass.
    """
    mu = settings.muon_mass_gev
    acc = settings.acceptance
    gen_mass = _sample_mass(proc, n, rng)
    px1, py1, pz1, px2, py2, pz2 = _decay_to_lab(proc, gen_mass, rng, mu)
    # |eta| is not smeared, so this early cut is exact and saves most of the work.
    limit = math.sinh(acc.abseta_max)
    central = (np.abs(pz1) < limit * np.hypot(px1, py1)) & (np.abs(pz2) < limit * np.hypot(px2, py2))
    angles, pt1, pt2 = _Angles.from_momenta(px1[central], py1[central], pz1[central], px2[central], py2[central], pz2[central])
    gen_mass = gen_mass[central]
    m = len(gen_mass)

    pt1, pt2 = _fsr(pt1, settings.fsr, rng), _fsr(pt2, settings.fsr, rng)
    true_mass = _pair_mass(pt1, pt2, angles, mu)
    if fixed_r is None:
        r1 = _relative_resolution(np.abs(angles.eta1), pt1, settings.resolution, rng)
        r2 = _relative_resolution(np.abs(angles.eta2), pt2, settings.resolution, rng)
    else:
        r1 = r2 = np.full(m, fixed_r)
    lead_first = pt1 >= pt2
    category = _k_category(
        np.where(lead_first, pt1, pt2), np.where(lead_first, angles.eta1, angles.eta2),
        np.where(lead_first, angles.eta2, angles.eta1), scheme,
    )  # fmt: skip
    k = k_values[category]

    def smeared(pt: np.ndarray, r: np.ndarray) -> np.ndarray:
        return _as_written(pt * np.maximum(1.0 + k * r * _unit_residual(m, settings.smearing, rng), _MIN_PT_SCALE))

    reco1, reco2 = smeared(pt1, r1), smeared(pt2, r2)
    if settings.mass_model == "muons":
        mass = _pair_mass(reco1, reco2, angles, mu)
    else:
        mass = _pair_mass(smeared(pt1, r1), smeared(pt2, r2), angles, mu)

    lead, sub = np.maximum(reco1, reco2), np.minimum(reco1, reco2)
    keep = (
        (lead > acc.lead_pt_min_gev)
        & (sub > acc.sublead_pt_min_gev)
        & (np.abs(angles.eta1) < acc.abseta_max)
        & (np.abs(angles.eta2) < acc.abseta_max)
        & (mass > window[0])
        & (mass < window[1])
    )
    angles = angles.select(keep)
    swap = (reco2 > reco1)[keep]
    cols = {
        "gen_mass": gen_mass[keep],
        "true_mass": true_mass[keep],
        "mass": mass[keep],
        "category": category[keep],
        "k": k[keep],
    }
    # mu1 is the leading muon; the first decay muon is the mu- one.
    pairs = {
        "pt": (reco1[keep], reco2[keep]),
        "r": (r1[keep], r2[keep]),
        "eta": (angles.eta1, angles.eta2),
        "phi": (angles.phi1, angles.phi2),
        "charge": (np.full(len(swap), -1.0), np.full(len(swap), 1.0)),
    }
    for name, (first, second) in pairs.items():
        cols[f"mu1_{name}"] = np.where(swap, second, first)
        cols[f"mu2_{name}"] = np.where(swap, first, second)
    return cols


def _accepted_events(
    proc: ProcessSettings,
    n: int,
    rng: np.random.Generator,
    settings: GeneratorSettings,
    window: tuple[float, float],
    fixed_r: float | None,
    k_values: np.ndarray,
    scheme: CategoryScheme,
) -> dict[str, np.ndarray]:
    """Exactly ``n`` accepted events, simulated in bounded batches sized from the running efficiency."""
    parts: list[dict[str, np.ndarray]] = []
    have, tried, efficiency = 0, 0, 0.3
    while have < n:
        n_candidates = min(_MAX_BATCH, max(1000, int(1.1 * (n - have) / efficiency)))
        batch = _simulate_batch(proc, n_candidates, rng, settings, window, fixed_r, k_values, scheme)
        accepted, tried = len(batch["gen_mass"]), tried + n_candidates
        if have + accepted == 0 and tried >= _MAX_BATCH:
            raise ConfigError(
                f"no {proc.lineshape} candidate in {tried} passes the acceptance and the mass window "
                f"{list(window)} GeV; check mass_range_gev and mass_window_gev in the generator settings"
            )
        efficiency = max(accepted / n_candidates, 1e-3)
        parts.append(batch)
        have += accepted
    if not parts:  # n == 0: an empty batch still yields the column set
        return _simulate_batch(proc, 0, rng, settings, window, fixed_r, k_values, scheme)
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
    cols: dict[str, np.ndarray],
    sample: SampleSettings,
    kind: Kind,
    era: str | None,
    first_event: int,
    settings: GeneratorSettings,
    rng: np.random.Generator,
) -> dict[str, np.ndarray]:
    """The Stage-1 columns: muons, the dimuon mass, bookkeeping and unrelated columns."""
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
    out["event"] = np.arange(first_event, first_event + n, dtype=np.int64)
    if kind == "data":
        out["run"] = _run_numbers(n, era, settings, rng).astype(np.int32)
    else:
        out["run"] = np.ones(n, dtype=np.int32)
    out["nJets"] = rng.poisson(settings.extra_columns.njets_mean, n).astype(np.int32)
    out["met"] = rng.exponential(settings.extra_columns.met_mean_gev, n).astype(np.float32)
    if sample.weighted:
        w = settings.weights
        out["wgt_nominal"] = np.maximum(rng.normal(w.mean, w.sigma, n), w.min).astype(np.float32)
    return out


def generate_events(
    kind: Kind,
    n: int,
    rng_seed: int | np.random.SeedSequence,
    k_map: KOverride = None,
    settings: GeneratorSettings | None = None,
    *,
    scheme: CategoryScheme | None = None,
    fixed_relative_resolution: float | None = None,
    with_truth: bool = False,
    era: str | None = None,
    first_event: int = 1,
) -> dict[str, np.ndarray]:
    """Generate ``n`` accepted events in memory, with the columns a Stage-1 file holds.

    Args:
        kind: ``data`` (Z + background, no weights), ``mc`` (DY, weighted) or ``signal`` (H, weighted).
        n: number of events returned (exactly).
        rng_seed: seed or ``SeedSequence``; the same seed gives identical arrays.
        k_map: true resolution scale: ``None`` for the sample's built-in map, a number for a
            uniform k, or ``{category: k}`` replacing the built-in value of the categories named.
            It changes ``dimuon_mass`` only.
        settings: generator settings (``configs/generator.yaml`` when omitted).
        scheme: category scheme the k map is defined on (the default configuration's when omitted).
        fixed_relative_resolution: give every muon this relative resolution (no |eta|/pT
            dependence, no spread), so ``sigma_pred`` lies in a narrow band: for fit tests.
        with_truth: add ``truth_*`` columns: ``category`` (the k category: of the true post-FSR
            kinematics, clamped in pT), ``k``, ``gen_mass`` (pre-FSR), ``mass`` (post-FSR true
            mass) and ``is_background``.
        era: Data era for run numbers (drawn by luminosity when omitted).
        first_event: event number of the first event (numbers are consecutive).

    Returns:
        Column name -> numpy array (float32, int32 or int64; truth columns float64/int8/bool).

    Raises:
        ConfigError: unknown kind or era, bad k map, or a non-positive fixed resolution.
    """
    if kind not in KINDS:
        raise ConfigError(f"unknown sample kind '{kind}'; valid: {', '.join(KINDS)}")
    if n < 0:
        raise ConfigError(f"event count must be >= 0, got {n}")
    settings = settings or load_settings()
    scheme = scheme or default_scheme()
    if era is not None and era not in settings.eras:
        raise ConfigError(f"unknown era '{era}'; valid: {', '.join(settings.eras)}")
    if fixed_relative_resolution is not None and not fixed_relative_resolution > 0:
        raise ConfigError(f"fixed_relative_resolution must be positive, got {fixed_relative_resolution}")
    sample: SampleSettings = getattr(settings.samples, kind)
    k_values = _k_array(resolve_k_map(builtin_k_map(sample.k_map, settings, scheme), k_map, scheme), scheme)

    rng = np.random.default_rng(rng_seed)
    n_background = int(round(n * sample.background_fraction))
    main_proc = getattr(settings.processes, sample.process)
    parts = [
        _accepted_events(
            main_proc, n - n_background, rng, settings, sample.mass_window_gev, fixed_relative_resolution, k_values, scheme
        ),
        _accepted_events(
            settings.processes.background, n_background, rng, settings, sample.mass_window_gev, fixed_relative_resolution,
            k_values, scheme,
        ),
    ]
    order = rng.permutation(n)
    cols = {key: np.concatenate([p[key] for p in parts])[order] for key in parts[0]}
    is_background = (np.arange(n) >= n - n_background)[order]

    out = _output_columns(cols, sample, kind, era, first_event, settings, rng)
    if with_truth:
        out |= {
            "truth_category": cols["category"],
            "truth_k": cols["k"],
            "truth_gen_mass": cols["gen_mass"],
            "truth_mass": cols["true_mass"],
            "truth_is_background": is_background,
        }
    return out


# ---------------------------------------------------------------------------------------------
# writing a sample


@dataclass(frozen=True)
class _Dataset:
    """One dataset directory to write: its name, sample kind, Data era and event count."""

    name: str
    kind: Kind
    era: str | None
    n_events: int


@dataclass(frozen=True)
class _FileTask:
    """Everything a (possibly separate) process needs to write one file; picklable."""

    dataset: _Dataset
    i_file: int
    n_events: int
    first_event: int
    staging: Path
    seed: int
    k_map: Mapping[str, float]
    settings: GeneratorSettings
    scheme: CategoryScheme
    row_group_rows: int
    chunk_rows: int

    @property
    def rel_path(self) -> str:
        n, i = divmod(self.i_file, _PARTS_PER_DIRECTORY)
        return f"{self.dataset.name}/{n}/part{i}.parquet"


def _schema(weighted: bool) -> pa.Schema:
    """Column order and types of a written file."""
    fields = []
    for mu in ("mu1", "mu2"):
        fields += [(f"{mu}_{c}", pa.float32()) for c in ("pt", "ptErr", "eta", "phi")]
        fields.append((f"{mu}_charge", pa.int32()))
    fields += [
        ("dimuon_mass", pa.float32()),
        ("dimuon_pt", pa.float32()),
        ("dimuon_rapidity", pa.float32()),
        ("event", pa.int64()),
        ("run", pa.int32()),
        ("nJets", pa.int32()),
        ("met", pa.float32()),
    ]
    if weighted:
        fields.append(("wgt_nominal", pa.float32()))
    return pa.schema(fields)


def _split(n: int, weights: list[float]) -> list[int]:
    """Integer shares of ``n`` proportional to ``weights`` (largest remainder, deterministic).

    >>> _split(10, [1.0, 1.0, 1.0])
    [4, 3, 3]
    """
    exact = np.asarray(weights, dtype=np.float64) / np.sum(weights) * n
    counts = np.floor(exact).astype(np.int64)
    for i in np.argsort(-(exact - counts), kind="stable")[: n - int(counts.sum())]:
        counts[i] += 1
    return [int(c) for c in counts]


def _plan(n_data: int, n_mc: int, n_signal: int, settings: GeneratorSettings) -> list[_Dataset]:
    """Every dataset the generator owns, including empty ones (so stale copies are replaced)."""
    eras = list(settings.eras)
    shares = _split(n_data, [settings.eras[e].lumi_fb for e in eras])
    plan = [_Dataset(f"data_{era}", "data", era, count) for era, count in zip(eras, shares)]
    plan.append(_Dataset(settings.samples.mc.dataset, "mc", None, n_mc))
    plan.append(_Dataset(settings.samples.signal.dataset, "signal", None, n_signal))
    return plan


def _write_file(task: _FileTask) -> np.ndarray:
    """Write one file chunk by chunk; returns its event count per k category.

    Each chunk has its own stream ``SeedSequence(seed, spawn_key=(crc32(dataset), file, chunk))``,
    so the bytes depend only on the arguments (not on the number of workers), and memory only
    on ``chunk_rows``.
    """
    sample: SampleSettings = getattr(task.settings.samples, task.dataset.kind)
    schema = _schema(sample.weighted)
    counts = np.zeros(task.scheme.n_categories, dtype=np.int64)
    key = zlib.crc32(task.dataset.name.encode())
    path = task.staging / task.rel_path
    path.parent.mkdir(parents=True, exist_ok=True)
    with pq.ParquetWriter(path, schema) as writer:
        for i_chunk, start in enumerate(range(0, task.n_events, task.chunk_rows)):
            n_chunk = min(task.chunk_rows, task.n_events - start)
            cols = generate_events(
                task.dataset.kind,
                n_chunk,
                np.random.SeedSequence(task.seed, spawn_key=(key, task.i_file, i_chunk)),
                task.k_map,
                task.settings,
                scheme=task.scheme,
                with_truth=True,
                era=task.dataset.era,
                first_event=task.first_event + start,
            )
            counts += np.bincount(cols["truth_category"], minlength=task.scheme.n_categories)
            table = pa.table({name: cols[name] for name in schema.names}, schema=schema)
            writer.write_table(table, row_group_size=task.row_group_rows)
    return counts


def _file_tasks(
    plan: list[_Dataset],
    files_per_dataset: int,
    k_maps: Mapping[str, Mapping[str, float]],
    settings: GeneratorSettings,
    **common: object,
) -> list[_FileTask]:
    """Split every dataset into ``files_per_dataset`` files (fewer when it has fewer events)."""
    tasks = []
    for ds in plan:
        k_map = k_maps[getattr(settings.samples, ds.kind).k_map]
        first_event = 1
        for i_file, n_file in enumerate(_split(ds.n_events, [1.0] * files_per_dataset)):
            if n_file:
                tasks.append(_FileTask(ds, i_file, n_file, first_event, k_map=k_map, settings=settings, **common))
                first_event += n_file
    return tasks


def _run_tasks(tasks: list[_FileTask], workers: int) -> list[np.ndarray]:
    """Write the files in this process or on a small process pool (results in task order)."""
    if workers <= 1 or len(tasks) <= 1:
        return [_logged(task, _write_file(task)) for task in tasks]
    # forkserver: workers do not inherit this process's threads (pyarrow's pools).
    context = multiprocessing.get_context("forkserver")
    with ProcessPoolExecutor(max_workers=min(workers, len(tasks)), mp_context=context) as pool:
        return [_logged(task, c) for task, c in zip(tasks, pool.map(_write_file, tasks))]


def _logged(task: _FileTask, counts: np.ndarray) -> np.ndarray:
    """Log a finished file here, since worker processes have no logging configured."""
    log.info("wrote %s (%d events)", task.rel_path, task.n_events)
    return counts


def _replace_datasets(staging: Path, compacted: Path, names: list[str]) -> None:
    """Move the staged datasets into place, removing older copies of the same datasets."""
    compacted.mkdir(parents=True, exist_ok=True)
    for name in names:
        target = compacted / name
        if target.exists():
            log.info("replacing existing %s", target)
            old = staging / f".old-{name}"
            target.rename(old)
            shutil.rmtree(old)
        if (staging / name).exists():
            (staging / name).rename(target)


def _check_sample_args(year: int, seed: int, sizes: Mapping[str, int]) -> None:
    """Reject nonsensical arguments with a message naming the argument."""
    for name, value in sizes.items():
        minimum = 0 if name.startswith("n_") else 1
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
            raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if seed < 0:
        raise ConfigError(f"seed must be >= 0, got {seed}")
    if not 1900 <= year <= 2100:
        raise ConfigError(f"year must be a four-digit year, got {year}")


def generate_sample(
    output_root: str | Path,
    year: int = 2018,
    seed: int = 20261123,
    n_data: int = 1_000_000,
    n_mc: int = 1_000_000,
    n_signal: int = 200_000,
    k_data: KOverride = None,
    k_mc: KOverride = None,
    files_per_dataset: int = 4,
    row_group_rows: int = 100_000,
    settings: GeneratorSettings | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    workers: int | None = None,
) -> Path:
    """Write a Stage-1 "compacted" sample and its ``truth.json``; returns ``<output_root>/<year>``.

    Layout: ``<root>/<year>/compacted/<dataset>/<n>/part<i>.parquet`` for ``data_<era>``, the DY
    MC and the signal dataset, ``files_per_dataset`` files each, row groups of ``row_group_rows``.
    Datasets are written to a staging directory and moved into place at the end, replacing older
    copies of the same datasets (also when now empty), so no stale file is ever globbed. The
    truth file is written last, atomically. Same arguments give byte-identical files.

    Args:
        k_data: override of the built-in Data k map (number or ``{category: k}``), see ``generate_events``.
        k_mc: the same for MC and signal.
        chunk_rows: events generated and held in memory at once (per worker).
        workers: processes writing files in parallel (default: the usable cores; 1 = in-process).

    Raises:
        ConfigError: invalid argument, settings or k map.
        OSError: the output cannot be written.
    """
    sizes = {
        "n_data": n_data,
        "n_mc": n_mc,
        "n_signal": n_signal,
        "files_per_dataset": files_per_dataset,
        "row_group_rows": row_group_rows,
        "chunk_rows": chunk_rows,
    }
    _check_sample_args(year, seed, sizes)
    settings = settings or load_settings()
    scheme = default_scheme()
    k_maps: dict[str, dict[str, float]] = {}
    for which, override in (("data", k_data), ("mc", k_mc)):
        try:
            k_maps[which] = resolve_k_map(builtin_k_map(which, settings, scheme), override, scheme)
        except ConfigError as err:
            raise ConfigError(f"{which} k map: {err}") from err
    year_dir = Path(output_root) / str(year)
    year_dir.mkdir(parents=True, exist_ok=True)
    plan = _plan(n_data, n_mc, n_signal, settings)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=year_dir))
    try:
        tasks = _file_tasks(
            plan, files_per_dataset, k_maps, settings,
            staging=staging, seed=seed, scheme=scheme, row_group_rows=row_group_rows, chunk_rows=chunk_rows,
        )
        counts = _run_tasks(tasks, default_workers() if workers is None else workers)
        # No truth file while the datasets change: a crash must not leave a truth that lies.
        (year_dir / "truth.json").unlink(missing_ok=True)
        _replace_datasets(staging, year_dir / "compacted", [ds.name for ds in plan])
    finally:
        shutil.rmtree(staging, ignore_errors=True)

    truth = _truth(seed, year, sizes, plan, tasks, counts, k_maps, {"data": k_data, "mc": k_mc}, scheme, settings)
    write_text_atomic(year_dir / "truth.json", json.dumps(truth, indent=2) + "\n")
    log.info("sample written under %s (truth.json beside it)", year_dir)
    return year_dir


def _k_source(override: KOverride) -> str:
    """Human-readable origin of a k map, recorded in the truth file."""
    if override is None:
        return "builtin"
    if isinstance(override, Mapping):
        return f"builtin with {len(override)} categories overridden"
    return f"uniform {float(override):g}"


def _truth(
    seed: int,
    year: int,
    sizes: Mapping[str, int],
    plan: list[_Dataset],
    tasks: list[_FileTask],
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
