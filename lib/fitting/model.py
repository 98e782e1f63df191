"""The RooFit peak model and dataset built from a ``FitSpec``; with the runner, the only ROOT importer.

Z peak: ``RooFFTConvPdf(m, BreitWigner(bw_mass, bw_width), RooCrystalBall(mean, sigma, ...))`` with
the Breit-Wigner first and the double-sided Crystal Ball centred at 0 (``mean`` is an offset), as
the method requires (BW (x) DCB != DCB (x) BW for an FFT convolution). Higgs peak: a plain
RooCrystalBall whose ``mean`` is the absolute mass, the 3.7 MeV natural width being negligible.
Optional background: ``RooExponential`` added with the background *fraction* (not extended).

Every object name carries a per-category, per-attempt tag, so nothing can collide with another
category's objects in the same process (the original needed one subprocess per category for
that). All ROOT objects are owned by the returned ``PeakModel`` and released by ``close()``,
clients before servers.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field

import numpy as np

from lib.config import FitSpec

with warnings.catch_warnings():
    # The PyPI wheel warns on every import that it is an alpha distribution: noise in every worker.
    warnings.filterwarnings("ignore", message=r"\s*This distribution of ROOT is in alpha stage", category=UserWarning)
    import ROOT

__all__ = ["ROOT", "PeakModel", "build_model", "make_dataset", "histogram_dataset", "object_tag", "silence_roofit"]

ROOT.gROOT.SetBatch(True)


def silence_roofit() -> None:
    """Keep RooFit's INFO/PROGRESS chatter out of logs; warnings and errors still print."""
    ROOT.RooMsgService.instance().setGlobalKillBelow(ROOT.RooFit.WARNING)


def object_tag(category: str, attempt: int) -> str:
    """RooFit-safe unique suffix for one category and attempt.

    Example:
        >>> object_tag("30-45_OB", 2)
        '30_45_OB__a2'
    """
    return f"{re.sub(r'[^A-Za-z0-9_]', '_', category)}__a{attempt}"


@dataclass
class PeakModel:
    """ROOT objects of one attempt's model; ``params`` maps spec names to the RooRealVars used.

    ``first_stage`` is the same model on its own observable (same name, so the same dataset fits
    it) whose FFT cache is ``spec.fft_cache_bins_first`` bins: the first ``fitTo`` only has to find
    the basin, and a fresh observable guarantees the final model's cache is built with the full
    ``spec.fft_cache_bins`` whatever RooFit evaluated before.
    """

    observable: object
    total: object
    signal: object
    background: object | None
    first_stage: object
    params: dict[str, object]
    tag: str
    _owned: list[object] = field(default_factory=list, repr=False)

    def close(self) -> None:
        """Release every ROOT object in reverse creation order (clients before their servers)."""
        self.observable = self.total = self.signal = self.background = self.first_stage = None
        self.params = {}
        while self._owned:
            self._owned.pop()


def _real_var(name: str, title: str, spec_value: float, lo: float | None, hi: float | None) -> object:
    inf = ROOT.RooNumber.infinity()
    return ROOT.RooRealVar(name, title, spec_value, -inf if lo is None else lo, inf if hi is None else hi)


def build_model(spec: FitSpec, tag: str) -> PeakModel:
    """Build the model of ``spec`` with every object name ending in ``tag``.

    Args:
        spec: resolved fit specification (peak type, range, parameters, FFT settings, background).
        tag: unique suffix, e.g. from :func:`object_tag`.

    Returns:
        The model; call ``close()`` when done with it.
    """
    owned: list[object] = []

    def keep(obj: object) -> object:
        owned.append(obj)
        return obj

    lo, hi = spec.range_gev
    used = ["mean", "sigma", "alpha_left", "n_left", "alpha_right", "n_right"]
    if spec.peak == "z":
        used = ["bw_mass", "bw_width", *used]
    if spec.background == "exponential":
        used += ["bkg_fraction", "bkg_slope"]
    params: dict[str, object] = {}
    for pname in used:
        p = spec.params[pname]
        var = keep(_real_var(f"{pname}_{tag}", pname, p.value, p.min, p.max))
        var.setConstant(p.constant)
        params[pname] = var

    def observable(cache_bins: int) -> object:
        obs = keep(ROOT.RooRealVar(f"mass_{tag}", "m_{#mu#mu}", lo, hi, "GeV"))
        obs.setBins(spec.bins)
        obs.setBins(cache_bins, "cache")
        return obs

    def peak(obs: object, stage: str) -> object:
        shape = [params[n] for n in ("mean", "sigma", "alpha_left", "n_left", "alpha_right", "n_right")]
        dcb = keep(ROOT.RooCrystalBall(f"dcb{stage}_{tag}", "DCB", obs, *shape))
        if spec.peak == "higgs":
            return dcb
        bw = keep(ROOT.RooBreitWigner(f"bw{stage}_{tag}", "BW", obs, params["bw_mass"], params["bw_width"]))
        conv = keep(ROOT.RooFFTConvPdf(f"signal{stage}_{tag}", "BW (x) DCB", obs, bw, dcb))
        conv.setBufferFraction(spec.fft_buffer_fraction)
        return conv

    def with_background(obs: object, sig: object, stage: str) -> tuple[object, object | None]:
        if spec.background == "none":
            return sig, None
        bkg = keep(ROOT.RooExponential(f"background{stage}_{tag}", "exponential", obs, params["bkg_slope"]))
        total = keep(
            ROOT.RooAddPdf(f"model{stage}_{tag}", "model", ROOT.RooArgList(bkg, sig), ROOT.RooArgList(params["bkg_fraction"]))
        )
        return total, bkg

    obs_final = observable(spec.fft_cache_bins)
    signal = peak(obs_final, "")
    total, background = with_background(obs_final, signal, "")
    first_bins = min(spec.fft_cache_bins_first or spec.fft_cache_bins, spec.fft_cache_bins)
    if spec.peak == "z" and first_bins < spec.fft_cache_bins:
        obs_first = observable(first_bins)
        first_stage, _ = with_background(obs_first, peak(obs_first, "_s1"), "_s1")
    else:
        first_stage = total
    return PeakModel(obs_final, total, signal, background, first_stage, params, tag, owned)


def histogram_dataset(model: PeakModel, edges: np.ndarray, contents: np.ndarray, sumw2: np.ndarray | None) -> object:
    """A RooDataHist of bin ``contents`` over ``edges`` (also the chi2 binning); ``sumw2`` for weighted events, so SumW2 errors are right."""
    return ROOT.RooDataHist.from_numpy(
        np.asarray(contents, dtype=np.float64), [model.observable], bins=[edges],
        weights_squared_sum=None if sumw2 is None else np.asarray(sumw2, dtype=np.float64), name=f"data_{model.tag}",
    )  # fmt: skip


def make_dataset(model: PeakModel, spec: FitSpec, masses: np.ndarray, weights: np.ndarray | None) -> object:
    """RooFit data for ``masses`` already restricted to the fit range, without Python loops.

    Binned: ``spec.bins`` equal bins over the range (also the chi2 binning), with the sum of
    squared weights for weighted events so RooFit's SumW2 errors are right. Unbinned: a
    RooDataSet, weighted when ``weights`` is given.
    """
    lo, hi = spec.range_gev
    name = f"data_{model.tag}"
    if spec.binned:
        edges = np.linspace(lo, hi, spec.bins + 1)
        counts, _ = np.histogram(masses, bins=edges, weights=weights)
        sumw2 = None if weights is None else np.histogram(masses, bins=edges, weights=weights * weights)[0]
        return histogram_dataset(model, edges, counts, sumw2)
    columns = {model.observable.GetName(): masses.astype(np.float64)}
    if weights is None:
        return ROOT.RooDataSet.from_numpy(columns, ROOT.RooArgSet(model.observable), name=name)
    weight_name = f"weight_{model.tag}"
    columns[weight_name] = weights.astype(np.float64)
    return ROOT.RooDataSet.from_numpy(columns, ROOT.RooArgSet(model.observable), name=name, weight_name=weight_name)
