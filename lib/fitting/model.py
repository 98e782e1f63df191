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

``fit.fsr`` other than ``none``: the true line shape radiates (``lib.fitting.fsr``) before the one
FFT convolution with a symmetric DCB whose position is fixed at its start.

Every object name carries a per-category, per-attempt tag, so nothing collides with another
category's objects in the same process. All ROOT objects are owned by the returned ``PeakModel``
and released by ``close()``, clients before servers.
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

ROOT.gROOT.SetBatch(True)

ACCEPTED_CONV_SOURCE = "accepted_conv.cxx"  # a resource of this package: Dask workers import it from a zip
SHAPE_PARAMS = ("mean", "sigma", "alpha_left", "n_left", "alpha_right", "n_right")  # RooCrystalBall's, in its order


@cache
def accepted_conv_class() -> object:
    """``EbeAcceptedConvPdf``, compiled by ROOT's interpreter at its first use in a process."""
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
    """The model of ``spec``, every object name ending in ``tag``; call ``close()`` when done.

    ``acceptance``: the category's ``A(m)``, used when ``spec.uses_acceptance``.
    """
    if spec.uses_acceptance and acceptance is None:
        raise FitError(f"{spec.name}: line_shape 'acceptance' without an acceptance table (no acceptance histograms were filled)")
    return _ModelBuilder(spec, tag, acceptance).build()


class _ModelBuilder:
    """Makes one model's ROOT objects in dependency order and keeps each alive (``owned``) until ``PeakModel.close``.

    The final model and its coarse first stage are the same construction on two observables, so
    every part is a method of the stage (its name suffix) and the observable.
    """

    def __init__(self, spec: FitSpec, tag: str, acceptance: AcceptanceTable | None) -> None:
        self.spec, self.tag = spec, tag
        self.owned: list[object] = []
        self.radiating = fsr_enabled(spec)
        self.params = self._parameters()
        self.table_bins = _acceptance_bins(spec, acceptance) if spec.uses_acceptance else None  # type: ignore[arg-type]
        self.integration = self._bin_integration() if self.table_bins is not None else None

    def keep(self, obj: object) -> object:
        self.owned.append(obj)
        return obj

    def build(self) -> PeakModel:
        """The final model and, for a Z peak with a coarser first FFT cache, its first stage on an observable of its own."""
        spec = self.spec
        obs_final = self._observable(spec.fft_cache_bins)
        window = self._window(obs_final, "")
        signal = self._peak(obs_final, "", window)
        total, background = self._with_background(obs_final, signal, "", window)
        first_bins = min(spec.fft_cache_bins_first or spec.fft_cache_bins, spec.fft_cache_bins)
        first_stage = total
        if spec.peak == "z" and first_bins < spec.fft_cache_bins:
            obs_first = self._observable(first_bins)
            window_first = self._window(obs_first, "_s1")
            first_stage, _ = self._with_background(obs_first, self._peak(obs_first, "_s1", window_first), "_s1", window_first)
        return PeakModel(obs_final, total, signal, background, first_stage, self.params, self.tag, self.owned)

    def _parameters(self) -> dict[str, object]:
        """The spec's RooRealVars that this model uses; with the radiation model the DCB is symmetric and fixed in place."""
        spec, used = self.spec, list(SHAPE_PARAMS)
        if spec.peak == "z":
            used = ["bw_mass", "bw_width", *used]
        if spec.background == "exponential":
            used += ["bkg_fraction", "bkg_slope"]
        if self.radiating:
            used += list(FSR_PARAMETERS)
        params: dict[str, object] = {}
        for pname in used:
            if self.radiating and pname in TIED_TAILS:
                continue
            p = spec.params[pname]
            var = self.keep(_real_var(f"{pname}_{self.tag}", pname, p.value, p.min, p.max))
            var.setConstant(p.constant)
            params[pname] = var
        if self.radiating:
            # A symmetric DCB: each left tail parameter is its right one (one variable, reported under both names).
            params.update({left: params[right] for left, right in TIED_TAILS.items()})
            # The peak's displacement is the radiation's: a floating DCB position trades off against it.
            params["mean"].setConstant(True)
        return params

    def _bin_integration(self) -> object:
        """Normalisation integrals summed at the acceptance table's bin centres.

        A product with A(m) has no analytic integral. RooFit's adaptive integrators choose their
        points anew for each parameter value, so the normalisation jumps by their tolerance and
        Hesse differentiates that noise and returns meaningless sigma errors. Summing at the
        centres of the table's bins (the fit's bins) is smooth in the parameters and exact enough:
        the integrand varies on the scale of the resolution, several of those bins.
        """
        integration = self.keep(ROOT.RooNumIntConfig(ROOT.RooAbsReal.defaultIntegratorConfig()))
        integration.method1D().setLabel("RooBinIntegrator")
        integration.getConfigSection("RooBinIntegrator").setRealValue("numBins", len(self.table_bins[1]))  # type: ignore[index]
        return integration

    def _observable(self, cache_bins: int) -> object:
        lo, hi = self.spec.range_gev
        obs = self.keep(ROOT.RooRealVar(f"mass_{self.tag}", "m_{#mu#mu}", lo, hi, "GeV"))
        obs.setBins(self.spec.bins)
        obs.setBins(cache_bins, "cache")
        return obs

    def _window(self, obs: object, stage: str) -> object | None:
        """``A(m)`` on ``obs`` as a RooHistFunc of the table's bins (None without the acceptance)."""
        if self.table_bins is None:
            return None
        edges, values = self.table_bins
        table = self.keep(ROOT.RooDataHist.from_numpy(values, [obs], bins=[edges], weights_squared_sum=values * values,
                                                      name=f"acceptance_table{stage}_{self.tag}"))  # fmt: skip
        return self.keep(ROOT.RooHistFunc(f"acceptance{stage}_{self.tag}", "A(m)", ROOT.RooArgSet(obs), table, 1))

    def _accepted_product(self, name: str, title: str, pdf: object, window: object) -> object:
        product = self.keep(ROOT.RooEffProd(name, title, pdf, window))
        product.setIntegratorConfig(self.integration)
        return product

    def _peak(self, obs: object, stage: str, window: object | None) -> object:
        """The signal pdf: the DCB alone (Higgs), the radiating delta (x) DCB (Higgs with FSR), or the Z line shape."""
        shape = [self.params[n] for n in SHAPE_PARAMS]
        if self.spec.peak == "higgs" and self.radiating:
            return self._radiating_delta(obs, stage, shape)
        if self.spec.peak == "higgs":
            return self.keep(ROOT.RooCrystalBall(f"dcb{stage}_{self.tag}", "DCB", obs, *shape))
        return self._z_peak(obs, stage, window, shape)

    def _radiating_delta(self, obs: object, stage: str, shape: list[object]) -> object:
        """The radiating delta at ``mean`` (convolved) with the DCB centred at 0: one FFT."""
        spec, tag = self.spec, self.tag
        zero = self.keep(ROOT.RooRealVar(f"dcb_offset{stage}_{tag}", "DCB offset", 0.0))
        dcb = self.keep(ROOT.RooCrystalBall(f"dcb{stage}_{tag}", "DCB", obs, zero, *shape[1:]))
        lo, hi = spec.range_gev
        delta = self.keep(radiated_true_shape(ROOT, spec, f"radiating{stage}_{tag}", obs, self.params, (hi - lo) / obs.getBins("cache")))
        conv = self.keep(ROOT.RooFFTConvPdf(f"signal{stage}_{tag}", "radiating delta (x) DCB", obs, delta, dcb))
        conv.setBufferFraction(spec.fft_buffer_fraction)
        return conv

    def _z_peak(self, obs: object, stage: str, window: object | None, shape: list[object]) -> object:
        """BW (x) DCB, the Breit-Wigner first (radiating with the radiation model), times ``A(m)`` where the window places it."""
        spec, tag = self.spec, self.tag
        dcb = self.keep(ROOT.RooCrystalBall(f"dcb{stage}_{tag}", "DCB", obs, *shape))
        if self.radiating:
            bw = self.keep(radiated_true_shape(ROOT, spec, f"bw{stage}_{tag}", obs, self.params, 0.0))
        else:
            bw = self.keep(ROOT.RooBreitWigner(f"bw{stage}_{tag}", "BW", obs, self.params["bw_mass"], self.params["bw_width"]))
        true_placement = window is not None and spec.acceptance.placement == "true"
        if true_placement:
            bw = self._accepted_product(f"bw_accepted{stage}_{tag}", "BW x A", bw, window)
        conv_name = "signal" if window is None or true_placement else "conv"
        conv = self.keep(ROOT.RooFFTConvPdf(f"{conv_name}{stage}_{tag}", "BW (x) DCB", obs, bw, dcb))
        conv.setBufferFraction(spec.fft_buffer_fraction)
        if window is None or true_placement:
            return conv
        if spec.backend == "codegen":
            return self._accepted_product(f"signal{stage}_{tag}", "(BW (x) DCB) x A", conv, window)
        return self._accepted_conv(obs, stage, conv)

    def _accepted_conv(self, obs: object, stage: str, conv: object) -> object:
        """``(BW (x) DCB) x A`` by ``EbeAcceptedConvPdf``, its value servers the convolution's parameters (the convolution is a shape server)."""
        edges, values = self.table_bins  # type: ignore[misc]
        names = ("bw_mass", "bw_width", *SHAPE_PARAMS, *(FSR_PARAMETERS if self.radiating else ()))
        shape_params = ROOT.RooArgSet(*{id(self.params[n]): self.params[n] for n in names}.values())  # tied tails once
        first, spacing = 0.5 * (edges[0] + edges[1]), edges[1] - edges[0]
        table = ROOT.std.vector["double"](values.tolist())
        accepted = accepted_conv_class()(f"signal{stage}_{self.tag}", "(BW (x) DCB) x A", obs, conv, shape_params, first, spacing, table)
        return self.keep(accepted)

    def _with_background(self, obs: object, sig: object, stage: str, window: object | None) -> tuple[object, object | None]:
        """The signal plus the exponential background (through the same window), or the signal alone."""
        spec, tag = self.spec, self.tag
        if spec.background == "none":
            return sig, None
        bkg = self.keep(ROOT.RooExponential(f"background{stage}_{tag}", "exponential", obs, self.params["bkg_slope"]))
        if window is not None:
            bkg = self._accepted_product(f"background_accepted{stage}_{tag}", "exponential x A", bkg, window)
        total = self.keep(
            ROOT.RooAddPdf(f"model{stage}_{tag}", "model", ROOT.RooArgList(bkg, sig), ROOT.RooArgList(self.params["bkg_fraction"]))
        )
        return total, bkg


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
