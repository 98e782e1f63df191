"""Everything a request can be checked for before the first file is read, each failure one line.

A run refused here has done no work and written nothing: the inputs exist, the steps that need
earlier results find them, the category or closure bin exists, the output directory can be
written and holds no other configuration's results.
"""

from __future__ import annotations

from lib.categories import CategoryScheme
from lib.config import Config
from lib.errors import InputError
from lib.io.cache import inputs_fingerprint
from lib.io.reader import find_files
from lib.outputs import OutputDir
from lib.request import Request
from lib.run.closure import closure_bin_index, correction_to_test
from lib.run.outputs import check_output_dir, check_refit_inputs
from lib.run.reduction import input_root

__all__ = ["preflight"]


def preflight(request: Request, config: Config, scheme: CategoryScheme) -> None:
    """Check the whole request (the configuration's agreement with the output directory is checked once it is held).

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
        check_output_dir(out, request, config)  # checked again once the directory is held
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
        if "step1" not in selection.steps:
            needed.append(("step1", "step1"))
        if "step2" not in selection.steps:
            needed.append(("step2", "step2"))
    for step, remedy in needed:
        path = out.step_table(step)
        if not path.exists():
            raise InputError(f"{path} not found: run {remedy} into {out.path} first{_siblings_hint(out)}")


def _siblings_hint(out: OutputDir) -> str:
    """Where results of the same sample and year are, when the directory asked for has none (a missing --extraString)."""
    found = out.variants()
    return f" (results of {out.base_name} exist in: {', '.join(found)}; --extraString selects the suffix)" if found else ""
