"""The nominal fit fixes what the data cannot determine: the rule on numbers, then a real fit."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from lib.config import Config, UndeterminedConfig, load_config, resolve_fit_spec
from lib.errors import ConfigError
from lib.fitting.undetermined import undetermined_params, unmeasured_params
from tests.test_fitting import make_task, reported_truth, z_sample

LIMITS = {
    "alpha_left": (1.5, 10.0), "n_left": (1.01, 60.0), "alpha_right": (1.5, 10.0), "n_right": (1.01, 60.0),
    "bkg_fraction": (0.0, 0.3), "bkg_slope": (-0.5, 0.1),
}  # fmt: skip
ALL = tuple(LIMITS)
INSIDE = {"alpha_left": 2.0, "n_left": 3.0, "alpha_right": 2.5, "n_right": 5.0, "bkg_fraction": 0.02, "bkg_slope": -0.05}


def rule(values: dict[str, float], candidates: tuple[str, ...] = ALL, tolerance: float = 0.01) -> tuple[str, ...]:
    return undetermined_params(INSIDE | values, LIMITS, candidates, tolerance, no_tail_alpha=5.0)


def test_parameters_inside_their_range_float():
    assert rule({}) == ()


def test_a_parameter_within_the_tolerance_of_a_limit_is_fixed():
    assert rule({"alpha_left": 1.5 + 0.009 * 8.5}) == ("alpha_left",)
    assert rule({"alpha_left": 1.5 + 0.011 * 8.5}) == ()
    assert rule({"n_right": 59.9}) == ("n_right",)


def test_a_tail_beyond_no_tail_alpha_fixes_its_alpha_and_power():
    assert rule({"alpha_right": 7.0}) == ("alpha_right", "n_right")
    assert rule({"alpha_left": 4.9}) == ()


def test_no_background_fixes_the_slope_too_but_a_fraction_at_its_ceiling_does_not():
    assert rule({"bkg_fraction": 0.0}) == ("bkg_fraction", "bkg_slope")
    assert rule({"bkg_fraction": 0.3}) == ("bkg_fraction",)


def test_only_candidates_and_floating_parameters_are_fixed():
    assert rule({"alpha_left": 1.5, "bkg_fraction": 0.0}, candidates=("bkg_fraction",)) == ("bkg_fraction",)
    values = {k: v for k, v in INSIDE.items() if k != "n_right"} | {"alpha_right": 8.0}  # n_right already constant
    assert undetermined_params(values, LIMITS, ALL, 0.01, 5.0) == ("alpha_right",)


def test_an_error_larger_than_the_range_means_unmeasured():
    errors = {"alpha_left": 0.4, "n_left": 2.0, "alpha_right": 8.6, "n_right": 9381.0, "bkg_fraction": 0.01, "bkg_slope": 0.05}
    assert unmeasured_params(errors, LIMITS, ALL, 1.0) == ("alpha_right", "n_right")
    assert unmeasured_params(errors, LIMITS, ALL, 2.0) == ("n_right",)
    assert unmeasured_params(errors, LIMITS, ("n_left",), 1.0) == ()
    assert unmeasured_params(errors | {"n_left": float("nan")}, LIMITS, ALL, 1.0) == ("n_left", "alpha_right", "n_right")
    assert unmeasured_params({"bkg_slope": 50.0}, {"bkg_slope": (None, 0.1)}, ALL, 1.0) == ()  # unbounded: no range to compare


def test_sigma_and_mean_can_never_be_fixed_by_the_rule(config: Config, tmp_path):
    with pytest.raises(ValueError, match="may not hold sigma or mean"):
        UndeterminedConfig(params=("sigma",))
    raw = config.model_dump(mode="json")
    raw["fit"]["undetermined"]["params"] = ["mean", "alpha_left"]
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match="fit.undetermined.params.*sigma or mean"):
        load_config(path)


@pytest.mark.root
def test_fit_without_background_passes_at_the_nominal_attempt(plain_config: Config):
    """No background: bkg_fraction goes to its limit 0 and the slope has nothing to measure.

    Left floating, those directions are flat and Hesse's matrix is singular; fixed, the nominal fit
    passes, NDF counts only what floated, and the reported width is the truth within its error.
    """
    pytest.importorskip("ROOT")
    from lib.fitting.runner import fit_category

    tails = {"alpha_left": 1.8, "n_left": 3.0, "alpha_right": 8.0, "n_right": 5.0}
    masses = z_sample(np.random.default_rng(5), 200_000, 1.3, tails=tails)
    spec = resolve_fit_spec(plain_config, "45-52_BB", binned=True)
    result = fit_category(make_task(plain_config, "45-52_BB", masses, spec, median=1.2))
    nominal = result.attempts[0]
    assert result.ok and len(result.attempts) == 1, result.reason
    assert {"bkg_fraction", "bkg_slope"} <= set(nominal.fixed_undetermined)
    assert result.chosen.n_float == 8 - len(nominal.fixed_undetermined)
    assert all(result.chosen.param(name).constant for name in nominal.fixed_undetermined)
    truth = reported_truth(plain_config, 1.3, tails)
    assert abs(result.fit_val - truth) < 3.0 * result.fit_err and result.fit_err < 0.02 * truth



@pytest.mark.root
def test_unmeasured_parameters_are_fixed_after_hesse_and_the_minimum_kept(plain_config: Config):
    """Every candidate declared unmeasured (threshold near 0): the refit keeps the minimum and only sigma and mean float."""
    pytest.importorskip("ROOT")
    from lib.fitting.runner import fit_category

    undetermined = plain_config.fit.undetermined.model_copy(update={"max_error_to_range": 1e-9})
    config = plain_config.model_copy(update={"fit": plain_config.fit.model_copy(update={"undetermined": undetermined})})
    masses = z_sample(np.random.default_rng(11), 50_000, 1.2, bkg_fraction=0.02)
    reference = fit_category(make_task(plain_config, "45-52_OO", masses, resolve_fit_spec(plain_config, "45-52_OO", binned=True), 1.1))
    result = fit_category(make_task(config, "45-52_OO", masses, resolve_fit_spec(config, "45-52_OO", binned=True), 1.1))
    nominal = result.attempts[0]
    assert reference.ok and result.ok and len(result.attempts) == 1, result.reason
    assert set(nominal.fixed_undetermined) == set(config.fit.undetermined.params)
    assert result.chosen.n_float == 2  # mean and sigma
    assert abs(result.fit_val - reference.fit_val) < 0.05 * reference.fit_err
    assert result.fit_err <= reference.fit_err * 1.001  # the tails' uncertainty no longer enters
