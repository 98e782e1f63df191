"""Typed configuration: ``schema`` (the models, one per YAML section), ``specs`` (a category's resolved
``FitSpec``) and ``loading`` (YAML into the models, every problem on one line).

The names below are the configuration's public surface, re-exported so that a module asks
``lib.config`` for them whichever file holds them. ``StrictModel`` is the models' base (unknown
keys rejected, values frozen), exported for the other YAML schemas (the generator's settings).
The package imports only ``lib.errors``.
"""

from lib.config.loading import DEFAULT_CONFIG, load_config, load_yaml_model
from lib.config.schema import (
    FIT_PARAMETERS, AcceptanceConfig, CategoryConfig, ClosureConfig, Config, FitConfig, FitPatch, HiggsConfig, InputConfig,
    ParamPatch, ParamSpec, PtProfileConfig, QualityConfig, SelectionConfig, Step2Config, Step3Config, UndeterminedConfig,
    WIDTH_DEFINITIONS, binned_count,
)  # fmt: skip
from lib.config.schema import _Model as StrictModel
from lib.config.specs import FitSpec, higgs_fit_spec, override_keys, resolve_fit_spec, retry_specs

__all__ = [
    "DEFAULT_CONFIG", "FIT_PARAMETERS", "AcceptanceConfig", "CategoryConfig", "ClosureConfig", "Config", "FitConfig", "FitPatch",
    "FitSpec", "HiggsConfig", "InputConfig", "ParamPatch", "ParamSpec", "PtProfileConfig", "QualityConfig", "SelectionConfig",
    "Step2Config", "Step3Config", "StrictModel", "UndeterminedConfig", "WIDTH_DEFINITIONS", "binned_count", "higgs_fit_spec", "load_config",
    "load_yaml_model", "override_keys", "resolve_fit_spec", "retry_specs",
]  # fmt: skip
