"""``EbeAcceptedConvPdf``, the (BW (x) DCB) x A(m) pdf that reads the convolution once per evaluation.

It replaces ``RooEffProd(conv, A)`` (kept for the codegen backend), so the two must be the same
density: same shape and unit normalisation at any parameter point, and the same fit result in
the batch (cpu) and scalar (legacy) evaluation paths, which reach the convolution differently.
"""

from __future__ import annotations

import numpy as np
import pytest

from lib.config import Config, FitSpec, resolve_fit_spec
from lib.fitting import model as rf
from lib.fitting.task import AcceptanceTable

ROOT = rf.ROOT


def _spec(config: Config, backend: str) -> FitSpec:
    """A Z spec with the acceptance line shape, background off."""
    spec = resolve_fit_spec(config, "30-45_BB", binned=True, backend=backend)
    return spec.model_copy(update={"line_shape": "acceptance", "background": "none"})


def _acceptance() -> AcceptanceTable:
    """A steep, asymmetric A(m): a window cutting the low side."""
    knots = np.linspace(70.0, 110.0, 41)
    return AcceptanceTable(tuple(0.15 + 0.8 / (1.0 + np.exp(-(knots - 88.0) / 1.5))), (70.0, 110.0))


def _densities(built: rf.PeakModel, grid: np.ndarray) -> np.ndarray:
    norm = ROOT.RooArgSet(built.observable)
    out = np.empty(grid.size)
    for i, x in enumerate(grid):
        built.observable.setVal(float(x))
        out[i] = built.total.getVal(norm)
    return out


@pytest.mark.parametrize("point", [{"sigma": 0.8}, {"sigma": 1.6, "mean": 0.3}, {"sigma": 1.1, "alpha_left": 2.0, "n_left": 8.0}])
def test_same_density_as_the_efficiency_product(config: Config, point: dict[str, float]):
    accepted = rf.build_model(_spec(config, "cpu"), "accepted", _acceptance())
    product = rf.build_model(_spec(config, "codegen"), "product", _acceptance())  # codegen keeps RooEffProd
    try:
        assert type(accepted.signal).__name__ == "EbeAcceptedConvPdf"
        assert type(product.signal).__name__ == "RooEffProd"
        for built in (accepted, product):
            for name, value in point.items():
                built.params[name].setVal(value)
        lo, hi = accepted.observable.getMin(), accepted.observable.getMax()
        grid = np.linspace(lo + 0.0125, hi - 0.0125, 1200)
        new, old = _densities(accepted, grid), _densities(product, grid)
        # Unit normalisation over the fit range (a 0.025 GeV midpoint sum).
        assert np.sum(new) * (grid[1] - grid[0]) == pytest.approx(1.0, abs=2e-3)
        # Same shape: the two interpolate the same FFT cache (linear here, quadratic in RooHistPdf).
        peak = old > 0.05 * old.max()
        assert np.max(np.abs(new[peak] / old[peak] - 1.0)) < 3e-3
    finally:
        accepted.close()
        product.close()


def test_batch_and_scalar_evaluation_fit_the_same(config: Config):
    """The cpu backend reads the cache through the evaluator's normalised clone, legacy directly."""
    rng = np.random.default_rng(7)
    n = 60_000
    true = 91.188 + 0.5 * 2.4955 * np.tan(np.pi * (rng.random(4 * n) - 0.5))
    reco = true + rng.normal(0.0, 1.2, true.size)
    keep = rng.random(reco.size) < 0.15 + 0.8 / (1.0 + np.exp(-np.clip(reco - 88.0, -50.0, 50.0) / 1.5))
    masses = reco[keep][:n]
    fitted = {}
    for backend in ("cpu", "legacy"):
        spec = _spec(config, backend)
        # Tails fixed far out (alpha 8): the DCB is the toy's Gaussian.
        tails = {"constant": True}
        params = {
            k: p.model_copy(update={**tails, "value": 8.0} if k.startswith("alpha") else tails) if k.startswith(("alpha", "n_")) else p
            for k, p in spec.params.items()
        }
        spec = spec.model_copy(update={"params": params})
        built = rf.build_model(spec, f"scalar_{backend}", _acceptance())
        try:
            lo, hi = spec.range_gev
            data = rf.make_dataset(built, spec, masses[(masses > lo) & (masses < hi)], None)
            result = built.total.fitTo(
                data, ROOT.RooFit.EvalBackend(backend), ROOT.RooFit.Save(True), ROOT.RooFit.PrintLevel(-1), ROOT.RooFit.Offset("bin")
            )
            ROOT.SetOwnership(result, True)
            assert result.status() == 0
            fitted[backend] = (built.params["sigma"].getVal(), built.params["sigma"].getError())
        finally:
            built.close()
    (cpu, cpu_err), (legacy, _) = fitted["cpu"], fitted["legacy"]
    assert abs(cpu - legacy) < 0.05 * cpu_err
    # The 1.2 GeV Gaussian of the toy, within 3 errors.
    assert abs(cpu - 1.2) < 3 * cpu_err
