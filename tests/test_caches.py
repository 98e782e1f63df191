"""Caches cannot go stale or hurt: keys follow the code, and a damaged or misplaced entry is a warning and a recomputation.

Each damage a batch node can leave is applied to a real entry: the file truncated, 16 bytes
overwritten inside it, text in place of it, another slot's entry copied under its name. The run
then warns once naming the file and ends with the same numbers as a clean one; an intact entry
is still reused without the work it stands for.
"""

from __future__ import annotations

import ast
import logging
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Callable

import numpy as np
import pyarrow.parquet as pq
import pytest

from getCalibrationFactor import main
from lib.config import Config
from lib.executor import InlineExecutor
from lib.io.cache import REDUCTION_CODE, EntryStore, reduction_key, source_digest, source_files
from tests.helpers_tables import random_stage1_table

REPO = Path(__file__).resolve().parent.parent
YEAR = "2018"


# ---------------------------------------------------------------------------------------------
# Damage done to an entry file (``other``: an intact entry of another slot, for the copy).


def _truncate(path: Path, other: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _overwrite_16_bytes(path: Path, other: Path) -> None:
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 16] = bytes(255 - b for b in data[middle : middle + 16])
    path.write_bytes(bytes(data))


def _text(path: Path, other: Path) -> None:
    path.write_text("42\nnot a cache entry\n")


def _copied_under_its_name(path: Path, other: Path) -> None:
    shutil.copyfile(other, path)


# Each damage, and what the warning says of it.
DAMAGE: dict[str, tuple[Callable[[Path, Path], None], str]] = {
    "truncated": (_truncate, "truncated"),
    "16 bytes overwritten": (_overwrite_16_bytes, "checksum does not match"),
    "text": (_text, "not a cache entry of this tool"),
    "another entry copied": (_copied_under_its_name, "it holds the"),
}


def _one_warning_naming(caplog: pytest.LogCaptureFixture, path: Path) -> str:
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING and "cache entry" in r.getMessage()]
    assert len(warnings) == 1 and str(path) in warnings[0] and "recomputing" in warnings[0], warnings
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    return warnings[0]


# ---------------------------------------------------------------------------------------------
# The entry format itself


def test_an_entry_is_verified_before_it_is_decoded(tmp_path, caplog, monkeypatch):
    store = EntryStore(tmp_path, "fit", str)
    path = store.store("30-45_BB", "k1", "payload")
    assert store.load("30-45_BB", "k1") == "payload"
    decoded: list[object] = []
    monkeypatch.setattr("lib.io.cache.pickle.loads", lambda handle: decoded.append(handle) or "decoded")
    path.write_bytes(path.read_bytes().replace(b"payload", b"paYload"))
    assert store.load("30-45_BB", "k1") is None
    assert decoded == [], "a damaged payload must never reach the decoder"
    assert "checksum does not match" in _one_warning_naming(caplog, path)


def test_an_entry_of_another_type_is_a_warning(tmp_path, caplog):
    path = EntryStore(tmp_path, "fit", str).store("30-45_BB", "k1", "payload")
    assert EntryStore(tmp_path, "fit", int).load("30-45_BB", "k1") is None
    assert "it holds a str, not a int" in _one_warning_naming(caplog, path)


def test_storing_an_entry_drops_only_its_own_slots_other_keys(tmp_path):
    store = EntryStore(tmp_path, "fit", str)
    kept = [store.store("closure_1-2", "k1", "a"), store.store("closure_1-2.5", "k1", "b"), store.store("closure_1", "k1", "c")]
    new = store.store("closure_1-2", "k2", "d")
    assert sorted(tmp_path.iterdir()) == sorted([new, *kept[1:]])


# ---------------------------------------------------------------------------------------------
# Keys follow the code: an edited reader misses the cache, a copy of the same code hits it.

_REUSE_PROBE = """\
import sys
from pathlib import Path

from lib.categories import CategoryScheme
from lib.config import load_config
from lib.histogram_specs import category_spec
from lib.io.cache import inputs_fingerprint, load_cached_reduction, reduction_key, store_reduction
from lib.io.merge import ReductionMerger
from lib.io.reader import FileReading, Keep, reduce_file

files, cache_dir = [Path(sys.argv[1])], Path(sys.argv[2])
config = load_config()
scheme = CategoryScheme.from_config(config.categories)
specs = (category_spec(config, scheme),)
key = reduction_key(inputs_fingerprint(files), {"z_window": [75.0, 105.0]})
keep = Keep(specs, events=True)
if load_cached_reduction(cache_dir, key, keep) is not None:
    print("reused")
else:
    merger = ReductionMerger(files, specs, False)
    merger.add(0, reduce_file(files[0], FileReading(scheme, (75.0, 105.0), None, keep=keep)))
    store_reduction(cache_dir, key, keep, merger.result())
    print("computed")
"""


def _copy_of_the_code(root: Path) -> Path:
    for part in ("lib", "configs"):
        shutil.copytree(REPO / part, root / part, ignore=shutil.ignore_patterns("__pycache__"))
    return root


def _edit_reduce_file(reader: Path) -> None:
    """Add a statement to ``reduce_file``, just before its last one."""
    lines = reader.read_text().splitlines(keepends=True)
    (function,) = [n for n in ast.parse("".join(lines)).body if isinstance(n, ast.FunctionDef) and n.name == "reduce_file"]
    last = function.body[-1]
    lines.insert(last.lineno - 1, " " * last.col_offset + "threads = max(1, threads)\n")
    reader.write_text("".join(lines))


def _probe(code_root: Path, script: Path, data: Path, cache_dir: Path) -> str:
    out = subprocess.run([sys.executable, str(script), str(data), str(cache_dir)], capture_output=True, text=True,
                         cwd=code_root, env={"PYTHONPATH": str(code_root)}, timeout=300)  # fmt: skip
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


@pytest.mark.slow
def test_editing_a_reader_function_misses_the_reduction_cache(tmp_path):
    data = tmp_path / "in.parquet"
    pq.write_table(random_stage1_table(4000, 7, mass_range=(76.0, 104.0)), data)
    script = tmp_path / "probe.py"
    script.write_text(_REUSE_PROBE)
    same, edited = _copy_of_the_code(tmp_path / "same"), _copy_of_the_code(tmp_path / "edited")
    _edit_reduce_file(edited / "lib" / "io" / "reader.py")
    cache_dir = tmp_path / "cache"
    assert _probe(REPO, script, data, cache_dir) == "computed"
    assert _probe(REPO, script, data, cache_dir) == "reused"
    assert _probe(same, script, data, cache_dir) == "reused", "the key is the code's content, not its place"
    assert _probe(edited, script, data, cache_dir) == "computed", "a reduction made by other reader code was reused"


def test_the_reduction_key_holds_inputs_settings_and_code():
    key = reduction_key("files", {"z_window": [75.0, 105.0]})
    assert key == reduction_key("files", {"z_window": [75.0, 105.0]})
    assert key != reduction_key("other files", {"z_window": [75.0, 105.0]})
    assert key != reduction_key("files", {"z_window": [76.0, 105.0]})


def test_the_code_of_a_reduction_is_found_from_the_modules_it_runs():
    """Reader, histograms, merge, selection, peak scaling, resolution and categories, none of them listed by hand."""
    files = set(source_files(*REDUCTION_CODE))
    assert {"io/reader.py", "io/merge.py", "io/cache.py", "histograms.py", "dimuon_kinematics.py", "peak_scaling.py",
            "resolution.py", "categories.py", "config/schema.py"} <= files  # fmt: skip
    assert not {p for p in files if p.startswith(("fitting/", "run/", "report/"))}
    assert source_digest("lib.io.reader") == source_digest("lib.io.reader", "lib.histograms", "lib.resolution")
    with pytest.raises(ValueError, match="lib.nowhere is not a module of lib"):
        source_digest("lib.nowhere")


def test_the_code_of_a_fit_is_the_fitting_package_and_what_builds_its_task():
    from lib.io.fit_cache import FITTING_PACKAGE

    files = set(source_files(FITTING_PACKAGE, "lib.peak_fits"))
    assert {"fitting/runner.py", "fitting/model.py", "fitting/accepted_conv.cxx", "peak_fits.py", "config/specs.py", "acceptance.py"} <= files


def test_a_deferred_import_counts():
    """``peak_fits`` imports the fit runner inside its functions only: the runner is still part of its code."""
    assert "fitting/runner.py" in source_files("lib.peak_fits")


# ---------------------------------------------------------------------------------------------
# The reduction cache through the command line (step 2: no fits)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("inputs")
    for i in range(2):
        path = root / YEAR / "compacted" / "data_A" / "0" / f"part{i}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(random_stage1_table(3000, 20 + i, mass_range=(76.0, 104.0)), path, row_group_size=1000)
    return root


def _step2(inputs: Path, out: Path) -> Path:
    assert main(["--steps", "step2", "--input_path", str(inputs), "--output_path", str(out), "--no-dask-client", "--workers", "0",
                 "--no-plots"]) == 0  # fmt: skip
    return out / "unbinned" / YEAR / f"Data_{YEAR}"


@pytest.fixture(scope="module")
def clean_medians(inputs: Path, tmp_path_factory) -> str:
    return (_step2(inputs, tmp_path_factory.mktemp("clean")) / "median_for_cats.csv").read_text()


def _forbid_reading(monkeypatch: pytest.MonkeyPatch) -> None:
    def read_files(*args: object, **kwargs: object) -> None:
        raise AssertionError("the files were read although an intact cache entry was there")

    monkeypatch.setattr("lib.run.reduction.reduce_files", read_files)


def test_an_intact_reduction_entry_is_reused(inputs, clean_medians, tmp_path, monkeypatch, caplog):
    out_dir = _step2(inputs, tmp_path)
    _forbid_reading(monkeypatch)
    caplog.clear()
    assert (_step2(inputs, tmp_path) / "median_for_cats.csv").read_text() == clean_medians
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(list((out_dir / ".cache").glob("reduction-*.entry"))) == 1


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_reduction_entry_is_a_warning_and_a_recomputation(damage, inputs, clean_medians, tmp_path, monkeypatch, caplog):
    out_dir = _step2(inputs, tmp_path)
    (entry,) = (out_dir / ".cache").glob("reduction-*.entry")
    other = EntryStore(tmp_path / "elsewhere", "reduction", str).store("h9", entry.stem.rpartition("-")[2], "another slot's entry")
    do, says = DAMAGE[damage]
    do(entry, other)
    caplog.clear()
    assert (_step2(inputs, tmp_path) / "median_for_cats.csv").read_text() == clean_medians
    assert says in _one_warning_naming(caplog, entry)
    _forbid_reading(monkeypatch)  # the recomputed entry replaced the damaged one
    caplog.clear()
    assert (_step2(inputs, tmp_path) / "median_for_cats.csv").read_text() == clean_medians
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


# ---------------------------------------------------------------------------------------------
# The fit cache: real fits of two categories


class CountingExecutor(InlineExecutor):
    """Runs tasks in this process and remembers which it ran."""

    def __init__(self) -> None:
        self.ran: list[str] = []

    def map(self, func, tasks, names, **kwargs):  # type: ignore[no-untyped-def]
        self.ran.extend(names)
        return super().map(func, tasks, names, **kwargs)


NAMES = ("30-45_BB", "30-45_BO")


@pytest.fixture(scope="module")
def fit_jobs(plain_config):
    pytest.importorskip("ROOT")
    from lib.config import resolve_fit_spec
    from lib.peak_fits import FitJob
    from lib.fitting.task import FitEvents, FitTask
    from tests.test_fitting import fixed_tails_spec, z_sample

    jobs = []
    for seed, (name, sigma) in enumerate(zip(NAMES, (1.2, 1.5))):
        spec = fixed_tails_spec(resolve_fit_spec(plain_config, name, binned=True))
        masses = z_sample(np.random.default_rng(30 + seed), 20_000, sigma)
        jobs.append(FitJob(FitTask(name, FitEvents(masses), spec, (), sigma, plain_config.fit.quality), None, name))
    return jobs


def _run_fits(executor: InlineExecutor, jobs: list, out_dir: Path, config: Config) -> dict:
    """The category fits of ``jobs`` with their cache in ``out_dir``."""
    from lib.outputs import OutputDir
    from lib.peak_fits import CATEGORIES, FitGroup, run_fits

    return run_fits(FitGroup(CATEGORIES, config, OutputDir(out_dir), binned=True), jobs, executor)


@pytest.fixture(scope="module")
def fitted(fit_jobs, plain_config, tmp_path_factory):
    """The fits run once with a cache: (the output directory holding it, the results)."""
    out_dir = tmp_path_factory.mktemp("fits") / "Data_2018"
    executor = CountingExecutor()
    results = _run_fits(executor, fit_jobs, out_dir, plain_config)
    assert executor.ran == list(NAMES) and all(r.ok for r in results.values())
    return out_dir, results


def _numbers(results) -> dict[str, object]:
    return {name: (r.summary_row(), [(p.name, p.value, p.error) for p in r.chosen.params]) for name, r in results.items()}


@pytest.mark.root
def test_an_intact_fit_entry_is_reused(fit_jobs, fitted, plain_config, tmp_path, caplog):
    directory, reference = fitted
    shutil.copytree(directory, tmp_path / "Data_2018")
    executor = CountingExecutor()
    caplog.set_level(logging.INFO)  # re-using finished fits is routine: said at INFO
    assert _numbers(_run_fits(executor, fit_jobs, tmp_path / "Data_2018", plain_config)) == _numbers(reference)
    assert executor.ran == [] and "re-using 2 finished fits" in caplog.text


@pytest.mark.root
@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_fit_entry_is_a_warning_and_a_refit(damage, fit_jobs, fitted, plain_config, tmp_path, caplog):
    """The BO entry damaged, or the BB entry copied under its name, which once gave two BB rows and no BO."""
    directory, reference = fitted
    out_dir = tmp_path / "Data_2018"
    shutil.copytree(directory, out_dir)
    (bb,) = (out_dir / ".cache" / "fits").glob(f"fit-{NAMES[0]}-*.entry")
    (bo,) = (out_dir / ".cache" / "fits").glob(f"fit-{NAMES[1]}-*.entry")
    do, says = DAMAGE[damage]
    do(bo, bb)
    executor = CountingExecutor()
    results = _run_fits(executor, fit_jobs, out_dir, plain_config)
    assert executor.ran == [NAMES[1]]
    assert _numbers(results) == _numbers(reference) and [r.name for r in results.values()] == list(NAMES)
    assert says in _one_warning_naming(caplog, bo)
    again = CountingExecutor()
    _run_fits(again, fit_jobs, out_dir, plain_config)
    assert again.ran == [], "the refitted entry replaced the damaged one"
