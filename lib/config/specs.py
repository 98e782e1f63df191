"""Fit specifications: the ``fit:`` section, a category's overrides and the retry ladder resolved into one ``FitSpec``.

Per-category fit overrides (exact name or shell wildcard) are resolved here, so fitting code
never sees a raw dict or a category name pattern.
"""

from __future__ import annotations

import fnmatch
from typing import Literal

from pydantic import ValidationError

from lib.config.schema import Config, FitPatch, FitSettings, ParamSpec, binned_count
from lib.errors import ConfigError


class FitSpec(FitSettings):
    """Everything one fit needs, resolved for one category (picklable, no ROOT), final once resolved.

    The ``fit:`` settings that act inside a fit (``FitSettings``) after the category's overrides or
    the retry step; ``name``, ``binned``, ``peak``, ``label`` and the restart flags are the
    category's or the retry step's own. What the data decide for a category (its acceptance
    ``A(m)``) is no part of a spec: it travels beside the specs in the fit task (``lib.fitting.task``).
    """

    name: str
    binned: bool
    peak: Literal["z", "higgs"] = "z"
    label: str = "nominal"
    start_from_previous: bool = False
    freeze_from_previous: tuple[str, ...] = ()

    @property
    def uses_acceptance(self) -> bool:
        """Whether the model multiplies the Z line shape by the category's acceptance ``A(m)``."""
        return self.peak == "z" and self.line_shape == "acceptance"


def _apply_patch(spec: FitSpec, patch: FitPatch, median_sigma_gev: float | None) -> FitSpec:
    params = dict(spec.params)
    for pname, change in patch.params.items():
        merged = params[pname].model_dump() | change.model_dump(exclude_none=True)
        try:
            params[pname] = ParamSpec(**merged)
        except ValidationError as err:
            raise ConfigError(f"fit parameter '{pname}' for '{spec.name}': {err.errors()[0]['msg']}") from err
    if patch.sigma_from_median and median_sigma_gev is not None and median_sigma_gev > 0:
        sig = params["sigma"]
        lo = sig.min if sig.min is not None else 0.0
        hi = sig.max if sig.max is not None else 10.0 * median_sigma_gev
        params["sigma"] = sig.model_copy(update={"value": min(max(median_sigma_gev, lo), hi)})
    update: dict[str, object] = {"params": params}
    if patch.range_gev is not None:
        update["bins"] = binned_count((spec.range_gev, spec.bins), patch.range_gev)
    # What the patch sets (a field left at its default leaves the spec's as it is); its bins win over the range's.
    changed = patch.model_dump(exclude={"params", "sigma_from_median"}, exclude_defaults=True)
    return spec.model_copy(update=update | changed)


def _default_spec(config: Config, name: str, binned: bool, backend: str | None) -> FitSpec:
    """The ``fit:`` section as a spec for ``name``, before any override: its settings, the backend unless given."""
    settings = {key: getattr(config.fit, key) for key in FitSettings.model_fields}
    return FitSpec(**settings | {"backend": backend or config.fit.backend}, name=name, binned=binned)


def override_keys(config: Config, name: str) -> list[str]:
    """The ``fit.overrides`` keys that apply to ``name``, in the order they are applied.

    Wildcards in file order before the exact name, so ``30-45_EE`` beats ``30-45_*``.
    """
    overrides = config.fit.overrides
    wildcard = [k for k in overrides if k != name and fnmatch.fnmatchcase(name, k)]
    return wildcard + ([name] if name in overrides else [])


def resolve_fit_spec(config: Config, name: str, binned: bool, backend: str | None = None) -> FitSpec:
    """Nominal fit spec for one category: defaults, then its overrides (``override_keys``)."""
    spec = _default_spec(config, name, binned, backend)
    for key in override_keys(config, name):
        spec = _apply_patch(spec, config.fit.overrides[key].model_copy(update={"label": ""}), None)
    return spec


def higgs_fit_spec(config: Config, name: str, binned: bool, backend: str | None = None) -> FitSpec:
    """Fit spec of an H->mumu peak: a pure DCB (the 3.7 MeV width is negligible), no background, whose ``mean`` is absolute.

    Fit settings, sigma and tail start values come from ``fit``; the range is
    ``higgs.signal_region_gev`` and ``mean`` starts at ``higgs.mass_gev`` within +-5 GeV. Z-peak
    overrides do not apply. Retry steps that change the range are Z-specific: filter them out.
    """
    higgs = config.higgs
    lo, hi = higgs.signal_region_gev
    spec = _default_spec(config, name, binned, backend)
    params = dict(spec.params)
    params["mean"] = ParamSpec(value=higgs.mass_gev, min=max(lo, higgs.mass_gev - 5.0), max=min(hi, higgs.mass_gev + 5.0))
    return spec.model_copy(
        update={
            "range_gev": higgs.signal_region_gev, "params": params, "background": "none", "peak": "higgs",
            "line_shape": "breit_wigner",
        }
    )  # fmt: skip


def retry_specs(config: Config, nominal: FitSpec, median_sigma_gev: float | None) -> list[FitSpec]:
    """The configured retry ladder applied on top of a category's nominal spec."""
    return [_apply_patch(nominal, step, median_sigma_gev) for step in config.fit.retry_ladder]
