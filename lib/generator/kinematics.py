"""The true dimuon, before any detector: boson mass, pT and rapidity, the decay, and FSR.

* Z (Breit-Wigner, 1+cos^2 decay), a falling background, or H -> mumu; boson pT ~ Gamma,
  rapidity ~ Gaussian; boosted to the lab.
* FSR: a muon sometimes loses a fraction x of its momentum to a photon (the low-mass tail), x
  from an exponential or from the leading-log QED radiator; with recovery, some of the harder
  photons are added back, as Stage-1's FSR recovery does, and only the rest stays out of the mass.

Kept apart from the detector model (``simulation``) because none of it depends on k: these are
the kinematics the resolution is then applied to. All numbers come from the generator settings.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lib.generator.settings import FsrRecoverySettings, FsrSettings, ProcessSettings

# Fine-structure constant at zero momentum transfer (CODATA 2018), the coupling of soft FSR.
FINE_STRUCTURE = 1.0 / 137.035999084


def sample_mass(proc: ProcessSettings, n: int, rng: np.random.Generator) -> np.ndarray:
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


def sample_cos_theta(angular: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """cos(theta) flat, or from 1 + cos^2 by solving the cubic CDF with Cardano's formula."""
    u = rng.random(n)
    if angular == "isotropic":
        return 2.0 * u - 1.0
    # CDF (c + c^3/3 + 4/3) * 3/8 = u  <=>  c^3 + 3c + (4 - 8u) = 0, one real root.
    half_q = 2.0 - 4.0 * u
    root = np.sqrt(half_q * half_q + 1.0)
    return np.cbrt(-half_q + root) + np.cbrt(-half_q - root)


def decay_to_lab(
    proc: ProcessSettings, mass: np.ndarray, rng: np.random.Generator, muon_mass: float
) -> tuple[np.ndarray, ...]:
    """Boson kinematics and two-body decay boosted to the lab: (px, py, pz) of both muons."""
    n = len(mass)
    pt = rng.gamma(proc.pt_gamma_shape, proc.pt_gamma_scale_gev, n)
    rapidity = rng.normal(0.0, proc.rapidity_sigma, n)
    phi = rng.uniform(-np.pi, np.pi, n)
    cos_t = sample_cos_theta(proc.angular, n, rng)
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


def as_written(values: np.ndarray) -> np.ndarray:
    """Round to float32 (what the files hold) and return float64 for further arithmetic."""
    return values.astype(np.float32).astype(np.float64)


def pair_mass(pt1: np.ndarray, pt2: np.ndarray, angles: "Angles", muon_mass: float) -> np.ndarray:
    """Invariant mass of two muons with the given pT and fixed directions."""
    e1 = np.sqrt((pt1 * angles.cosh1) ** 2 + muon_mass**2)
    e2 = np.sqrt((pt2 * angles.cosh2) ** 2 + muon_mass**2)
    m2 = 2.0 * (muon_mass**2 + e1 * e2 - pt1 * pt2 * angles.cos_open)
    return np.sqrt(np.maximum(m2, 0.0))


@dataclass(frozen=True)
class Angles:
    """Per-event muon directions; FSR and smearing change only pT, never these."""

    eta1: np.ndarray
    phi1: np.ndarray
    eta2: np.ndarray
    phi2: np.ndarray
    cosh1: np.ndarray
    cosh2: np.ndarray
    cos_open: np.ndarray  # cos(dphi) + sinh(eta1) sinh(eta2) = p1.p2 / (pt1 pt2)

    @classmethod
    def from_momenta(cls, px1, py1, pz1, px2, py2, pz2) -> tuple["Angles", np.ndarray, np.ndarray]:
        pt1, pt2 = np.hypot(px1, py1), np.hypot(px2, py2)
        eta1, eta2 = as_written(np.arcsinh(pz1 / pt1)), as_written(np.arcsinh(pz2 / pt2))
        phi1, phi2 = as_written(np.arctan2(py1, px1)), as_written(np.arctan2(py2, px2))
        cos_open = np.cos(phi1 - phi2) + np.sinh(eta1) * np.sinh(eta2)
        return cls(eta1, phi1, eta2, phi2, np.cosh(eta1), np.cosh(eta2), cos_open), pt1, pt2

    def select(self, mask: np.ndarray) -> "Angles":
        return Angles(*(getattr(self, f)[mask] for f in self.__dataclass_fields__))


def qed_beta(mass: np.ndarray, muon_mass: float) -> np.ndarray:
    """Leading-log exponent of one muon's radiator, (alpha/pi)(ln(m^2/m_mu^2) - 1): half of the pair's beta."""
    return FINE_STRUCTURE / np.pi * (2.0 * np.log(mass / muon_mass) - 1.0)


def qed_density(x: np.ndarray, beta: float) -> np.ndarray:
    """Unnormalised photon-fraction density of the radiator: beta x^(beta-1) (1 + (1-x)^2) / 2."""
    return beta * x ** (beta - 1.0) * 0.5 * (1.0 + (1.0 - x) ** 2)


def _qed_fractions(beta: np.ndarray, fsr: FsrSettings, rng: np.random.Generator) -> np.ndarray:
    """x from ``qed_density`` on [min_fraction, max_fraction]: the power law by inverse CDF, the splitting factor by rejection."""
    lo, hi = fsr.min_fraction**beta, fsr.max_fraction**beta
    x = np.empty(len(beta))
    todo = np.arange(len(beta))
    while len(todo):
        b = beta[todo]
        trial = (lo[todo] + rng.random(len(todo)) * (hi[todo] - lo[todo])) ** (1.0 / b)
        accept = rng.random(len(todo)) < 0.5 * (1.0 + (1.0 - trial) ** 2)
        x[todo[accept]] = trial[accept]
        todo = todo[~accept]
    return x


def photon_fractions(n: int, fsr: FsrSettings, rng: np.random.Generator, beta: np.ndarray | None = None) -> np.ndarray:
    """The momentum fraction each of ``n`` muons gives to a photon: 0 with probability 1 - ``probability``.

    ``exponential``: x ~ exponential(mean_fraction) truncated at max_fraction. ``qed`` and
    ``recovered``: x from the radiator with exponent ``beta`` (per muon, see ``qed_beta``).
    """
    radiates = rng.random(n) < fsr.probability
    if fsr.shape == "exponential":
        u = rng.random(n)
        kept_probability = -np.expm1(-fsr.max_fraction / fsr.mean_fraction)  # P(x < max_fraction) untruncated
        x = -fsr.mean_fraction * np.log1p(-u * kept_probability)
        return np.where(radiates, x, 0.0)
    x = np.zeros(n)
    x[radiates] = _qed_fractions(np.broadcast_to(beta, (n,))[radiates], fsr, rng)
    return x


def recovered(photon_pt: np.ndarray, recovery: FsrRecoverySettings, rng: np.random.Generator) -> np.ndarray:
    """Which photons are added back: above the pT threshold, each with the recovery efficiency."""
    return (photon_pt > recovery.min_photon_pt_gev) & (rng.random(len(photon_pt)) < recovery.efficiency)


def after_fsr(pt: np.ndarray, fsr: FsrSettings, rng: np.random.Generator, beta: np.ndarray | None = None) -> np.ndarray:
    """pT after FSR, as the detector sees it: the radiated fraction lost, unless the photon is recovered.

    A recovered photon is collinear with its muon here, so adding it back restores the muon's pT.
    """
    x = photon_fractions(len(pt), fsr, rng, beta)
    if fsr.shape == "recovered":
        x = np.where(recovered(x * pt, fsr.recovery, rng), 0.0, x)
    return pt * (1.0 - x)
