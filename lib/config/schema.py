"""The configuration's schema: one pydantic model per YAML section, each field validated and described.

The YAML is validated once, into these models (``lib.config.loading``), and only they travel
further. Cross-field checks that need the whole file (binned fits on the histogram grid, for the
nominal fit, each override and each retry rung) live on ``Config``.
"""

from __future__ import annotations

import hashlib
import json
from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# RooFit's evaluation backends (``fit.backend``, ``--backend``): the configuration, the command line and the probe list these.
Backend = Literal["cpu", "legacy", "codegen", "cuda"]
BACKENDS: tuple[str, ...] = get_args(Backend)

FIT_PARAMETERS = (
    "bw_mass",
    "bw_width",
    "mean",
    "sigma",
    "alpha_left",
    "n_left",
    "alpha_right",
    "n_right",
    "bkg_fraction",
    "bkg_slope",
)

# The radiation component's parameters (``fit.fsr`` other than none), with the start values and limits they take
# when ``fit.params`` does not list them: the share of events that radiate and their mean mass loss in GeV.
FSR_PARAMETERS = ("fsr_fraction", "fsr_scale")
FSR_PARAM_DEFAULTS = {
    "fsr_fraction": {"value": 0.2, "min": 0.0, "max": 0.5},
    "fsr_scale": {"value": 1.5, "min": 0.5, "max": 10.0},
}
# ``fit.fsr`` in words: what the line shape holds besides the detector's resolution.
FSR_MODELS = {
    "none": "no radiation component: the DCB holds the detector's resolution and the final-state radiation together",
    "exponential": "a share fsr_fraction of the events loses an exponentially distributed mass of mean fsr_scale (GeV) "
    "before the detector, a symmetric DCB",
}

# What each ``fit.width`` reports as sigma_fit, in words: the correction's description and the report say it.
WIDTH_DEFINITIONS = {
    "effective": "half the narrowest interval holding 68.27 % of the fitted DCB",
    "core": "the fitted DCB's core sigma",
}


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def fingerprint(self) -> str:
        """Short stable hash of the model's content (key order of the YAML it came from does not matter)."""
        return _digest(self.model_dump(mode="json"))


def _digest(payload: object) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def _check_range(value: tuple[float, float]) -> tuple[float, float]:
    if not value[0] < value[1]:
        raise ValueError(f"range must be increasing, got {list(value)}")
    return value


def _check_log_range(value: tuple[float, float]) -> tuple[float, float]:
    """A range of log-spaced bins: increasing, from above 0."""
    if not 0 < value[0] < value[1]:
        raise ValueError(f"range of log-spaced bins must be 0 < low < high, got {list(value)}")
    return value


def _check_edges(edges: list[float]) -> list[float]:
    """Bin edges: at least two, strictly increasing."""
    if len(edges) < 2 or any(b <= a for a, b in zip(edges, edges[1:])):
        raise ValueError(f"bin edges must be at least two and increasing, got {edges}")
    return edges


class InputConfig(_Model):
    stage1_path: str = Field(description="Stage-1 root directory used when --input_path is not given (the built-in generated sample).")
    data_glob: str = Field(description="Glob of Data parquet files below the Stage-1 root; {year} substituted.")
    mc_glob: str = Field(description="Glob of DY MC parquet files below the Stage-1 root; {year} substituted.")
    signal_glob: str = Field(description="Glob of H->mumu signal parquet files below the Stage-1 root; {year} substituted.")
    weight_column: str = Field(description="Column of the per-event MC weight (Data is unweighted).")
    batch_rows: int = Field(gt=0, description="Most rows per record batch streamed from the parquet files (bounds the memory).")


class SelectionConfig(_Model):
    z_window_gev: tuple[float, float] = Field(description="Z control region lo < m < hi in GeV.")

    _increasing = field_validator("z_window_gev")(_check_range)


class CategoryConfig(_Model):
    pt_edges_gev: list[float] = Field(description="Leading-muon pT bin edges in GeV, [lo, hi) bins as correctionlib looks them up.")
    abseta_edges: list[float] = Field(description="|eta| region edges (of the leading muon and of the subleading muon), [lo, hi) bins.")
    region_names: list[str] = Field(description="One letter per |eta| region; a category is named <pT bin>_<lead letter><sublead letter>.")

    _edges = field_validator("pt_edges_gev", "abseta_edges")(_check_edges)

    @model_validator(mode="after")
    def _one_name_per_region(self) -> "CategoryConfig":
        if len(self.region_names) != len(self.abseta_edges) - 1:
            raise ValueError(
                f"categories.region_names needs {len(self.abseta_edges) - 1} names, got {self.region_names}"
            )
        return self


class Step2Config(_Model):
    median_error: Literal["order_statistic", "bootstrap"] = Field(
        description="Uncertainty of the median: order_statistic (deterministic, weighted-aware) or bootstrap."
    )
    bootstrap_resamples: int = Field(gt=10, description="Resamples of the bootstrap median error (median_error: bootstrap).")
    seed: int = Field(description="Seed of the bootstrap's random resampling, so a rerun gives the same errors.")
    hist_range_gev: tuple[float, float] = Field(description="Range in GeV of the per-category sigma_pred histograms drawn in step 2.")
    hist_bins: int = Field(gt=0, description="Number of bins of those sigma_pred histograms.")
    # Defaults (those of configs/default.yaml) keep configurations written before these keys valid.
    median_grid_gev: tuple[float, float] = Field(
        default=(0.05, 50.0),
        description="Range in GeV of the log-spaced sigma_pred histogram per category, filled while reading, the medians come from.",
    )
    median_relative_bin_width: float = Field(
        default=5.0e-4, gt=0.0, le=0.01,
        description="Bin width of that histogram relative to the bin's sigma_pred (dimensionless): the median, interpolated inside "
        "its bin, is within this of the exact sample median.",
    )  # fmt: skip

    _log_spaced = field_validator("median_grid_gev")(_check_log_range)


class ParamSpec(_Model):
    value: float = Field(description="Start value, in the parameter's unit (GeV for masses, widths, mean and sigma; 1/GeV for bkg_slope).")
    min: float | None = Field(default=None, description="Lower limit, same unit as value (None: unbounded below).")
    max: float | None = Field(default=None, description="Upper limit, same unit as value (None: unbounded above).")
    constant: bool = Field(default=False, description="Fixed at value instead of fitted.")

    @model_validator(mode="after")
    def _inside(self) -> "ParamSpec":
        if self.min is not None and self.max is not None:
            if not self.min < self.max:
                raise ValueError(f"min {self.min} must be below max {self.max}")
            if not self.min <= self.value <= self.max:
                raise ValueError(f"start value {self.value} lies outside [{self.min}, {self.max}]")
        return self


class ParamPatch(_Model):
    """A partial parameter change used by overrides and retry steps."""

    value: float | None = Field(default=None, description="New start value, in the parameter's unit (None: unchanged).")
    min: float | None = Field(default=None, description="New lower limit, same unit as value (None: unchanged).")
    max: float | None = Field(default=None, description="New upper limit, same unit as value (None: unchanged).")
    constant: bool | None = Field(default=None, description="Fix (true) or float (false) the parameter (None: unchanged).")


def _check_param_names(params: dict[str, object], where: str) -> None:
    known = (*FIT_PARAMETERS, *FSR_PARAMETERS)
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise ValueError(f"{where} names unknown fit parameter(s) {unknown}; known: {list(known)}")


class FitPatch(_Model):
    """Fields a per-category override or a retry step may change."""

    label: str = Field(default="", description="Name of the attempt in the outputs (a retry step's; empty: unchanged).")
    range_gev: tuple[float, float] | None = Field(
        default=None, description="Fit range in GeV (None: unchanged); a narrower range keeps the nominal bin width."
    )
    bins: int | None = Field(default=None, description="Bins of the binned fit over its range (None: unchanged or from the range).")
    background: Literal["exponential", "none"] | None = Field(
        default=None, description="Background under the peak: exponential or none (None: unchanged)."
    )
    line_shape: Literal["acceptance", "breit_wigner"] | None = Field(
        default=None, description="Signal line shape, as fit.line_shape (None: unchanged)."
    )
    params: dict[str, ParamPatch] = Field(default_factory=dict, description="Changes to fit parameters, by parameter name.")
    sigma_from_median: bool = Field(default=False, description="Start sigma at the category's median sigma_pred (GeV), within its limits.")
    start_from_previous: bool = Field(
        default=False,
        description="Restart at the best earlier attempt's minimum (same model): a fit that only failed its covariance (Hesse) "
        "usually converges cleanly from there, without moving sigma.",
    )
    freeze_from_previous: tuple[str, ...] = Field(
        default=(),
        description="Parameters fixed at the best earlier attempt's values: a tail the data do not constrain (Hesse fails on it) "
        "stops spoiling the covariance, and the shape the fit found is kept.",
    )

    @model_validator(mode="after")
    def _known_params(self) -> "FitPatch":
        _check_param_names(self.params, "override/retry")
        _check_param_names(dict.fromkeys(self.freeze_from_previous), "freeze_from_previous")
        if self.range_gev is not None:
            _check_range(self.range_gev)
        return self


class QualityConfig(_Model):
    max_chi2_ndf: float = Field(gt=0, description="Largest chi2/NDF of an accepted Z fit (unless max_shape_mismodelling lets it pass).")
    max_peak_offset_gev: float = Field(
        default=float("inf"), gt=0, description="Largest |DCB mean offset| from the BW mass, in GeV, accepted in Z fits."
    )
    peak_offset_n_sigma: float = Field(
        default=0.0, ge=0.0, description="The offset must exceed max_peak_offset_gev by this many of its errors to fail."
    )
    max_shape_mismodelling: float = Field(
        default=0.0, ge=0.0, description="RMS relative data/model difference per bin tolerated above max_chi2_ndf."
    )
    sigma_ratio_band: tuple[float, float] = Field(
        description="sigma_fit / median(sigma_pred) must fall inside this band (dimensionless) to be believed."
    )
    limit_tolerance: float = Field(
        ge=0, lt=0.5, description="A parameter closer than this fraction of its range to a limit counts as at the limit."
    )
    limit_gated_params: tuple[str, ...] = Field(
        default=FIT_PARAMETERS,
        description="Parameters whose being at a limit fails a fit; others at a limit are only reported.",
    )

    @field_validator("limit_gated_params")
    @classmethod
    def _known(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        _check_param_names(dict.fromkeys(names), "fit.quality.limit_gated_params")
        return names


class AcceptanceConfig(_Model):
    """The acceptance of a category's leading-pT window: the input's thresholds, the table's knots, where the cut acts."""

    lead_pt_min_gev: float = Field(
        default=26.0, ge=0.0, description="Leading-muon pT threshold in GeV the input was selected with (A(m) corrects for it)."
    )
    sublead_pt_min_gev: float = Field(
        default=20.0, ge=0.0, description="Subleading-muon pT threshold in GeV the input was selected with (A(m) corrects for it)."
    )
    knot_spacing_gev: float = Field(
        default=1.0, gt=0.0, le=5.0, description="Mass spacing in GeV of the knots where A(m) is counted (linear in between)."
    )
    placement: Literal["reco", "true"] = Field(
        default="reco",
        description="reco: the window cuts the reconstructed mass (the mass is built from the same muons, as in data): "
        "(BW (x) DCB) x A; true: it cuts the true mass (a mass smeared independently of the muons): (BW x A) (x) DCB.",
    )


class UndeterminedConfig(_Model):
    """Tail and background parameters the nominal fit may fix after its first ``fitTo`` (lib.fitting.undetermined)."""

    params: tuple[str, ...] = Field(
        default=(), description="Parameters fixed where the first fitTo left them when at a limit or in a tail that holds no events."
    )
    no_tail_alpha: float = Field(
        default=5.0, gt=0.0, description="A tail starting beyond this many sigma (its alpha) holds no events: its alpha and n are fixed."
    )
    limit_tolerance: float = Field(
        default=0.01, ge=0.0, lt=0.5, description="Fraction of its range within which a first-stage value counts as at a limit."
    )
    max_error_to_range: float = Field(
        default=1.0, gt=0.0,
        description="After Hesse, a parameter whose error exceeds this fraction of its range is fixed where the fit left it and the fit repeated.",
    )  # fmt: skip

    @field_validator("params")
    @classmethod
    def _known(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        _check_param_names(dict.fromkeys(names), "fit.undetermined.params")
        if {"sigma", "mean"} & set(names):
            raise ValueError("fit.undetermined.params may not hold sigma or mean: the calibration is sigma")
        return names


class FitSettings(_Model):
    """The ``fit:`` settings that act inside one fit: each category's ``FitSpec`` holds them, resolved."""

    range_gev: tuple[float, float] = Field(description="Mass range of the Z fit in GeV (the selection's window: same events as the medians).")
    bins: int = Field(gt=10, description="Bins of the binned fit (and of the chi2/NDF) over range_gev.")
    fft_cache_bins: int = Field(ge=500, description="Bins of the FFT cache of the BW (x) DCB convolution over the fit range plus buffer.")
    fft_cache_bins_first: int | None = Field(
        default=None, ge=500,
        description="FFT cache bins of the first fitTo, which only has to find the basin (None: fft_cache_bins).",
    )  # fmt: skip
    fft_buffer_fraction: float = Field(
        ge=0.0, le=2.0, description="Buffer added on each side of the FFT convolution, as a fraction of the fit range."
    )
    backend: Backend = Field(description="RooFit evaluation backend of the fits (--backend overrides).")
    strategy_first: int = Field(ge=0, le=2, description="Minuit strategy of the first fitTo (no Hesse), which finds the basin.")
    strategy_second: int = Field(ge=0, le=2, description="Minuit strategy of the second fitTo (with Hesse), whose result is kept.")
    params: dict[str, ParamSpec] = Field(description="Start value, limits and fixing of every fit parameter, by name.")
    background: Literal["exponential", "none"] = Field(description="Background under the Z: exponential or none.")
    line_shape: Literal["acceptance", "breit_wigner"] = Field(
        default="breit_wigner",
        description="acceptance: BW (x) DCB times the category's leading-pT window acceptance; breit_wigner: the original BW (x) DCB.",
    )
    acceptance: AcceptanceConfig = Field(
        default=AcceptanceConfig(),
        description="Thresholds, knots and placement of the window acceptance A(m), used when line_shape is acceptance.",
    )
    width: Literal["effective", "core"] = Field(
        default="core",
        description="The resolution a fit reports (sigma_fit of the factor, the closure and the Higgs check): effective, "
        f"{WIDTH_DEFINITIONS['effective']}; core, {WIDTH_DEFINITIONS['core']} (the original's).",
    )
    width_window_sigmas: float = Field(
        default=5.0, gt=1.0,
        description="Half-width, in core sigmas, of the window the DCB is normalised over for the effective width (in sigmas, so "
        "the width scales with the resolution).",
    )  # fmt: skip
    fsr: Literal["none", "exponential"] = Field(
        default="none",
        description="Final-state radiation as its own component of the line shape, so that sigma_fit is the detector's width "
        f"alone: none, {FSR_MODELS['none']}; exponential, {FSR_MODELS['exponential']} (the Breit-Wigner radiates, one FFT "
        "convolution as without it; on the Higgs peak a radiating delta). Its parameters fsr_fraction and fsr_scale take "
        "their start values and limits from fit.params when listed there.",
    )
    undetermined: UndeterminedConfig = Field(
        default=UndeterminedConfig(), description="Parameters the data cannot determine, which the nominal fit fixes."
    )


class FitConfig(FitSettings):
    """The ``fit:`` section: one fit's settings and what acts around the fits (grid, threshold, shared radiation, gates, retries)."""

    histogram_bin_gev: float = Field(
        default=0.05, gt=0.0,  # default as in configs/default.yaml, for older configs
        description="Bin width in GeV of the per-category mass histograms filled while reading over the Z window, which binned "
        "fits are summed from: every binned fit's bin edges (overrides and retry ranges too) must fall on it.",
    )  # fmt: skip
    min_events: int = Field(
        default=100, ge=1, description="Categories with fewer events are not fitted (step 3 applies the fallback)."
    )
    fsr_parameters: Literal["shared", "shared_scale", "per_fit"] = Field(
        default="shared_scale",
        description="With fit.fsr other than none, where fsr_fraction and fsr_scale are measured: shared, once per fit group "
        "(the step-1 categories, the closure bins, the Higgs bins) on all its events together, then fixed at that fit's values "
        "in each of the group's fits (radiation is the decay's, not the detector category's); shared_scale, the same for "
        "fsr_scale alone, fsr_fraction floating in every fit (a pT window changes the share of radiating events it keeps); "
        "per_fit, both floating in every fit. Where the fit of a group's events together finds no radiation, the group's fits "
        "have no radiation component (the line shape of fit.fsr: none).",
    )
    quality: QualityConfig = Field(description="Gates a fit must pass for its sigma to be used.")
    retry_ladder: list[FitPatch] = Field(description="Tried in order after the nominal fit fails a gate; each step modifies the nominal spec.")
    overrides: dict[str, FitPatch] = Field(
        default_factory=dict, description="Per-category changes of the nominal fit, by exact category name or shell wildcard."
    )

    @model_validator(mode="before")
    @classmethod
    def _fsr_param_defaults(cls, data: object) -> object:
        """With a radiation component, ``fit.params`` gets the FSR parameters it does not list, at their defaults."""
        if not isinstance(data, dict) or data.get("fsr", "none") == "none" or not isinstance(data.get("params"), dict):
            return data
        return data | {"params": FSR_PARAM_DEFAULTS | data["params"]}

    @model_validator(mode="after")
    def _all_params(self) -> "FitConfig":
        _check_param_names(self.params, "fit.params")
        missing = sorted(set(FIT_PARAMETERS) - set(self.params))
        if missing:
            raise ValueError(f"fit.params lacks {missing}")
        _check_range(self.range_gev)
        return self


class HiggsConfig(_Model):
    mass_gev: float = Field(gt=0, description="H pole mass in GeV (PDG), the DCB mean's start; inside the signal region.")
    width_gev: float = Field(gt=0, description="H natural width in GeV (PDG): negligible against the resolution, so the peak is a pure DCB.")
    signal_region_gev: tuple[float, float] = Field(description="Mass range in GeV of the signal-region events read and fitted.")
    bin_edges_gev: list[float] = Field(description="Bins of calibrated sigma_pred (GeV) of the Higgs check.")
    min_events: int = Field(ge=1, description="Fewer events in a bin: not tested.")
    tolerance: float = Field(gt=0, description="A bin passes when |fit / median - 1| is below this (dimensionless; or within closure.n_sigma).")
    # A pure DCB describes FSR and non-Gaussian tails only approximately (no Z-like window
    # acceptance to add here), so the Higgs fits keep looser chi2 gates than the Z fits.
    max_chi2_ndf: float = Field(default=5.0, gt=0, description="chi2/NDF gate of the Higgs fits (fit.quality for the rest).")
    max_shape_mismodelling: float = Field(
        default=0.10, ge=0, description="RMS relative data/model difference per bin tolerated above max_chi2_ndf in the Higgs fits."
    )

    _region = field_validator("signal_region_gev")(_check_range)
    _edges = field_validator("bin_edges_gev")(_check_edges)

    @model_validator(mode="after")
    def _mass_in_region(self) -> "HiggsConfig":
        lo, hi = self.signal_region_gev
        if not lo < self.mass_gev < hi:
            raise ValueError(f"mass_gev {self.mass_gev} is outside signal_region_gev {list(self.signal_region_gev)}")
        return self


class Step3Config(_Model):
    correction_name: str = Field(description="Name of the correction in the correctionlib JSON.")
    failed_fallback: Literal["abort", "neighbour_average", "unity"] = Field(
        description="What a category without a good fit gets: abort the run, its neighbours' average factor, or 1."
    )
    plausible_factor_band: tuple[float, float] = Field(description="A calibration factor (dimensionless) outside this band is not believed.")
    neighbour_outlier_ratio: float = Field(
        default=1.6, gt=1.0,
        description="A fitted factor this many times above or below the median of its neighbouring categories counts as a failed fit; "
        "the audit (python -m lib.correction audit, install, the report) flags such a factor in a JSON.",
    )  # fmt: skip


class PtProfileConfig(_Model):
    """Grid of the measured pT dependence of ptErr / pT (``lib.peak_scaling``)."""

    abseta_bins: int = Field(default=12, ge=1, description="Uniform |eta| bins up to abseta_max.")
    abseta_max: float = Field(default=2.4, gt=0, description="Upper |eta| of the grid (larger |eta| go to the last bin).")
    pt_range_gev: tuple[float, float] = Field(default=(15.0, 300.0), description="pT range in GeV of the uniform ln pT bins.")
    pt_bins: int = Field(default=30, ge=3, description="Uniform ln pT bins of the profile.")
    bandwidth_log_pt: float = Field(default=0.15, gt=0, description="Kernel width in ln pT of the local slope fits.")

    _log_spaced = field_validator("pt_range_gev")(_check_log_range)


class ClosureConfig(_Model):
    bin_variable: Literal["sigma_pred_at_peak", "sigma_pred"] = Field(
        default="sigma_pred_at_peak",
        description="Closure bins on the calibrated sigma_pred the event would have at the peak mass (sigma_pred_at_peak) or on "
        "sigma_pred itself, which slices the mass line shape inside each bin (the original's choice).",
    )
    pt_profile: PtProfileConfig = Field(
        default=PtProfileConfig(), description="Grid of the measured pT dependence of ptErr/pT used to move sigma_pred to the peak."
    )
    bin_edges_gev: list[float] = Field(description="Contiguous bins of calibrated sigma_pred in GeV.")
    min_events: int = Field(ge=1, description="Fewer events in a bin: not tested.")
    tolerance: float = Field(gt=0, description="A bin passes when |fit / median - 1| is below this (dimensionless).")
    n_sigma: float = Field(gt=0, description="... or when fit / median - 1 is within this many of its errors of zero.")

    _edges = field_validator("bin_edges_gev")(_check_edges)


class Config(_Model):
    input: InputConfig = Field(description="Where the Stage-1 parquet files are and how they are read.")
    selection: SelectionConfig = Field(description="Event selection: the Z control region.")
    categories: CategoryConfig = Field(description="Leading-muon pT bins and |eta| regions of the calibration categories.")
    step2: Step2Config = Field(description="Step 2: the median sigma_pred per category and its error.")
    fit: FitConfig = Field(description="The Z mass fit of each category: model, settings, gates, retries and overrides.")
    higgs: HiggsConfig = Field(description="The H->mumu check of the calibrated sigma_pred.")
    step3: Step3Config = Field(description="Step 3: calibration factors, their fallbacks and the correction JSON.")
    closure: ClosureConfig = Field(description="The Z closure test in bins of calibrated sigma_pred.")

    @model_validator(mode="after")
    def _fit_bins_on_histogram_grid(self) -> "Config":
        """Binned fits are sums of the histogram bins filled while reading: their edges must be its edges.

        Checked for the nominal fit and each override, and for every retry rung on top of each.
        """
        window, step = self.selection.z_window_gev, self.fit.histogram_bin_gev
        if not _on_grid(window[1] - window[0], step):
            raise ValueError(f"fit.histogram_bin_gev {step:g} must divide the Z window {list(window)}")
        nominal = (self.fit.range_gev, self.fit.bins)
        bases = {"fit": nominal}
        for name, patch in self.fit.overrides.items():
            fit_range = patch.range_gev or nominal[0]
            bases[f"fit.overrides.{name}"] = (fit_range, patch.bins or binned_count(nominal, fit_range))
        for where, base in bases.items():
            _check_on_grid(where, base, window, step)
            for i, rung in enumerate(self.fit.retry_ladder):
                fit_range = rung.range_gev or base[0]
                binning = (fit_range, rung.bins or binned_count(base, fit_range))
                _check_on_grid(f"{where} with fit.retry_ladder[{i}]", binning, window, step)
        return self

    def fingerprint(self, without_overrides: bool = False) -> str:
        """Short stable hash of the whole configuration, recorded in outputs for provenance.

        ``without_overrides``: the same hash with ``fit.overrides`` left out, which ``--fixCat``
        compares (tuning one category's override is what it is for; per-category fit specs are
        compared separately).
        """
        payload = self.model_dump(mode="json")
        if without_overrides:
            payload["fit"].pop("overrides")
        return _digest(payload)


def _check_on_grid(where: str, binning: tuple[tuple[float, float], int], window: tuple[float, float], step: float) -> None:
    """``ValueError`` naming ``where`` when ``bins`` over ``range`` are not whole bins of the grid over ``window``."""
    (lo, hi), bins = binning
    if not (window[0] <= lo and hi <= window[1]):
        raise ValueError(f"{where}: fit range {[lo, hi]} must lie inside selection.z_window_gev {list(window)}")
    width = (hi - lo) / bins
    if not (_on_grid(lo - window[0], step) and _on_grid(width, step) and width >= step * (1 - 1e-6)):
        raise ValueError(
            f"{where}: {bins} bins over {lo:g}-{hi:g} GeV do not fall on the fit.histogram_bin_gev {step:g} GeV grid"
            f" from {window[0]:g} GeV"
        )


def _on_grid(length: float, step: float) -> bool:
    """True when ``length`` is a whole number (zero included) of ``step``s, to rounding."""
    return abs(length / step - round(length / step)) < 1e-6


def binned_count(nominal: tuple[tuple[float, float], int], range_gev: tuple[float, float]) -> int:
    """Bins over ``range_gev`` with the bin width of the nominal ``(range, bins)``: a narrower range keeps the width."""
    (lo, hi), bins = nominal
    return max(1, int(round((range_gev[1] - range_gev[0]) * bins / (hi - lo))))
