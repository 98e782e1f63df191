"""One run per output directory, no empty directory from a run that wrote nothing, and steps that agree on their inputs."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from lib.closure import ClosureBin, bin_label
from lib.errors import CalibrationError, InputError
from lib.factors import CategoryFactor
from lib.outputs import FIT_KINDS, OutputDir
from lib.results import Factors
from lib.report.outputs import bin_plot, read_check
from lib.run.checks import check_refit_inputs, check_steps_agree

REPO = Path(__file__).resolve().parent.parent


def test_a_second_claim_is_refused_with_the_holder(tmp_path):
    out = OutputDir(tmp_path / "binned" / "2018" / "Data_2018")
    with out.claim():
        (out / "fit_results.csv").write_text("cat_name\n")
        with pytest.raises(CalibrationError, match=r"is in use by another run \(pid \d+"):
            with out.claim():
                pass
    with out.claim():  # released when the first run ended
        pass


def test_a_killed_run_does_not_block_the_next(tmp_path):
    out = OutputDir(tmp_path / "Data_2018")
    holder = textwrap.dedent(
        f"""
        import os, signal, sys
        sys.path.insert(0, {str(REPO)!r})
        from pathlib import Path
        from lib.outputs import OutputDir
        out = OutputDir(Path({str(out.path)!r}))
        with out.claim():
            (out / "x.csv").write_text("a\\n")
            os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    proc = subprocess.run([sys.executable, "-c", holder], capture_output=True, timeout=60)
    assert proc.returncode == -9
    with out.claim():  # the system released the lock with the process
        pass


def test_a_run_that_wrote_nothing_leaves_no_directory(tmp_path):
    out = OutputDir(tmp_path / "plots" / "binned" / "2018" / "Data_2018")
    with pytest.raises(RuntimeError):
        with out.claim():
            raise RuntimeError("failed before writing")
    assert not (tmp_path / "plots").exists()
    existing = OutputDir(tmp_path / "kept")
    existing.path.mkdir()
    with existing.claim():
        pass
    assert existing.path.is_dir(), "a directory that existed before the run stays"


def test_check_writable_creates_nothing(tmp_path):
    out = OutputDir(tmp_path / "a" / "b" / "Data_2018")
    out.check_writable()
    assert list(tmp_path.iterdir()) == []


def _provenance(out: OutputDir, steps: dict) -> None:
    out.path.mkdir(parents=True, exist_ok=True)
    out.write_provenance({"steps": steps})


@pytest.mark.parametrize("text,what", [("{truncated", "not JSON"), ("[1, 2]", "a JSON list, not the object the tool writes")])
def test_a_damaged_json_table_is_one_error_naming_it(tmp_path, text: str, what: str):
    out = OutputDir(tmp_path / "Data_2018")
    out.path.mkdir()
    for name, read in ((OutputDir.FIT_PARAMS_JSON, lambda: out.read_fits(missing_ok=True)), (OutputDir.PROVENANCE_JSON, out.read_provenance)):
        (out / name).write_text(text)
        with pytest.raises(InputError, match=re.escape(f"{out / name}: {what}")):
            read()


def test_step3_refuses_fits_and_medians_of_different_inputs(tmp_path):
    out = OutputDir(tmp_path / "Data_2018")
    same = {"inputs": "aaa", "config": "c1", "binned": True}
    _provenance(out, {"step1": same, "step2": same})
    check_steps_agree(out)
    _provenance(out, {"step1": same, "step2": {**same, "inputs": "bbb"}})
    with pytest.raises(CalibrationError, match="fits \\(step 1\\) and the medians \\(step 2\\) were made from different inputs"):
        check_steps_agree(out)
    _provenance(out, {"step1": same, "step2": {**same, "config": "c2"}})
    with pytest.raises(CalibrationError, match="different config"):
        check_steps_agree(out)


def test_fixcat_refuses_other_inputs_than_the_fits(tmp_path):
    out = OutputDir(tmp_path / "Data_2018")
    _provenance(out, {"step1": {"inputs": "aaa", "config": "c1", "binned": True}})
    check_refit_inputs(out, "aaa")
    with pytest.raises(CalibrationError, match="--fixCat would merge a fit of other input files"):
        check_refit_inputs(out, "bbb")
    assert json.loads((out / OutputDir.PROVENANCE_JSON).read_text())["steps"]["step1"]["inputs"] == "aaa"



def test_the_report_finds_the_figure_of_a_bin_with_a_fractional_edge(tmp_path):
    """The figure of bin ``closure_0.8-0.9`` is ``fit_closure_0.8-0.9.png``, not the name with its ``.9`` taken for a suffix."""
    out = OutputDir(tmp_path / "MC_2018")
    row = ClosureBin(0, 0.8, 0.9, 5000, 1.0, 0.01, 1.0, 1.0, 0.01, 1.0, 0.01, "ok", "pass")
    with out.claim():
        out.write_validation("closure", [row.row()])
        drawn = Path(f"{out.fit_plot_stem(bin_label(0.8, 0.9), 'closure')}.png")  # as lib.plots.save names a figure
        drawn.parent.mkdir(parents=True)
        drawn.write_bytes(b"png")
    (read,) = read_check(out, "closure").after
    assert (read.low, read.high, read.ratio) == (0.8, 0.9, 1.0)
    assert bin_plot(out, "closure", read) == "closure/fits/fit_closure_0.8-0.9.png"


# ---- one module spells the output directory's names ---------------------------------------------------------------

LIB = REPO / "lib"
OWNER = LIB / "outputs.py"
SCANNED = sorted(p for p in LIB.rglob("*.py") if p != OWNER) + [REPO / "getCalibrationFactor.py"]
# Input-side names: the generator's truth sits beside the sample it writes (read by tests and notebooks), not in an output directory.
INPUT_NAMES = {"truth.json"}
# Calls whose string arguments are paths or parts of paths.
PATH_CALLS = {"Path", "PurePath", "open", "joinpath", "with_name", "with_stem", "with_suffix", "glob", "rglob", "mkdir"}
FILE_NAME = r"[\w.-]*[\w-]\.(csv|json|tex|txt|html|pdf|png|log)\b"
PLACEHOLDER = "NAME"


def _output_names(tmp_path: Path) -> tuple[set[str], set[str]]:
    """OutputDir's names, read off the paths it gives: (names no other text spells by chance, plain folder words).

    The first are the file names, and the stems and folders with an underscore or a leading dot
    (``fit_results``, ``closure_fits``, ``.cache``, the correction file's name up to its year); the
    second are the folders named by a plain word (``fits``, ``closure``), which other code spells
    as words too, and so are looked for only where a path is made.
    """
    out = OutputDir.of(tmp_path, True, "2018", "Data")
    paths = [out / value for key, value in vars(OutputDir).items() if key.isupper() and isinstance(value, str)]
    for kind in FIT_KINDS:
        paths += [out.fit_plot(PLACEHOLDER, kind), out.fit_log(PLACEHOLDER, kind), out.cache(kind)]
    paths += [out.figure(figure) for figure in ("medians", "closure", "higgs")] + [out.cache("reduction"), out.correction_json("12")]
    with out.claim():  # the LaTeX tables, named as they are written
        out.write_factors(Factors((CategoryFactor("30-45_BB", 1.0, 0.1, 100, 1.0, 0.1, 1.0, 0.1, "ok", "fit"),)), "caption")
    paths += out.top_level_outputs()
    parts = {part for path in paths for part in path.relative_to(out.path).parts if PLACEHOLDER not in part}
    distinct = set()
    for part in parts:
        name = part.split(f"_{out.year}_")[0]  # the correction file's name without its year, sample and version
        stem = name.split(".")[0]
        distinct |= {name, stem}
    return {n for n in distinct if "_" in n or n.startswith(".")} | {p for p in parts if "." in p}, {p for p in parts if p.isalpha()}


def _docstrings(tree: ast.AST) -> set[int]:
    """The ids of the string constants that are docstrings or bare string statements (prose, not names in use)."""
    return {
        id(node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
    }


def _in_path_context(tree: ast.AST) -> set[int]:
    """The ids of the string constants that make a path: operands of ``/`` and arguments of path calls (f-strings' parts included)."""
    roots: list[ast.AST] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
            roots += [node.left, node.right]
        elif isinstance(node, ast.Call):
            func = node.func
            name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
            if name in PATH_CALLS:
                roots += [*node.args, *(k.value for k in node.keywords)]
    return {id(n) for root in roots for n in ast.walk(root) if isinstance(n, ast.Constant) and isinstance(n.value, str)}


def spelled_output_names(source: str, distinct: set[str], plain: set[str]) -> list[str]:
    """The output names ``source`` spells: a distinct name or a path of output folders in any string, a folder word or
    a file name where a path is made."""
    tree = ast.parse(source)
    prose, paths = _docstrings(tree), _in_path_context(tree)
    found = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Constant) and isinstance(node.value, str)) or id(node) in prose:
            continue
        text = node.value
        hits = [name for name in distinct if re.search(rf"(?<![A-Za-z0-9.]){re.escape(name)}(?!\w)", text)]
        segments = text.split("/")
        if len(segments) > 1 and all(segment in plain | distinct for segment in segments):
            hits.append(text)  # a relative path of output folders (``closure/uncalibrated``), wherever it is used
        if id(node) in paths:
            hits += [word for word in plain if word in re.split(r"[/\\]", text)]
            hits += [m.group(0) for m in re.finditer(FILE_NAME, text) if m.group(0) not in INPUT_NAMES]
        found += [f"line {node.lineno}: {hit!r} in {text!r}" for hit in sorted(set(hits))]
    return found


def test_the_scan_finds_an_output_name_spelled_outside_outputs(tmp_path):
    distinct, plain = _output_names(tmp_path)
    assert {"fit_results.csv", "closure_fits", ".cache", "res_calib_BS_correction", "calibration_factors_4dec.tex", "report_runs.json"} <= distinct
    assert {"fits", "logs", "closure", "uncalibrated", "higgs"} <= plain
    source = (
        '"""Reads fit_results.csv (prose: allowed)."""\n'
        'a = out / "fit_results.csv"\n'
        'b = path / "closure" / "fits"\n'
        'c = f"{year}_closure_tested_factors.json"\n'
        'd = Path(f"{stem}_new_table.csv")\n'
        'e = out / "truth.json"\n'
        'f = {"closure": 1}\n'
        'g = out.cache("fits")\n'
        'h = {"uncalibrated": "closure/uncalibrated"}\n'
    )
    found = spelled_output_names(source, distinct, plain)
    assert sorted({line.split(":")[0] for line in found}) == ["line 2", "line 3", "line 4", "line 5", "line 9"], found


def test_no_module_but_outputs_spells_an_output_name(tmp_path):
    distinct, plain = _output_names(tmp_path)
    found = {str(p.relative_to(REPO)): spelled_output_names(p.read_text(), distinct, plain) for p in SCANNED}
    assert {path: hits for path, hits in found.items() if hits} == {}
