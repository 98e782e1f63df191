"""The generator's settings: the schema of ``configs/generator.yaml``, validated once on reading.

Kept apart from the simulation so a reader can see every knob of the model, with its meaning and
limits, in one place; the models share the analysis configuration's strict base (unknown keys are
errors, values are frozen), so a typo in either YAML is reported the same way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from lib.config import StrictModel, load_yaml_model

__all__ = [
    "DEFAULT_SETTINGS", "KINDS", "Kind", "GeneratorSettings", "load_settings", "ProcessSettings", "SampleSettings", "FsrSettings",
    "ResolutionSettings", "SmearingSettings", "KMapSettings",
]  # fmt: skip

DEFAULT_SETTINGS = Path(__file__).resolve().parents[2] / "configs" / "generator.yaml"
# The sample kinds, one per ``samples`` section: Data, the DY MC and the signal.
KINDS = ("data", "mc", "signal")
Kind = Literal["data", "mc", "signal"]


def _increasing(pair: tuple[float, float], what: str) -> None:
    if not pair[0] < pair[1]:
        raise ValueError(f"{what} must be increasing, got {list(pair)}")


class ProcessSettings(StrictModel):
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


class ProcessesSettings(StrictModel):
    z: ProcessSettings
    background: ProcessSettings
    higgs: ProcessSettings


class SampleSettings(StrictModel):
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


class SamplesSettings(StrictModel):
    data: SampleSettings
    mc: SampleSettings
    signal: SampleSettings

    @model_validator(mode="after")
    def _datasets(self) -> "SamplesSettings":
        for kind in ("mc", "signal"):
            if not getattr(self, kind).dataset:
                raise ValueError(f"samples.{kind}.dataset is required")
        return self


class EraSettings(StrictModel):
    lumi_fb: float = Field(gt=0, description="Share of the Data events is proportional to this.")
    runs: tuple[int, int] = Field(description="Run numbers drawn uniformly in [first, last].")

    @model_validator(mode="after")
    def _runs(self) -> "EraSettings":
        if not 0 < self.runs[0] <= self.runs[1]:
            raise ValueError(f"runs must be positive and ordered, got {list(self.runs)}")
        return self


class FsrSettings(StrictModel):
    probability: float = Field(ge=0, le=1, description="Per-muon probability to radiate.")
    mean_fraction: float = Field(gt=0, description="Mean momentum fraction lost (exponential).")
    max_fraction: float = Field(gt=0, lt=1, description="Truncation of the lost fraction.")


class ResolutionSettings(StrictModel):
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


class SmearingSettings(StrictModel):
    core_fraction: float = Field(gt=0, le=1, description="Probability of the N(0,1) core.")
    tail_sigma: float = Field(gt=0, description="Width of the Gaussian tail component.")


class AcceptanceSettings(StrictModel):
    lead_pt_min_gev: float = Field(ge=0)
    sublead_pt_min_gev: float = Field(ge=0)
    abseta_max: float = Field(gt=0)


class KMapSettings(StrictModel):
    base: float = Field(gt=0)
    leading_region: dict[str, float] = Field(description="Added per leading-muon |eta| region.")
    subleading_region: dict[str, float] = Field(description="Added per subleading-muon |eta| region.")
    pt_bin: list[float] = Field(description="Added per leading-muon pT bin.")
    overrides: dict[str, float] = Field(default_factory=dict, description="Exact category name -> k.")


class KMapsSettings(StrictModel):
    data: KMapSettings
    mc: KMapSettings


class WeightSettings(StrictModel):
    mean: float = Field(gt=0)
    sigma: float = Field(ge=0)
    min: float = Field(gt=0, description="Weights are clipped below here, so all are positive.")


class ExtraColumnSettings(StrictModel):
    njets_mean: float = Field(ge=0)
    met_mean_gev: float = Field(gt=0)


class GeneratorSettings(StrictModel):
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
