"""Radiating toy samples and a quiet ROOT for the final-state-radiation tests (``fit.fsr``, ``fit.fsr_parameters``)."""

from __future__ import annotations

import numpy as np
import pytest

M_Z, GAMMA_Z = 91.188, 2.4955


def radiating_sample(rng: np.random.Generator, n: int, peak: str, sigma: float, fraction: float, scale: float) -> np.ndarray:
    """A true line shape (Breit-Wigner of the Z, or the Higgs mass), a share ``fraction`` losing an exponential mass of mean
    ``scale`` (GeV), and a Gaussian detector of ``sigma`` (GeV)."""
    if peak == "z":
        true = M_Z + GAMMA_Z / 2 * np.tan(np.pi * (rng.random(3 * n) - 0.5))
        true = true[(true > 50.0) & (true < 140.0)][:n]
    else:
        true = np.full(n, 125.2)
    loss = np.where(rng.random(n) < fraction, rng.exponential(scale, n), 0.0)
    return true - loss + rng.normal(0.0, sigma, n)


def quiet_root() -> object:
    """ROOT with RooFit's messages silenced, or the test skipped where ROOT is not installed."""
    pytest.importorskip("ROOT")
    import lib.fitting.model as rf

    rf.silence_roofit()
    return rf.ROOT


def generator_fsr_events(shape: str, probability: float, n: int, seed: int, lognormal_sigma: float | None = None) -> dict[str, np.ndarray]:
    """``n`` generated Data events with truth, FSR of ``shape`` in a share ``probability``: Gaussian residuals (no
    tails) and no pT thresholds, so a flat acceptance; ``lognormal_sigma`` narrows the spread of sigma_pred."""
    from lib.categories import CategoryScheme
    from lib.config import load_config
    from lib.generator import EventModel, generate_events, load_settings
    from lib.generator.settings import GeneratorSettings

    raw = load_settings().model_dump()
    raw["fsr"] |= {"shape": shape, "probability": probability}
    raw["smearing"] |= {"core_fraction": 1.0}
    if lognormal_sigma is not None:
        raw["resolution"] |= {"lognormal_sigma": lognormal_sigma}
    raw["acceptance"] |= {"lead_pt_min_gev": 0.0, "sublead_pt_min_gev": 0.0}
    scheme = CategoryScheme.from_config(load_config().categories)
    return generate_events("data", n, seed, EventModel(GeneratorSettings(**raw), scheme), with_truth=True)
