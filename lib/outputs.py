"""The output directory of one sample and year: every file name in it, and the typed write and read of each result.

No other module spells a file name of an output directory: the route hands the stages' results
here to be written, and step 3 run alone, ``--fixCat``, the closure and the report read them back here.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import shutil
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator, Mapping, Sequence

from lib.closure import ClosureBin
from lib.errors import CalibrationError, InputError
from lib.factors import CategoryFactor
from lib.fitting.result import FitRow
from lib.io.atomic import write_text_atomic
from lib.io.tables import RowT, read_rows, write_csv, write_latex_table
from lib.medians import CategoryMedian
from lib.results import Factors, Fits, Medians

SAMPLE_LABELS = ("Data", "MC")

# The LaTeX tables of step 3: (column, header).
FACTOR_TABLE_COLUMNS = (
    ("cat_name", "Category"),
    ("fit_val", r"$\sigma_{fit}$ [GeV]"),
    ("fit_err", r"$\Delta\sigma_{fit}$"),
    ("n_events", "Events"),
    ("median_val_NonCal", r"median $\sigma_{pred}$ [GeV]"),
    ("median_err_NonCal", r"$\Delta$median"),
    ("calibration_factor", "Factor"),
    ("calibration_factor_err", r"$\Delta$Factor"),
    ("fit_quality", "Fit"),
)
# Step 3's LaTeX tables: (file, decimals; None: full precision).
_FACTOR_TABLES = (("calibration_factors.tex", None), ("calibration_factors_4dec.tex", 4), ("calibration_factors_3dec.tex", 3))

# Per kind of fits (``lib.peak_fits.FitKind.name``): the folder of their figures and logs with the
# subfolder inside ``fits/`` and ``logs/``, and the cache of their results.
_FIT_FOLDERS = {"categories": ("", ""), "closure": ("closure", ""), "uncalibrated": ("closure", "uncalibrated"), "higgs": ("higgs", "")}
_FIT_CACHES = {"categories": "fits", "closure": "closure_fits", "uncalibrated": "closure_fits_uncalibrated", "higgs": "higgs_fits"}
FIT_KINDS = tuple(_FIT_FOLDERS)
# The summary figures' stems.
_FIGURE_STEMS = {"medians": "sigma_pred_per_category", "closure": "closure_resolution", "higgs": "higgs_validation_resolution"}
_CORRECTION_PREFIX = "res_calib_BS_correction"
# Enough to show a tuning session of --fixCat runs; older runs' outputs have been replaced anyway.
MAX_RUNS = 50


@dataclass(frozen=True)
class RunRecord:
    """One finished command on the directory (an entry of ``report_runs.json``); ``previous`` is the ``--previous`` JSON it was given."""

    command: str
    started_utc: str
    seconds: float
    versions: dict[str, str] = field(default_factory=dict)
    previous: str | None = None


@dataclass(frozen=True)
class OutputDir:
    """``<output_path>/<binned|unbinned>/<year>/<Data|MC>_<year>[_<extraString>]``: names, reads and writes."""

    path: Path

    # Step 1-3 tables (the original's names, which users' scripts read).
    FITS_CSV = "fit_results.csv"
    FIT_PARAMS_JSON = "fit_params.json"
    MEDIANS_CSV = "median_for_cats.csv"
    FACTORS_CSV = "calibration_factors.csv"
    # Validation.
    CLOSURE_CSV = "closure_results_resolutionBinning.csv"
    UNCALIBRATED_CSV = "closure_results_resolutionBinning_uncalibrated.csv"
    CLOSURE_VERDICT = "closure_verdict.txt"
    HIGGS_CSV = "higgs_validation_resolutionBinning.csv"
    HIGGS_VERDICT = "higgs_validation_verdict.txt"
    # The factors each check applied: whether it speaks for the JSON is judged by them, not by file times.
    CLOSURE_FACTORS_JSON = "closure_tested_factors.json"
    HIGGS_FACTORS_JSON = "higgs_validation_tested_factors.json"
    # The radiation parameters each group of fits shared (fit.fsr_parameters: shared), by kind of fits.
    SHARED_FSR_JSON = "fsr_shared_fits.json"
    # Bookkeeping and the report.
    PROVENANCE_JSON = "provenance.json"
    RUNS_JSON = "report_runs.json"
    REPORT_HTML = "report.html"
    REPORT_PDF = "report.pdf"
    # The run holding the directory; the caches of the reduction and the fits.
    LOCK = ".lock"
    CACHE = ".cache"

    @classmethod
    def of(cls, output_path: Path, binned: bool, year: str, sample: str, extra_string: str = "") -> OutputDir:
        """The directory of one sample (``"Data"``/``"MC"``) and year."""
        name = f"{sample}_{year}" + (f"_{extra_string}" if extra_string else "")
        return cls(Path(output_path) / ("binned" if binned else "unbinned") / year / name)

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    @property
    def sample(self) -> str:
        """``"Data"`` or ``"MC"``, from the directory's name."""
        return self.path.name.partition("_")[0]

    @property
    def year(self) -> str:
        return self.path.parent.name

    @property
    def base_name(self) -> str:
        """``<Data|MC>_<year>``: the directory's name without its ``--extraString`` suffix."""
        return f"{self.sample}_{self.year}"

    def variants(self) -> list[str]:
        """The names of the other directories of the same sample and year beside this one (other suffixes)."""
        if not self.path.parent.is_dir():
            return []
        found = (p for p in self.path.parent.iterdir() if p.is_dir() and p.name.startswith(self.base_name) and p != self.path)
        return sorted(p.name for p in found)

    def sibling(self) -> OutputDir:
        """The other sample's directory of the same year and suffix (``Data_2018_x`` beside ``MC_2018_x``)."""
        _, _, rest = self.path.name.partition("_")
        other = SAMPLE_LABELS[1] if self.sample == SAMPLE_LABELS[0] else SAMPLE_LABELS[0]
        return OutputDir(self.path.parent / f"{other}_{rest}")

    # ---- where things go -------------------------------------------------------------------------

    def cache(self, kind: str) -> Path:
        """The cache directory of the ``reduction`` or of a kind of fits (``FIT_KINDS``): hidden, keyed by content."""
        return self / self.CACHE if kind == "reduction" else self / self.CACHE / _FIT_CACHES[kind]

    def fit_plot_dir(self, kind: str = "categories") -> Path:
        """Where the figures of a kind of fits go (``categories``, ``closure``, ``uncalibrated``, ``higgs``)."""
        folder, sub = _FIT_FOLDERS[kind]
        return self.path / folder / "fits" / sub

    def fit_plot_stem(self, name: str, kind: str = "categories") -> Path:
        """Figure stem of one fit (no extension: PNG and PDF are written beside each other)."""
        return self.fit_plot_dir(kind) / f"fit_{name}"

    def fit_plot(self, name: str, kind: str = "categories", fmt: str = "png") -> Path:
        """The figure of one fit in one format (``png``, ``pdf``)."""
        return self.fit_plot_dir(kind) / f"fit_{name}.{fmt}"

    def fit_log(self, name: str, kind: str = "categories") -> Path:
        """What ROOT printed while fitting ``name``."""
        folder, sub = _FIT_FOLDERS[kind]
        return self.path / folder / "logs" / sub / f"fit_{name}.log"

    def figure_stem(self, figure: str) -> Path:
        """Stem of a summary figure: ``medians``, ``closure`` or ``higgs``."""
        return self.path / _FIGURE_STEMS[figure]

    def figure(self, figure: str, fmt: str = "png") -> Path:
        """A summary figure (``medians``, ``closure``, ``higgs``) in one format."""
        return self.path / f"{_FIGURE_STEMS[figure]}.{fmt}"

    def correction_json(self, nanoaod_v: str) -> Path:
        """The correction file this directory's step 3 writes (the name the analysis' file list expects)."""
        return self.path / f"{_CORRECTION_PREFIX}_{self.year}_{self.sample}_nanoAODv{nanoaod_v}.json"

    def find_correction_json(self) -> Path | None:
        """The directory's correction file; the newest when several NanoAOD versions were written."""
        found = self.path.glob(f"{_CORRECTION_PREFIX}_{self.year}_{self.sample}_nanoAODv*.json")
        ordered = sorted(found, key=lambda p: p.stat().st_mtime)
        return ordered[-1] if ordered else None

    def relative(self, path: Path) -> str | None:
        """``path`` relative to the directory (POSIX separators), None when the file is not there."""
        return path.relative_to(self.path).as_posix() if path.exists() else None

    def report_file(self, fmt: str = "html") -> Path:
        """The directory's report: ``html`` or ``pdf``."""
        return self.path / {"html": self.REPORT_HTML, "pdf": self.REPORT_PDF}[fmt]

    def sibling_report_link(self) -> str | None:
        """The other sample's report relative to this directory's, None when it has none."""
        other = self.sibling()
        return f"../{other.path.name}/{self.REPORT_HTML}" if other.report_file().exists() else None

    # ---- steps 1-3 -------------------------------------------------------------------------------

    def step_table(self, step: str) -> Path:
        """The table ``step1``, ``step2`` or ``step3`` writes: the fits, the medians, the factors."""
        return self.path / {"step1": self.FITS_CSV, "step2": self.MEDIANS_CSV, "step3": self.FACTORS_CSV}[step]

    def write_medians(self, medians: Medians) -> None:
        write_csv(self / self.MEDIANS_CSV, [m.row() for m in medians.rows])

    def read_medians(self, missing_ok: bool = False) -> Medians:
        """Step 2's medians (``missing_ok``: none, else InputError naming the file, when step 2 has not run here)."""
        return Medians(tuple(_rows(self / self.MEDIANS_CSV, CategoryMedian, missing_ok)))

    def write_fits(self, fits: Fits, order: Sequence[str]) -> None:
        """``fit_results.csv`` and ``fit_params.json``, in category order."""
        write_csv(self / self.FITS_CSV, [fits.rows[n].row() for n in order if n in fits.rows])
        payload = {n: fits.records[n] for n in order if n in fits.records}
        write_text_atomic(self / self.FIT_PARAMS_JSON, json.dumps(payload, indent=1, allow_nan=True))

    def read_fits(self, missing_ok: bool = False) -> Fits:
        """Step 1's summary rows and full records (``missing_ok``: none, else InputError naming the file, when step 1 has not run here)."""
        rows = _rows(self / self.FITS_CSV, FitRow, missing_ok)
        return Fits({r.cat_name: r for r in rows}, _read_json_object(self / self.FIT_PARAMS_JSON))

    def write_factors(self, factors: Factors, caption: str) -> None:
        """``calibration_factors.csv`` and its three LaTeX tables (full, 4 and 3 decimals)."""
        rows = [f.row() for f in factors.rows]
        write_csv(self / self.FACTORS_CSV, rows)
        # A borrowed factor has no sigma of its own: the tables say "fallback" where the sigma would be.
        table_rows = [r if f.source == "fit" else r | {"fit_val": "fallback", "fit_err": ""} for r, f in zip(rows, factors.rows)]
        for name, decimals in _FACTOR_TABLES:
            write_latex_table(self.path / name, table_rows, FACTOR_TABLE_COLUMNS, decimals, caption)

    def read_factors(self) -> Factors:
        """Step 3's factors and the directory's correction JSON (neither when step 3 has not run here)."""
        return Factors(tuple(_rows(self / self.FACTORS_CSV, CategoryFactor, missing_ok=True)), self.find_correction_json())

    def write_shared_fsr(self, kind: str, record: Mapping[str, object]) -> None:
        """The shared radiation fit of one kind of fits (``FIT_KINDS``), beside those of the other kinds already written."""
        records = _read_json_object(self / self.SHARED_FSR_JSON) | {kind: dict(record)}
        write_text_atomic(self / self.SHARED_FSR_JSON, json.dumps(records, indent=1, allow_nan=True))

    def read_shared_fsr(self) -> dict[str, dict]:
        """The shared radiation fits by kind of fits (empty when no run here shared them)."""
        return _read_json_object(self / self.SHARED_FSR_JSON)

    # ---- validation ------------------------------------------------------------------------------

    def validation_csv(self, kind: str) -> Path:
        """The table of a validation: ``closure``, ``uncalibrated`` (the closure before calibration) or ``higgs``."""
        return self.path / {"closure": self.CLOSURE_CSV, "uncalibrated": self.UNCALIBRATED_CSV, "higgs": self.HIGGS_CSV}[kind]

    def verdict_path(self, kind: str) -> Path:
        return self.path / {"closure": self.CLOSURE_VERDICT, "higgs": self.HIGGS_VERDICT}[kind]

    def write_validation(self, kind: str, rows: Sequence[Mapping[str, object]]) -> None:
        write_csv(self.validation_csv(kind), rows)

    def has_validation(self, kind: str) -> bool:
        """Whether the ``closure``, ``uncalibrated`` or ``higgs`` check has written its table here."""
        return self.validation_csv(kind).exists()

    def read_validation(self, kind: str) -> tuple[ClosureBin, ...]:
        """The bins of a validation table; none when it has not run here."""
        return tuple(_rows(self.validation_csv(kind), ClosureBin, missing_ok=True))

    def tested_factors_path(self, kind: str) -> Path:
        return self.path / {"closure": self.CLOSURE_FACTORS_JSON, "higgs": self.HIGGS_FACTORS_JSON}[kind]

    def write_tested_factors(self, kind: str, names: Sequence[str], factors: Sequence[float]) -> None:
        """The factor of each category (``names`` in the scheme's order) that the ``closure`` or ``higgs`` check applied.

        The report compares this record with the JSON: a JSON re-made with the same factors is still the
        one tested (whatever its time stamp), one with a factor changed is not, however recent the check.
        """
        record = {name: float(value) if math.isfinite(value) else None for name, value in zip(names, factors, strict=True)}
        write_text_atomic(self.tested_factors_path(kind), json.dumps({"factors": record}, indent=1) + "\n")

    def read_tested_factors(self, kind: str) -> dict[str, float] | None:
        """The factors the check recorded (NaN where none was finite); None when it recorded none or the file is no such record."""
        try:
            record = json.loads(self.tested_factors_path(kind).read_text())["factors"]
            return {str(name): math.nan if value is None else float(value) for name, value in record.items()}
        except (OSError, ValueError, TypeError, KeyError, AttributeError):
            return None

    def write_verdict(self, kind: str, text: str) -> None:
        write_text_atomic(self.verdict_path(kind), text + "\n")

    def read_verdict_lines(self, kind: str, starts: str) -> tuple[str, ...]:
        path = self.verdict_path(kind)
        if not path.exists():
            return ()
        return tuple(line for line in path.read_text().splitlines() if line.startswith(starts))

    # ---- provenance and the directory's life ----------------------------------------------------

    def write_provenance(self, payload: Mapping[str, object]) -> None:
        write_text_atomic(self / self.PROVENANCE_JSON, json.dumps(payload, indent=1, sort_keys=True))

    def read_provenance(self) -> dict[str, object]:
        """``provenance.json`` (empty when no step 1-2 has run here yet)."""
        return _read_json_object(self / self.PROVENANCE_JSON)

    def read_runs(self) -> list[RunRecord]:
        """The directory's run records, oldest first; none for a directory filled before runs were recorded."""
        path = self / self.RUNS_JSON
        if not path.exists():
            return []
        try:
            return [RunRecord(**entry) for entry in json.loads(path.read_text())]
        except (ValueError, TypeError):
            return []  # a hand-edited or foreign file: the report shows no runs rather than failing the run

    def record_run(self, record: RunRecord) -> list[RunRecord]:
        """Append ``record`` (keeping the last ``MAX_RUNS``) and return the directory's records."""
        runs = (self.read_runs() + [record])[-MAX_RUNS:]
        write_text_atomic(self / self.RUNS_JSON, json.dumps([asdict(r) for r in runs], indent=1))
        return runs

    def check_writable(self) -> None:
        """Fail before any work, without creating the directory, when it could not be written.

        Raises:
            CalibrationError: the directory, or the nearest existing folder above it, is not a
                writable directory (a file where a directory belongs, a read-only area).
        """
        missing = self._missing_parents()
        existing = missing[-1].parent if missing else self.path
        if not existing.is_dir():
            raise CalibrationError(f"output directory {self.path} cannot be made: {existing} is a file, not a directory")
        if not os.access(existing, os.W_OK | os.X_OK):
            cause = "read-only file system" if os.statvfs(existing).f_flag & os.ST_RDONLY else "permission denied"
            raise CalibrationError(f"output directory {self.path} is not writable ({existing}: {cause})")

    @contextmanager
    def claim(self) -> Iterator[None]:
        """Hold the directory for this run: one run at a time, and no empty directory left by a run that wrote nothing.

        The lock is an ``flock`` on ``.lock``, released by the system however the process ends.

        Raises:
            CalibrationError: another run holds the directory.
        """
        created = self._missing_parents()
        self.path.mkdir(parents=True, exist_ok=True)
        lock_path = self / self.LOCK
        handle = open(lock_path, "a+")
        try:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                holder = handle.read().strip() or "another process"
                raise CalibrationError(
                    f"output directory {self.path} is in use by another run ({holder}): wait for it to end, "
                    "or use another --extraString/--output_path"
                ) from None
            handle.seek(0)
            handle.truncate()
            handle.write(f"pid {os.getpid()}, started {datetime.now(timezone.utc):%Y-%m-%d %H:%M:%SZ}\n")
            handle.flush()
            yield
        finally:
            handle.close()
            self._remove_if_unused(created)

    def _missing_parents(self) -> list[Path]:
        """The directory and those above it that do not exist yet, innermost first."""
        missing, path = [], self.path
        while not path.exists() and path != path.parent:
            missing.append(path)
            path = path.parent
        return missing

    def _remove_if_unused(self, created: list[Path]) -> None:
        """Remove the directories this run created when nothing but the lock was written into them."""
        if not created or any(p.name != self.LOCK for p in self.path.iterdir()):
            return
        (self / self.LOCK).unlink(missing_ok=True)
        for path in created:
            try:
                path.rmdir()
            except OSError:
                return

    def top_level_outputs(self) -> list[Path]:
        """The directory's output files (subdirectories such as plots and hidden caches excluded)."""
        if not self.path.is_dir():
            return []
        return [p for p in self.path.iterdir() if p.is_file() and not p.name.startswith(".")]

    def remove_outputs(self) -> int:
        """Delete the top-level outputs (caches stay: keyed by content, they cannot be picked up stale); how many."""
        files = self.top_level_outputs()
        for path in files:
            path.unlink()
        return len(files)

    def backup(self) -> Path | None:
        """Copy the current top-level outputs into ``backup_<UTC timestamp>/`` before they are replaced."""
        files = self.top_level_outputs()
        if not files:
            return None
        dest = self.path / f"backup_{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}"
        dest.mkdir(exist_ok=True)
        for path in files:
            shutil.copy2(path, dest / path.name)
        return dest


def _rows(path: Path, row_type: type[RowT], missing_ok: bool) -> list[RowT]:
    """A table's rows (none, with ``missing_ok``, when the file is not there)."""
    return [] if missing_ok and not path.exists() else read_rows(path, row_type)


def _read_json_object(path: Path) -> dict:
    """A JSON object the tool wrote (empty when the file is not there); InputError naming the file when it is no JSON object."""
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as err:
        raise InputError(f"{path}: not JSON ({err}): restore it, or run the step that writes it again") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: a JSON {type(data).__name__}, not the object the tool writes: restore it, or run the step that writes it again")
    return data
