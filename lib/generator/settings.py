"""The generator's settings: the schema of ``configs/generator.yaml``, validated once on reading.

The YAML's comments explain each knob; the models hold their limits. They share the analysis
configuration's strict base (unknown keys are errors, values are frozen), so a typo in either
YAML is reported the same way.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar, get_args

from pydantic import BaseModel, Field, ValidationError, model_validator

from lib.config import StrictModel, load_yaml_model
from lib.errors import ConfigError

DEFAULT_SETTINGS = Path(__file__).resolve().parents[2] / "configs" / "generator.yaml"
# The sample kinds, one per ``samples`` section: Data, the DY MC and the signal.
Kind = Literal["data", "mc", "signal"]
KINDS: tuple[Kind, ...] = get_args(Kind)
ModelT = TypeVar("ModelT", bound=BaseModel)


def _increasing(pair: tuple[float, float], what: str) -> None:
    if not pair[0] < pair[1]:
        raise ValueError(f"{what} must be increasing, got {list(pair)}")


class ProcessSettings(StrictModel):
    lineshape: Literal["relativistic_breit_wigner", "breit_wigner", "exponential"]  # Cauchy in s, in m, or exp(slope * m)
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


class SimulationSampleSettings(SampleSettings):
    dataset: str = Field(min_length=1, description="Dataset directory name.")


class SamplesSettings(StrictModel):
    data: SampleSettings
    mc: SimulationSampleSettings
    signal: SimulationSampleSettings


class EraSettings(StrictModel):
    lumi_fb: float = Field(gt=0, description="Share of the Data events is proportional to this.")
    runs: tuple[int, int] = Field(description="Run numbers drawn uniformly in [first, last].")

    @model_validator(mode="after")
    def _runs(self) -> "EraSettings":
        if not 0 < self.runs[0] <= self.runs[1]:
            raise ValueError(f"runs must be positive and ordered, got {list(self.runs)}")
        return self


class FsrRecoverySettings(StrictModel):
    min_photon_pt_gev: float = Field(2.0, ge=0, description="Photons softer than this are never added back.")
    efficiency: float = Field(0.6, ge=0, le=1, description="Share of the harder photons added back (in the cone, isolated).")


class FsrSettings(StrictModel):
    """Final-state radiation: which muons radiate, the photon's momentum fraction x, and what is added back."""

    # Settings whose default leaves today's exponential FSR unchanged; the truth file omits them then.
    OPT_IN: ClassVar[frozenset[str]] = frozenset({"shape", "min_fraction", "recovery"})

    probability: float = Field(ge=0, le=1, description="Per-muon probability to radiate.")
    mean_fraction: float = Field(gt=0, description="Mean momentum fraction lost (shape exponential).")
    max_fraction: float = Field(gt=0, lt=1, description="Truncation of the lost fraction.")
    shape: Literal["exponential", "qed", "recovered"] = "exponential"
    min_fraction: float = Field(0.001, gt=0, description="Softest photon of the qed radiator (shapes qed, recovered).")
    recovery: FsrRecoverySettings = Field(default_factory=FsrRecoverySettings, description="Shape recovered only.")

    @model_validator(mode="after")
    def _fractions(self) -> "FsrSettings":
        if self.shape != "exponential" and not self.min_fraction < self.max_fraction:
            raise ValueError(f"min_fraction ({self.min_fraction}) must be below max_fraction ({self.max_fraction})")
        return self


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


class MuonKMapSettings(StrictModel):
    """A resolution scale per muon: k of the muon's own |eta| region and pT bin, instead of one k per category."""

    abseta_edges: list[float] = Field(description="|eta| region edges, from 0 to at least acceptance.abseta_max.")
    pt_edges_gev: list[float] = Field(default_factory=list, description="Inner pT bin edges; none: one bin.")
    k: list[list[float]] = Field(description="k[|eta| region][pT bin]; a pT outside the edges takes the nearest bin.")

    @model_validator(mode="after")
    def _shape(self) -> "MuonKMapSettings":
        edges, pt_edges = self.abseta_edges, self.pt_edges_gev
        if len(edges) < 2 or edges[0] != 0 or any(b <= a for a, b in zip(edges, edges[1:])):
            raise ValueError(f"abseta_edges must start at 0 and increase, got {edges}")
        if any(b <= a for a, b in zip(pt_edges, pt_edges[1:])) or any(e <= 0 for e in pt_edges):
            raise ValueError(f"pt_edges_gev must be positive and increasing, got {pt_edges}")
        if len(self.k) != len(edges) - 1 or any(len(row) != len(pt_edges) + 1 for row in self.k):
            raise ValueError(f"k needs {len(edges) - 1} rows (|eta| regions) of {len(pt_edges) + 1} values (pT bins), got {self.k}")
        if not all(math.isfinite(v) and v > 0 for row in self.k for v in row):
            raise ValueError(f"every k must be a finite positive number, got {self.k}")
        return self


class MuonKMapsSettings(StrictModel):
    """Per-muon k maps by k-map name (a sample's ``k_map``); a name without one keeps the category map."""

    data: MuonKMapSettings | None = None
    mc: MuonKMapSettings | None = None


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
    mass_model: Literal["muons", "independent"] = "muons"
    muon_k_maps: MuonKMapsSettings = Field(default_factory=MuonKMapsSettings)
    gen_mass_column: bool = False  # dimuon_mass_gen in the simulation files
    truth_columns: bool = False  # the truth_* columns in every file (always, with a per-muon k map)

    # Opt-in features: at their default the sample is what it was without them, and the truth file omits them.
    OPT_IN: ClassVar[frozenset[str]] = frozenset({"muon_k_maps", "gen_mass_column", "truth_columns"})

    @model_validator(mode="after")
    def _muon_maps_cover_the_acceptance(self) -> "GeneratorSettings":
        for which in ("data", "mc"):
            spec = getattr(self.muon_k_maps, which)
            if spec is not None and spec.abseta_edges[-1] < self.acceptance.abseta_max:
                raise ValueError(
                    f"muon_k_maps.{which}.abseta_edges end at {spec.abseta_edges[-1]}, "
                    f"below acceptance.abseta_max {self.acceptance.abseta_max}"
                )
        return self

    def writes_truth_columns(self) -> bool:
        """Whether files carry the per-event truth: asked for, or needed because k is per muon."""
        return self.truth_columns or self.muon_k_maps != MuonKMapsSettings()


def settings_record(settings: GeneratorSettings) -> dict[str, Any]:
    """The settings as the truth file records them: opt-in features left at their default are omitted.

    So a sample made without the opt-in features has the same truth file as before they existed.
    """
    return _without_defaults(settings, settings.model_dump(mode="json"))


def _without_defaults(model: BaseModel, dumped: dict[str, Any]) -> dict[str, Any]:
    opt_in = getattr(model, "OPT_IN", frozenset())
    for name, field in type(model).model_fields.items():
        value = getattr(model, name)
        if name in opt_in and value == field.get_default(call_default_factory=True):
            del dumped[name]
        elif isinstance(value, BaseModel):
            _without_defaults(value, dumped[name])
    return dumped


def validated(model: type[ModelT], raw: dict[str, Any], what: str) -> ModelT:
    """``model(**raw)``, or one ConfigError line naming ``what`` and every problem the schema finds."""
    try:
        return model(**raw)
    except ValidationError as err:
        problems = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" if e["loc"] else e["msg"] for e in err.errors()]
        raise ConfigError(f"{what}: {'; '.join(problems)}") from err


def load_settings(path: str | Path | None = None) -> GeneratorSettings:
    """Read and validate the generator YAML (``configs/generator.yaml`` by default).

    Raises:
        ConfigError: unreadable file, bad YAML, or a key/value the schema rejects (named in the message).
    """
    return load_yaml_model(Path(path) if path else DEFAULT_SETTINGS, GeneratorSettings, "generator settings")
