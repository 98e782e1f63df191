"""Configuration: validated once, bad files named by defect, overrides resolved per category."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import get_args

import pytest
import yaml
from pydantic import BaseModel

from lib.config import (
    DEFAULT_CONFIG, Config, FitPatch, FitSpec, ParamPatch, ParamSpec, PtProfileConfig, UndeterminedConfig, load_config,
    resolve_fit_spec, retry_specs,
)  # fmt: skip
from lib.config.schema import FitSettings
from lib.errors import ConfigError


def _write_variant(tmp_path: Path, mutate) -> Path:
    raw = yaml.safe_load(DEFAULT_CONFIG.read_text())
    mutate(raw)
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_default_config_loads(config):
    assert config.selection.z_window_gev == (75.0, 105.0)
    assert config.fit.params["bw_mass"].value == pytest.approx(91.1880)
    assert config.fit.params["bw_width"].value == pytest.approx(2.4955)
    assert config.higgs.mass_gev == pytest.approx(125.2)
    edges = config.closure.bin_edges_gev
    assert all(b > a for a, b in zip(edges, edges[1:])) and 1.2 in edges and 1.3 in edges


def test_fingerprint_changes_with_content(tmp_path, config):
    path = _write_variant(tmp_path, lambda r: r["fit"].update(bins=60))
    assert load_config(path).fingerprint() != config.fingerprint()


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda r: r["fit"].update(bins=100), r"fit with fit.retry_ladder\[5\]: 67 bins over 81-101 GeV do not fall on the fit.histogram_bin_gev 0.05 GeV grid"),
        (lambda r: r["fit"]["overrides"].update({"30-45_EE": {"bins": 100}}), r"fit.overrides.30-45_EE with fit.retry_ladder\[5\]: 67 bins over 81-101 GeV do not fall on the fit.histogram_bin_gev 0.05 GeV grid"),
        (lambda r: r["fit"].update(bins=70), r"fit: 70 bins over 75-105 GeV do not fall on"),
        (lambda r: r["fit"]["overrides"].update({"30-45_*": {"range_gev": [74.0, 100.0]}}), r"fit.overrides.30-45_\*: fit range \[74.0, 100.0\] must lie inside"),
        (lambda r: r["fit"].update(histogram_bin_gev=0.07), r"fit.histogram_bin_gev 0.07 must divide the Z window"),
    ],
    ids=["narrow_rung", "override_then_rung", "nominal", "override_range", "grid"],
)
def test_binned_fits_must_fall_on_the_histogram_grid(tmp_path, mutate, message):
    """Binned fits are sums of the histogram bins filled while reading; a binning off that grid is one config error."""
    with pytest.raises(ConfigError, match=message):
        load_config(_write_variant(tmp_path, mutate))


@pytest.mark.parametrize(
    ("defect", "mutate", "message"),
    [
        ("unknown_top_key", lambda r: r.update(fitt={}), "fitt: Extra inputs are not permitted"),
        ("typo_in_param", lambda r: r["fit"]["params"].update(sigmaa={"value": 1.0}), "unknown fit parameter"),
        ("override_unknown_param", lambda r: r["fit"]["overrides"].update({"30-45_*": {"params": {"nn": {"value": 2}}}}), "unknown fit parameter"),
        ("start_outside_limits", lambda r: r["fit"]["params"]["sigma"].update(value=9.0), "outside"),
        ("decreasing_edges", lambda r: r["categories"].update(pt_edges_gev=[30, 20, 100]), "increasing"),
        ("wrong_region_count", lambda r: r["categories"].update(region_names=["B", "E"]), "region_names"),
        ("bad_fallback", lambda r: r["step3"].update(failed_fallback="guess"), "failed_fallback"),
        ("higgs_reversed_edges", lambda r: r["higgs"].update(bin_edges_gev=[1.0, 0.8, 1.2]), r"higgs.bin_edges_gev: .*increasing"),
        ("higgs_reversed_region", lambda r: r["higgs"].update(signal_region_gev=[135.0, 115.0]), r"higgs.signal_region_gev: .*increasing"),
        ("higgs_mass_outside", lambda r: r["higgs"].update(mass_gev=91.2), r"higgs: .*mass_gev 91.2 is outside signal_region_gev"),
    ],
)
def test_bad_config_is_named(tmp_path, defect, mutate, message):
    path = _write_variant(tmp_path, mutate)
    with pytest.raises(ConfigError, match=message):
        load_config(path)


def test_every_defect_is_reported_on_one_line(tmp_path):
    def two_defects(raw: dict) -> None:
        raw["step3"]["failed_fallback"] = "guess"
        raw["closure"]["bin_edges_gev"] = [1.0, 0.5]

    with pytest.raises(ConfigError) as caught:
        load_config(_write_variant(tmp_path, two_defects))
    message = str(caught.value)
    assert "(2 problems)" in message and "step3.failed_fallback" in message and "closure.bin_edges_gev" in message
    assert "\n" not in message


def test_malformed_yaml_names_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("fit:\n  bins: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML at line"):
        load_config(path)


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(tmp_path / "nope.yaml")


def test_overrides_wildcard_then_exact(tmp_path):
    def mutate(raw):
        raw["fit"]["overrides"] = {
            "30-45_*": {"range_gev": [80.0, 100.0], "params": {"sigma": {"value": 2.0}}},
            "30-45_EE": {"range_gev": [84.0, 98.0]},
        }

    cfg = load_config(_write_variant(tmp_path, mutate))
    ee = resolve_fit_spec(cfg, "30-45_EE", binned=True)
    bb = resolve_fit_spec(cfg, "30-45_BB", binned=True)
    other = resolve_fit_spec(cfg, "45-52_BB", binned=True)
    assert ee.range_gev == (84.0, 98.0) and ee.params["sigma"].value == 2.0
    assert bb.range_gev == (80.0, 100.0)
    assert other.range_gev == cfg.fit.range_gev and other.params["sigma"].value == cfg.fit.params["sigma"].value


def test_retry_ladder_starts_sigma_at_median_or_previous_minimum(config):
    nominal = resolve_fit_spec(config, "30-45_BB", binned=True)
    retries = retry_specs(config, nominal, 1.7)
    assert len(retries) == len(config.fit.retry_ladder)
    assert [r.label for r in retries] == [step.label for step in config.fit.retry_ladder]
    for step, spec in zip(config.fit.retry_ladder, retries):
        assert spec.start_from_previous == step.start_from_previous
        assert spec.freeze_from_previous == step.freeze_from_previous
        if step.sigma_from_median:
            assert spec.params["sigma"].value == pytest.approx(1.7)
    assert any(r.start_from_previous for r in retries) and any(r.params["sigma"].value == pytest.approx(1.7) for r in retries)


def test_freeze_from_previous_rejects_unknown_parameter(tmp_path):
    def mutate(raw):
        raw["fit"]["retry_ladder"] = [{"label": "x", "freeze_from_previous": ["n_middle"]}]

    with pytest.raises(ConfigError, match="n_middle"):
        load_config(_write_variant(tmp_path, mutate))


def _models_below(model: type[BaseModel]) -> list[type[BaseModel]]:
    """``model`` and every model its fields hold, at any depth (inside ``list``, ``dict``, ``| None``...), each once."""
    seen: list[type[BaseModel]] = []
    todo = [model]
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.append(current)
        for field in current.model_fields.values():
            todo.extend(_models_in(field.annotation))
    return seen


def _models_in(annotation: object) -> Iterator[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
        return
    for argument in get_args(annotation):
        yield from _models_in(argument)


def test_every_config_field_is_described():
    """The models are the reference of the YAML: each field says what it means, not just its name again."""
    models = _models_below(Config)
    assert {ParamSpec, FitPatch, ParamPatch, UndeterminedConfig, PtProfileConfig} <= set(models)
    undescribed = []
    for model in models:
        for name, field in model.model_fields.items():
            words = re.sub(r"[\W_]+", " ", field.description or "").strip().lower()
            if len(words.split()) < 2 or words == name.replace("_", " ").lower():
                undescribed.append(f"{model.__name__}.{name}: {field.description!r}")
    assert not undescribed, "fields without a description: " + "; ".join(undescribed)


def test_fit_spec_carries_every_fit_setting_that_acts_inside_a_fit(config):
    """Each setting of ``FitSettings`` (the ``fit:`` settings that act inside a fit) reaches the nominal spec with its value.

    The spec holds those settings and its own fields, nothing of what acts around the fits. Every
    carried setting differs here from its default, so a setting lost on the way is seen.
    """
    fit = config.fit
    changed = fit.model_copy(update={
        "fft_cache_bins_first": 700, "line_shape": "acceptance", "acceptance": fit.acceptance.model_copy(update={"placement": "true"}),
        "width": "effective", "width_window_sigmas": 3.5, "undetermined": fit.undetermined.model_copy(update={"params": ("n_left",)}), "fsr": "exponential",
    })  # fmt: skip
    carried = FitSettings.model_fields.keys()
    own = {"name", "binned", "peak", "label", "start_from_previous", "freeze_from_previous"}
    assert FitSpec.model_fields.keys() == carried | own
    defaults = {key: FitSpec.model_fields[key].default for key in carried if not FitSpec.model_fields[key].is_required()}
    assert all(getattr(changed, key) != default for key, default in defaults.items()), "change every defaulted setting above"
    spec = resolve_fit_spec(config.model_copy(update={"fit": changed}), "30-45_BB", binned=True)
    assert {key: getattr(spec, key) for key in carried} == {key: getattr(changed, key) for key in carried}
    assert (spec.name, spec.binned, spec.uses_acceptance) == ("30-45_BB", True, True)
    assert resolve_fit_spec(config, "30-45_BB", binned=False, backend="legacy").backend == "legacy"
