"""Everything a request is checked for before the first file is read, and the provenance that later checks read.

A run refused here has done no work and written nothing: the inputs exist, the steps that need
earlier results find them, the category or closure bin exists, and the output directory can be
written and holds no other configuration's results (tables, JSON and closure verdict of two
configurations would disagree without saying so). ``provenance.json`` records what produced the
directory, so that step 3 run alone and ``--fixCat`` can check that they combine like with like.
"""

from __future__ import annotations

import logging
from typing import Sequence

from lib import __version__
from lib.categories import CategoryScheme
from lib.config import Config, override_keys, resolve_fit_spec
from lib.errors import CalibrationError, InputError
from lib.io.cache import inputs_fingerprint
from lib.io.reader import find_files
from lib.outputs import OutputDir
from lib.request import Request
from lib.run.reduction import input_root
from lib.run.validation import closure_bin_index, correction_to_test

log = logging.getLogger(__name__)


def preflight(request: Request, config: Config, scheme: CategoryScheme) -> None:
    """Check the whole request (the configuration's agreement with the output directory again once it is held).

    Raises:
        CalibrationError: the first problem found, naming the flag, file or directory.
    """
    selection = request.selection
    if selection.fix_cat:
        if selection.closure_test:
            closure_bin_index(selection.fix_cat, config.closure.bin_edges_gev)
        else:
            scheme.index_of(selection.fix_cat)
    for year in selection.years:
        out = request.output_dir(year)
        check_output_dir(out, request, config)
        _check_earlier_results(request, out)
        _check_inputs(request, config, out)


def _check_inputs(request: Request, config: Config, out: OutputDir) -> None:
    """The Stage-1 files the run will read exist (signal files too for the Higgs check); a refit reads the fits' own."""
    selection = request.selection
    if not selection.reads_inputs:
        return
    root = input_root(request.paths, config)
    files = find_files(root, config.input.mc_glob if selection.is_mc else config.input.data_glob, out.year)
    if selection.validate_higgs:
        find_files(root, config.input.signal_glob, out.year)
    if selection.fix_cat and not selection.closure_test:
        check_refit_inputs(out, inputs_fingerprint(files))


def _check_earlier_results(request: Request, out: OutputDir) -> None:
    """The results a step needs from earlier runs are in the output directory."""
    selection = request.selection
    if selection.closure_test:
        correction_to_test(request, out)
        return
    needed = []  # (the step whose table is needed, what to run for it)
    if selection.fix_cat and "step1" in selection.steps:
        needed.append(("step1", "--steps all"))  # the refit is merged into the other categories' fits
    if "step3" in selection.steps:
        needed += [(step, step) for step in ("step1", "step2") if step not in selection.steps]
    for step, remedy in needed:
        path = out.step_table(step)
        if not path.exists():
            found = out.variants()
            hint = f" (results of {out.base_name} exist in: {', '.join(found)}; --extraString selects the suffix)" if found else ""
            raise InputError(f"{path} not found: run {remedy} into {out.path} first{hint}")


def _fit_spec_hashes(config: Config, binned: bool, backend: str | None) -> dict[str, str]:
    """Per category, a hash of its resolved nominal fit specification (defaults and its overrides)."""
    names = CategoryScheme.from_config(config.categories).names
    return {name: resolve_fit_spec(config, name, binned, backend).fingerprint() for name in names}


def _configuration_differences(previous: dict[str, object], request: Request, config: Config) -> list[str]:
    """What differs between the run that filled a directory and this one, as ``name old vs new`` (inputs may: caches are keyed by them).

    ``--fixCat CAT`` may change CAT's own ``fit.overrides`` (the users' tuning loop), so it compares the
    configuration without the overrides, then every other category's fit specification with the recorded one.
    """
    selection = request.selection
    by_parts = bool(selection.fix_cat) and "config_fingerprint_without_overrides" in previous
    key = "config_fingerprint_without_overrides" if by_parts else "config_fingerprint"
    now = {key: config.fingerprint(without_overrides=by_parts), "binned": selection.binned, "sample": selection.sample}
    differences = [
        f"{name.partition('_')[0]} {previous[name]} vs {value}"  # config_fingerprint...: "config"
        for name, value in now.items()
        if name in previous and previous[name] != value
    ]
    if by_parts and not differences:
        recorded: dict[str, str] = previous.get("fit_specs", {})  # type: ignore[assignment]
        specs = _fit_spec_hashes(config, selection.binned, request.execution.backend)
        changed = sorted(n for n, h in recorded.items() if n != selection.fix_cat and specs.get(n) != h)
        if changed:
            differences.append(f"fit.overrides change the fits of {', '.join(changed)}, not only {selection.fix_cat}")
    return differences


def check_output_dir(out: OutputDir, request: Request, config: Config) -> bool:
    """Check the directory before any work; True when another configuration's outputs must go first (--overwrite).

    --fixCat is refused even with --overwrite: merging one category into another configuration's
    fits is wrong whatever is replaced.

    Raises:
        CalibrationError: the directory cannot be written, or holds another configuration's results.
    """
    out.check_writable()
    selection = request.selection
    if selection.closure_test or not selection.steps & {"step1", "step2"}:
        return False
    differences = _configuration_differences(out.read_provenance(), request, config)
    if not differences:
        return False
    if request.handling.overwrite and not selection.fix_cat:
        return True
    if selection.fix_cat:
        remedy = "--fixCat cannot merge into it; re-run step1 for every category with --overwrite"
    else:
        remedy = "use another --extraString/--output_path or --overwrite"
    raise CalibrationError(f"output directory {out.path} holds results of a different configuration ({', '.join(differences)}); {remedy}")


def make_room(out: OutputDir, request: Request, replace: bool) -> None:
    """Back up the directory's outputs (--backup) and clear another configuration's (``replace``)."""
    if request.handling.backup:
        saved = out.backup()
        if saved is not None:
            log.info("backed up the outputs to %s", saved)
    if replace:
        removed = out.remove_outputs()
        log.info("--overwrite: removed %d outputs of a different configuration from %s", removed, out.path)


def provenance(request: Request, config: Config, fingerprint: str, skipped: Sequence[str], previous: dict[str, object]) -> dict[str, object]:
    """What produced a directory's outputs: the ``fingerprint`` of the files read, those ``skipped`` as damaged, the configuration;
    ``steps`` (``stamp_step``) carried over from ``previous`` for the steps not redone.

    ``fit_specs`` lets a --fixCat run tell whether it changes only its category; ``tuned_categories``
    tells a reader which categories were tuned by hand (``fit.overrides``).
    """
    selection = request.selection
    names = CategoryScheme.from_config(config.categories).names
    tuned = {name: override_keys(config, name) for name in names}
    return {
        "inputs_fingerprint": fingerprint,
        "skipped_files": list(skipped),
        "input_path": str(request.paths.input_path or config.input.stage1_path),
        "config_fingerprint": config.fingerprint(),
        "config_fingerprint_without_overrides": config.fingerprint(without_overrides=True),
        "fit_specs": _fit_spec_hashes(config, selection.binned, request.execution.backend),
        "tuned_categories": {name: keys for name, keys in tuned.items() if keys},
        "tool_version": __version__,
        "binned": selection.binned,
        "sample": selection.sample,
        "steps": dict(previous.get("steps", {})),  # type: ignore[call-overload]
    }


def stamp_step(out: OutputDir, step: str, request: Request, config: Config, fingerprint: str) -> None:
    """Record in the provenance that ``step``'s table, just written, comes from the inputs of ``fingerprint`` and this configuration."""
    record = out.read_provenance()
    steps = dict(record.get("steps", {}))  # type: ignore[call-overload]
    steps[step] = {"inputs": fingerprint, "config": config.fingerprint(without_overrides=True), "binned": request.selection.binned}
    out.write_provenance({**record, "steps": steps})


def steps_disagreement(provenance: dict[str, object]) -> list[str]:
    """What the recorded step-1 fits and step-2 medians were made from differently (``inputs``, ``config``, ``binned``); empty unstamped."""
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
