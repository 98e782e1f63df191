"""What a run is asked to do, split by concern: what to compute, where, how to execute, what to draw and keep.

The command line builds one ``Request``; each stage takes only the part it needs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from lib.outputs import OutputDir
from lib.plots.save import PLOT_FORMATS

STEPS = ("step1", "step2", "step3")


@dataclass(frozen=True)
class Selection:
    """What to compute: the steps or the closure, the sample, the years, one category or bin."""

    steps: frozenset[str] = frozenset(STEPS)
    years: tuple[str, ...] = ("2018",)
    is_mc: bool = False
    binned: bool = False
    fix_cat: str | None = None
    closure_test: bool = False
    validate_higgs: bool = False
    nanoaod_v: str = "12"  # only in the correction file's name

    @property
    def sample(self) -> str:
        """``"MC"`` or ``"Data"``, as the output names spell it."""
        return "MC" if self.is_mc else "Data"

    @property
    def reads_inputs(self) -> bool:
        """Whether the run reads Stage-1 files (steps 1-2 and the closure do; step 3 alone reads tables)."""
        return self.closure_test or bool(self.steps & {"step1", "step2"})


@dataclass(frozen=True)
class Paths:
    """Where inputs come from and outputs go."""

    input_path: Path | None = None  # None: input.stage1_path of the configuration
    output_path: Path = Path("plots")
    extra_string: str = ""
    calib_json: Path | None = None  # the closure's correction (None: the output directory's)


@dataclass(frozen=True)
class Execution:
    """How the work runs: in-process, a local process pool, or Dask (local cluster, scheduler, Gateway)."""

    workers: int | None = None  # None: one per core; 0: inline in this process
    backend: str | None = None  # RooFit evaluation backend (None: fit.backend of the configuration)
    dask_mode: str | None = None  # None: no Dask client ("local", "scheduler" or "gateway" otherwise)
    scheduler: str | None = None
    gateway: str | None = None
    gateway_options: tuple[tuple[str, str], ...] = ()  # Dask-Gateway cluster options, e.g. (("worker_cores", "2"),)
    skip_bad_files: bool = False  # unreadable parquet files become counted warnings instead of stopping the run
    task_timeout_s: float | None = 600.0  # a local-pool task running alone longer than this counts as a hung worker (None: no limit)


@dataclass(frozen=True)
class Figures:
    """Which figure files are written; none with ``--no-plots``."""

    formats: tuple[str, ...] = PLOT_FORMATS

    @property
    def enabled(self) -> bool:
        return bool(self.formats)


@dataclass(frozen=True)
class Handling:
    """What happens to outputs already there and to the JSON once written."""

    backup: bool = False
    overwrite: bool = False  # replace outputs that a different configuration left in the output directory
    force: bool = False  # accept factors outside the plausible band
    install: bool = False  # copy the JSON into data/res_calib/ and point the analysis' file list at it


@dataclass(frozen=True)
class Request:
    """One command line's worth of work."""

    selection: Selection = field(default_factory=Selection)
    paths: Paths = field(default_factory=Paths)
    execution: Execution = field(default_factory=Execution)
    figures: Figures = field(default_factory=Figures)
    handling: Handling = field(default_factory=Handling)

    def output_dir(self, year: str) -> OutputDir:
        """``<output_path>/<binned|unbinned>/<year>/<Data|MC>_<year>[_<extraString>]``."""
        s = self.selection
        return OutputDir.of(self.paths.output_path, s.binned, year, s.sample, self.paths.extra_string)
