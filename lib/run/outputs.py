"""Whether a run may write into its output directory (one configuration's outputs only), and its provenance.

A step run with one configuration beside the outputs of another would leave tables, JSON and
closure verdict that disagree without saying so: the directory is checked before any work, and
``provenance.json`` records what produced it, so that step 3 run alone can still state it.
"""

from __future__ import annotations

import logging

from lib import __version__
from lib.categories import CategoryScheme
from lib.config import Config, override_keys, resolve_fit_spec
from lib.errors import CalibrationError
from lib.outputs import OutputDir
from lib.request import Request
from lib.run.reduction import InputSource

__all__ = ["check_output_dir", "check_refit_inputs", "check_steps_agree", "make_room", "provenance", "stamp_step", "steps_disagreement"]

log = logging.getLogger(__name__)


_CONFIGURATION_KEYS = {
    "config_fingerprint": "config", "config_fingerprint_without_overrides": "config", "binned": "binned", "sample": "sample",
}  # fmt: skip


def fit_spec_hashes(config: Config, binned: bool, backend: str | None) -> dict[str, str]:
    """Per category, a hash of its resolved nominal fit specification (defaults and its overrides)."""
    names = CategoryScheme.from_config(config.categories).names
    return {name: resolve_fit_spec(config, name, binned, backend).fingerprint() for name in names}


def tuned_categories(config: Config) -> dict[str, list[str]]:
    """Per category, the ``fit.overrides`` keys (exact or wildcard) that apply to it; untuned ones left out."""
    matched = {name: override_keys(config, name) for name in CategoryScheme.from_config(config.categories).names}
    return {name: keys for name, keys in matched.items() if keys}


def _configuration_differences(previous: dict[str, object], request: Request, config: Config) -> list[str]:
    """What differs between the run that filled a directory and this one, as ``name old vs new``.

    Inputs may differ: every cache is keyed by the input files, so new inputs cannot pick up old results.
    ``--fixCat CAT`` may change CAT's own fit (its ``fit.overrides``, the users' tuning loop): it
    compares the configuration without the overrides, and then every other category's fit
    specification with the one recorded in the provenance.
    """
    selection = request.selection
    by_parts = bool(selection.fix_cat) and "config_fingerprint_without_overrides" in previous
    key = "config_fingerprint_without_overrides" if by_parts else "config_fingerprint"
    now = {key: config.fingerprint(without_overrides=by_parts), "binned": selection.binned, "sample": selection.sample}
    differences = [
        f"{_CONFIGURATION_KEYS[name]} {previous[name]} vs {value}"
        for name, value in now.items()
        if name in previous and previous[name] != value
    ]
    if by_parts and not differences:
        recorded: dict[str, str] = previous.get("fit_specs", {})  # type: ignore[assignment]
        specs = fit_spec_hashes(config, selection.binned, request.execution.backend)
        changed = sorted(n for n, h in recorded.items() if n != selection.fix_cat and specs.get(n) != h)
        if changed:
            differences.append(f"fit.overrides change the fits of {', '.join(changed)}, not only {selection.fix_cat}")
    return differences


def _check_same_configuration(out: OutputDir, request: Request, config: Config) -> bool:
    """Refuse to mix outputs of two configurations in one directory; True when --overwrite lets them be replaced.

    A step run with one configuration next to outputs of another would leave tables, JSON and
    closure verdict that disagree without saying so. --fixCat is refused even with --overwrite:
    merging one category into another configuration's fits is wrong whatever is replaced.

    Raises:
        CalibrationError: the directory holds another configuration's results.
    """
    differences = _configuration_differences(out.read_provenance(), request, config)
    if not differences:
        return False
    fix_cat = request.selection.fix_cat
    if request.handling.overwrite and not fix_cat:
        return True
    if fix_cat:
        remedy = "--fixCat cannot merge into it; re-run step1 for every category with --overwrite"
    else:
        remedy = "use another --extraString/--output_path or --overwrite"
    raise CalibrationError(f"output directory {out.path} holds results of a different configuration ({', '.join(differences)}); {remedy}")


def check_output_dir(out: OutputDir, request: Request, config: Config) -> bool:
    """Check the directory before any work starts; True when another configuration's outputs must go first (--overwrite)."""
    out.check_writable()
    selection = request.selection
    return not selection.closure_test and bool(selection.steps & {"step1", "step2"}) and _check_same_configuration(out, request, config)


def make_room(out: OutputDir, request: Request, replace: bool) -> None:
    """Back up the directory's outputs (--backup) and clear another configuration's (``replace``)."""
    if request.handling.backup:
        saved = out.backup()
        if saved is not None:
            log.info("backed up the outputs to %s", saved)
    if replace:
        removed = out.remove_outputs()
        log.info("--overwrite: removed %d outputs of a different configuration from %s", removed, out.path)


def provenance(request: Request, config: Config, source: InputSource, previous: dict[str, object]) -> dict[str, object]:
    """What produced a directory's outputs, so that step 3 run alone, --fixCat and the report can state and check it.

    ``steps`` keeps, per step, the inputs and configuration its table was made from (``stamp_step``),
    carried over from ``previous`` for the steps this run does not redo.
    """
    selection = request.selection
    return {
        "inputs_fingerprint": source.fingerprint,
        "skipped_files": list(source.skipped),
        "input_path": str(request.paths.input_path or config.input.stage1_path),
        "config_fingerprint": config.fingerprint(),
        "config_fingerprint_without_overrides": config.fingerprint(without_overrides=True),
        # What each category was fitted with, so a --fixCat run can tell whether it changes only its
        # category, and a reader which categories were tuned by hand (fit.overrides).
        "fit_specs": fit_spec_hashes(config, selection.binned, request.execution.backend),
        "tuned_categories": tuned_categories(config),
        "tool_version": __version__,
        "binned": selection.binned,
        "sample": selection.sample,
        "steps": dict(previous.get("steps", {})),  # type: ignore[call-overload]
    }


def stamp_step(out: OutputDir, step: str, request: Request, config: Config, source: InputSource) -> None:
    """Record in the provenance that ``step``'s table, just written, comes from these inputs and this configuration."""
    record = out.read_provenance()
    steps = dict(record.get("steps", {}))  # type: ignore[call-overload]
    steps[step] = {"inputs": source.fingerprint, "config": config.fingerprint(without_overrides=True), "binned": request.selection.binned}
    out.write_provenance({**record, "steps": steps})


def steps_disagreement(provenance: dict[str, object]) -> list[str]:
    """What the step-1 fits and step-2 medians recorded in ``provenance`` were made from differently (``inputs``, ``config``, ``binned``).

    Empty for a directory written before the steps were stamped: there is nothing to compare.
    """
    steps = provenance.get("steps", {})
    fits, medians = steps.get("step1"), steps.get("step2")  # type: ignore[union-attr]
    if not fits or not medians:
        return []
    return [what for what in ("inputs", "config", "binned") if fits.get(what) != medians.get(what)]


def check_steps_agree(out: OutputDir) -> None:
    """Refuse to combine fits and medians that were made from different inputs or configurations.

    Raises:
        CalibrationError: the directory's step-1 and step-2 tables disagree (names which to rerun).
    """
    differ = steps_disagreement(out.read_provenance())
    if differ:
        raise CalibrationError(
            f"{out.path}: the fits (step 1) and the medians (step 2) were made from different {' and '.join(differ)}; "
            "rerun --steps all (or the step whose inputs are the wrong ones) before step 3"
        )


def check_refit_inputs(out: OutputDir, fingerprint: str) -> None:
    """Refuse a --fixCat refit of other inputs than the fits it is merged into.

    Raises:
        CalibrationError: the step-1 fits of the directory were made from other input files.
    """
    fits = out.read_provenance().get("steps", {}).get("step1")  # type: ignore[union-attr]
    if fits and fits.get("inputs") != fingerprint:
        raise CalibrationError(
            f"--fixCat would merge a fit of other input files into the fits in {out.path}; "
            "rerun --steps all on these inputs (or point --input_path at the files the fits were made of)"
        )

