"""The RooFit peak model and dataset built from a ``FitSpec``; with the runner, the only ROOT importer.

Z peak: ``RooFFTConvPdf(m, BreitWigner(bw_mass, bw_width), RooCrystalBall(mean, sigma, ...))`` with
the Breit-Wigner first and the double-sided Crystal Ball centred at 0 (``mean`` is an offset), as
the method requires (BW (x) DCB != DCB (x) BW for an FFT convolution). Higgs peak: a plain
RooCrystalBall whose ``mean`` is the absolute mass, the 3.7 MeV natural width being negligible.
Optional background: ``RooExponential`` added with the background *fraction* (not extended).

``line_shape: acceptance``: the category's leading-pT window keeps a mass-dependent share ``A(m)``
of the events (``lib.acceptance``), tabulated in a ``RooHistFunc``. Where the cut acts decides
where ``A`` multiplies: on the reconstructed mass (placement ``reco``, a mass built from the same
muons) ``(BW (x) DCB) x A``, by ``EbeAcceptedConvPdf`` (``accepted_conv.cxx``), which reads the
convolution's cache once per parameter change where ``RooEffProd`` made RooFit compute it twice
(``RooEffProd`` is kept for the ``codegen`` backend, which cannot translate a compiled class); on
the true mass (``true``) ``(BW x A) (x) DCB``, still with the Breit-Wigner first. The background
passes the same window: ``RooEffProd(exp, A)``.

``fit.fsr`` other than ``none``: final-state radiation is a component of the true line shape
(``lib.fitting.fsr``): the Breit-Wigner (Higgs: a delta at ``mean``) radiates with a floating
fraction and scale before the FFT convolution with the DCB, which then describes the detector
alone: symmetric (the left tail parameters are the right ones) and centred on the true line
shape (its position fixed at its start). Still one FFT, with the acceptance as above.

Every object name carries a per-category, per-attempt tag, so nothing can collide with another
category's objects in the same process, and categories need no subprocess of their own. All ROOT objects are owned by the returned ``PeakModel`` and released by ``close()``,
clients before servers.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field
from functools import cache
from importlib import resources

import numpy as np

from lib.config import FitSpec
from lib.errors import FitError
from lib.fitting.fsr import FSR_PARAMETERS, TIED_TAILS, fsr_enabled, radiated_true_shape
from lib.fitting.task import AcceptanceTable

with warnings.catch_warnings():
    # The PyPI wheel warns on every import that it is an alpha distribution: noise in every worker.
    warnings.filterwarnings("ignore", message=r"\s*This distribution of ROOT is in alpha stage", category=UserWarning)
    import ROOT

__all__ = ["ROOT", "PeakModel", "accepted_conv_class", "build_model", "make_dataset", "histogram_dataset", "object_tag", "silence_roofit"]

ROOT.gROOT.SetBatch(True)

ACCEPTED_CONV_SOURCE = "accepted_conv.cxx"  # a resource of this package: Dask workers import it from a zip
SHAPE_PARAMS = ("mean", "sigma", "alpha_left", "n_left", "alpha_right", "n_right")  # RooCrystalBall's, in its order


@cache
def accepted_conv_class() -> object:
    """``EbeAcceptedConvPdf``, compiled by ROOT's interpreter at its first use in a process (~20 ms)."""
    if not ROOT.gInterpreter.Declare(resources.files(__package__).joinpath(ACCEPTED_CONV_SOURCE).read_text()):
        raise FitError(
            f"ROOT could not compile {ACCEPTED_CONV_SOURCE} (its messages are above); fit.line_shape: breit_wigner does without it"
        )
    return ROOT.EbeAcceptedConvPdf


def silence_roofit() -> None:
    """Keep RooFit's INFO/PROGRESS chatter out of logs; warnings and errors still print.

    Except the integration warnings: the acceptance products are integrated on purpose by
    RooBinIntegrator, which warns on each that the integrand has no binning of its own.
    """
    service = ROOT.RooMsgService.instance()
    service.setGlobalKillBelow(ROOT.RooFit.WARNING)
    for i in range(service.numStreams()):
        stream = service.getStream(i)
        if stream.minLevel <= ROOT.RooFit.WARNING:
            stream.removeTopic(ROOT.RooFit.Integration)


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


def build_model(spec: FitSpec, tag: str, acceptance: AcceptanceTable | None = None) -> PeakModel:
    """Build the model of ``spec`` with every object name ending in ``tag``.

    Args:
        spec: resolved fit specification (peak type, range, parameters, FFT settings, background).
        tag: unique suffix, e.g. from :func:`object_tag`.
        acceptance: the category's ``A(m)``, used when ``spec.uses_acceptance``.

    Returns:
        The model; call ``close()`` when done with it.
    """
    owned: list[object] = []

    def keep(obj: object) -> object:
        owned.append(obj)
        return obj

    lo, hi = spec.range_gev
    used = list(SHAPE_PARAMS)
    if spec.peak == "z":
        used = ["bw_mass", "bw_width", *used]
    if spec.background == "exponential":
        used += ["bkg_fraction", "bkg_slope"]
    radiating = fsr_enabled(spec)
    if radiating:
        used += list(FSR_PARAMETERS)
    params: dict[str, object] = {}
    for pname in used:
        if radiating and pname in TIED_TAILS:
            continue
        p = spec.params[pname]
        var = keep(_real_var(f"{pname}_{tag}", pname, p.value, p.min, p.max))
        var.setConstant(p.constant)
        params[pname] = var
    if radiating:
        # A symmetric DCB: each left tail parameter is its right one (one variable, reported under both names).
        params.update({left: params[right] for left, right in TIED_TAILS.items()})
        # The peak's displacement is the radiation's: a floating DCB position trades off against it.
        params["mean"].setConstant(True)

    def observable(cache_bins: int) -> object:
        obs = keep(ROOT.RooRealVar(f"mass_{tag}", "m_{#mu#mu}", lo, hi, "GeV"))
        obs.setBins(spec.bins)
        obs.setBins(cache_bins, "cache")
        return obs

    accepted = spec.uses_acceptance
    if accepted and acceptance is None:
        raise FitError(f"{spec.name}: line_shape 'acceptance' without an acceptance table (no acceptance histograms were filled)")

    table_bins = _acceptance_bins(spec, acceptance) if accepted else None  # type: ignore[arg-type]

    def window_function(obs: object, stage: str) -> object:
        """``A(m)`` on ``obs`` as a RooHistFunc of the table's bins."""
        edges, values = table_bins  # type: ignore[misc]
        table = keep(ROOT.RooDataHist.from_numpy(values, [obs], bins=[edges], weights_squared_sum=values * values,
                                                 name=f"acceptance_table{stage}_{tag}"))  # fmt: skip
        return keep(ROOT.RooHistFunc(f"acceptance{stage}_{tag}", "A(m)", ROOT.RooArgSet(obs), table, 1))

    # A product with A(m) has no analytic integral. RooFit's adaptive integrators choose their
    # points anew for each parameter value, so the normalisation jumps by their tolerance and
    # Hesse differentiates that noise and returns meaningless sigma errors. Summing at the
    # centres of the table's bins (the fit's bins) is smooth in the parameters and exact enough:
    # the integrand varies on the scale of the resolution, several of those bins.
    integration = None
    if table_bins is not None:
        integration = keep(ROOT.RooNumIntConfig(ROOT.RooAbsReal.defaultIntegratorConfig()))
        integration.method1D().setLabel("RooBinIntegrator")
        integration.getConfigSection("RooBinIntegrator").setRealValue("numBins", len(table_bins[1]))

    def accepted_product(name: str, title: str, pdf: object, window: object) -> object:
        product = keep(ROOT.RooEffProd(name, title, pdf, window))
        product.setIntegratorConfig(integration)
        return product

    def peak(obs: object, stage: str, window: object | None) -> object:
        shape = [params[n] for n in SHAPE_PARAMS]
        if spec.peak == "higgs" and radiating:
            # The radiating delta at mean (convolved) with the DCB centred at 0: one FFT.
            zero = keep(ROOT.RooRealVar(f"dcb_offset{stage}_{tag}", "DCB offset", 0.0))
            dcb = keep(ROOT.RooCrystalBall(f"dcb{stage}_{tag}", "DCB", obs, zero, *shape[1:]))
            cache_bin = (hi - lo) / obs.getBins("cache")
            delta = keep(radiated_true_shape(ROOT, spec, f"radiating{stage}_{tag}", obs, params, cache_bin))
            conv = keep(ROOT.RooFFTConvPdf(f"signal{stage}_{tag}", "radiating delta (x) DCB", obs, delta, dcb))
            conv.setBufferFraction(spec.fft_buffer_fraction)
            return conv
        dcb = keep(ROOT.RooCrystalBall(f"dcb{stage}_{tag}", "DCB", obs, *shape))
        if spec.peak == "higgs":
            return dcb
        if radiating:
            bw = keep(radiated_true_shape(ROOT, spec, f"bw{stage}_{tag}", obs, params, 0.0))
        else:
            bw = keep(ROOT.RooBreitWigner(f"bw{stage}_{tag}", "BW", obs, params["bw_mass"], params["bw_width"]))
        true_placement = window is not None and spec.acceptance.placement == "true"
        if true_placement:
            bw = accepted_product(f"bw_accepted{stage}_{tag}", "BW x A", bw, window)
        conv_name = "signal" if window is None or true_placement else "conv"
        conv = keep(ROOT.RooFFTConvPdf(f"{conv_name}{stage}_{tag}", "BW (x) DCB", obs, bw, dcb))
        conv.setBufferFraction(spec.fft_buffer_fraction)
        if window is None or true_placement:
            return conv
        if spec.backend == "codegen":
            return accepted_product(f"signal{stage}_{tag}", "(BW (x) DCB) x A", conv, window)
        edges, values = table_bins  # type: ignore[misc]
        # The convolution's parameters: the compiled pdf's value servers (the convolution is a shape server).
        names = ("bw_mass", "bw_width", *SHAPE_PARAMS, *(FSR_PARAMETERS if radiating else ()))
        shape_params = ROOT.RooArgSet(*{id(params[n]): params[n] for n in names}.values())  # tied tails once
        first, spacing = 0.5 * (edges[0] + edges[1]), edges[1] - edges[0]
        table = ROOT.std.vector["double"](values.tolist())
        accepted = accepted_conv_class()(f"signal{stage}_{tag}", "(BW (x) DCB) x A", obs, conv, shape_params, first, spacing, table)
        return keep(accepted)

    def with_background(obs: object, sig: object, stage: str, window: object | None) -> tuple[object, object | None]:
        if spec.background == "none":
            return sig, None
        bkg = keep(ROOT.RooExponential(f"background{stage}_{tag}", "exponential", obs, params["bkg_slope"]))
        if window is not None:
            bkg = accepted_product(f"background_accepted{stage}_{tag}", "exponential x A", bkg, window)
        total = keep(
            ROOT.RooAddPdf(f"model{stage}_{tag}", "model", ROOT.RooArgList(bkg, sig), ROOT.RooArgList(params["bkg_fraction"]))
        )
        return total, bkg

    obs_final = observable(spec.fft_cache_bins)
    window = window_function(obs_final, "") if accepted else None
    signal = peak(obs_final, "", window)
    total, background = with_background(obs_final, signal, "", window)
    first_bins = min(spec.fft_cache_bins_first or spec.fft_cache_bins, spec.fft_cache_bins)
    if spec.peak == "z" and first_bins < spec.fft_cache_bins:
        obs_first = observable(first_bins)
        window_first = window_function(obs_first, "_s1") if accepted else None
        first_stage, _ = with_background(obs_first, peak(obs_first, "_s1", window_first), "_s1", window_first)
    else:
        first_stage = total
    return PeakModel(obs_final, total, signal, background, first_stage, params, tag, owned)


def _acceptance_bins(spec: FitSpec, acceptance: AcceptanceTable) -> tuple[np.ndarray, np.ndarray]:
    """``acceptance``, linear between its knots, at the centres of the fit's bins over the spec's fit range (edges, values).

    The table is also the grid of the normalisation sum (``RooBinIntegrator``), so it has the
    fit's bins (0.25 GeV by default), not the knots' spacing: summed at 1 GeV steps, the integral
    of a 0.8 GeV peak would depend on where the peak sits between them.
    """
    values = np.asarray(acceptance.values, dtype=np.float64)
    knot_lo, knot_hi = acceptance.range_gev
    knots = np.linspace(knot_lo, knot_hi, values.size)
    lo, hi = spec.range_gev
    edges = np.linspace(lo, hi, spec.bins + 1)
    return edges, np.interp(0.5 * (edges[1:] + edges[:-1]), knots, values)


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
