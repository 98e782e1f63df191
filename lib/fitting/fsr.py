"""Final-state radiation as its own component of the peak model (``fit.fsr``), so the DCB holds the detector alone.

A share ``fsr_fraction`` of the events loses mass to photons before the detector sees them, with
an exponential kernel of mean ``fsr_scale`` (GeV) in the loss. The radiation acts on the true mass,
so it enters the FFT convolution on the true side: the Z's Breit-Wigner radiates
(``EbeRadiatedBreitWigner``), the Higgs boson's delta radiates (``EbeRadiatedDelta``), and the
detector's resolution is the DCB convolved with either, one FFT as without radiation
(``fsr.cxx``). The DCB is symmetric with radiation on: the curvature residuals are symmetric, the
low-mass excess is the radiation, and two free tails would trade off against it.

This module compiles the classes, builds the true line shape, and says which radiation
parameters the data cannot determine (fixed like the DCB's, ``lib.fitting.undetermined``).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from importlib import resources

import numpy as np

from lib.config import FitSpec
from lib.config.schema import FSR_PARAMETERS
from lib.errors import FitError
from lib.fitting.quality import at_limit

FSR_SOURCE = "fsr.cxx"  # a resource of this package, like accepted_conv.cxx
QUADRATURE_NODES = 64  # Gauss-Legendre nodes of the radiated Breit-Wigner's integral (relative accuracy ~1e-6)
# With radiation the DCB is symmetric: each left tail parameter is its right one.
TIED_TAILS = {"alpha_left": "alpha_right", "n_left": "n_right"}


def fsr_enabled(spec: FitSpec) -> bool:
    """Whether ``spec`` has a radiation component."""
    return spec.fsr != "none"


@cache
def _classes(ROOT: object) -> None:
    """Compile ``fsr.cxx`` once per process."""
    if not ROOT.gInterpreter.Declare(resources.files(__package__).joinpath(FSR_SOURCE).read_text()):  # type: ignore[attr-defined]
        raise FitError(f"ROOT could not compile {FSR_SOURCE} (its messages are above); fit.fsr: none does without it")


def radiated_true_shape(ROOT: object, spec: FitSpec, name: str, obs: object, params: Mapping[str, object], cache_bin_gev: float) -> object:
    """The true line shape with its radiating share: the Z's Breit-Wigner, or the Higgs boson's delta at ``mean``.

    ``cache_bin_gev``: the FFT cache's bin width, over which the delta is spread (``EbeRadiatedDelta``).
    """
    if spec.backend == "codegen":
        raise FitError(f"{spec.name}: fit.fsr '{spec.fsr}' needs a compiled class, which backend codegen cannot translate")
    _classes(ROOT)
    fraction, scale = params["fsr_fraction"], params["fsr_scale"]
    if spec.peak == "higgs":
        return ROOT.EbeRadiatedDelta(name, "radiating delta", obs, params["mean"], fraction, scale, cache_bin_gev)  # type: ignore[attr-defined]
    nodes, weights = np.polynomial.legendre.leggauss(QUADRATURE_NODES)
    std = ROOT.std  # type: ignore[attr-defined]
    return ROOT.EbeRadiatedBreitWigner(  # type: ignore[attr-defined]
        name, "radiating BW", obs, params["bw_mass"], params["bw_width"], fraction, scale,
        std.vector["double"](0.5 * (nodes + 1.0)), std.vector["double"](0.5 * weights),
    )  # fmt: skip


def fsr_undetermined(values: Mapping[str, float], limits: Mapping[str, tuple[float, float]], tolerance: float) -> tuple[str, ...]:
    """The floating radiation parameters to fix before the Hesse fit: those the first ``fitTo`` left at a limit.

    A fraction at its lower limit leaves no radiation to have a scale, so the scale is fixed with it.

    Example:
        >>> fsr_undetermined({"fsr_fraction": 0.0, "fsr_scale": 2.0}, {"fsr_fraction": (0.0, 0.9), "fsr_scale": (0.3, 10.0)}, 0.01)
        ('fsr_fraction', 'fsr_scale')
    """
    fixed = {name for name in FSR_PARAMETERS if name in values and at_limit(values[name], *limits[name], tolerance)}
    if "fsr_fraction" in fixed and no_radiation(values["fsr_fraction"], *limits["fsr_fraction"], tolerance) and "fsr_scale" in values:
        fixed.add("fsr_scale")
    return tuple(name for name in FSR_PARAMETERS if name in fixed)


def no_radiation(fraction: float, low: float, high: float, tolerance: float) -> bool:
    """Whether a radiating share lies at its lower limit ``low`` (within ``tolerance`` of its range): no radiation.

    Example:
        >>> no_radiation(1e-5, 0.0, 0.5, 0.001), no_radiation(0.01, 0.0, 0.5, 0.001)
        (True, False)
    """
    return fraction <= low + tolerance * (high - low)
