"""Run options: what the command line asked for, as one frozen, typed object."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lib.plots.save import PLOT_FORMATS

__all__ = ["RunOptions"]


@dataclass(frozen=True)
class RunOptions:
    """Everything a run needs besides the YAML configuration."""

    steps: str = "all"
    years: tuple[str, ...] = ("2018",)
    is_mc: bool = False
    binned: bool = False
    fix_cat: str | None = None
    extra_string: str = ""
    nanoaod_v: str = "12"
    input_path: Path | None = None
    output_path: Path = Path("plots")
    workers: int | None = None  # None: one per core; 0: inline in this process
    backend: str | None = None
    dask_mode: str | None = None
    scheduler: str | None = None
    gateway: str | None = None
    gateway_options: tuple[tuple[str, str], ...] = ()  # Dask-Gateway cluster options, e.g. (("worker_cores", "2"),)
    backup: bool = False
    force: bool = False
    install: bool = False
    closure_test: bool = False
    calib_json: Path | None = None
    plot_formats: tuple[str, ...] = PLOT_FORMATS  # the figure files written; empty: no figures (--no-plots)
    validate_higgs: bool = False
    skip_bad_files: bool = False  # unreadable parquet files become counted warnings instead of stopping the run
    overwrite: bool = False  # replace outputs that a different configuration left in the output directory

    @property
    def plots(self) -> bool:
        """Whether this run draws figures."""
        return bool(self.plot_formats)

    @property
    def sample_label(self) -> str:
        return "MC" if self.is_mc else "Data"

    def output_dir(self, year: str) -> Path:
        """``<output_path>/<binned|unbinned>/<year>/<Data|MC>_<year>[_<extraString>]``, as the original."""
        name = f"{self.sample_label}_{year}" + (f"_{self.extra_string}" if self.extra_string else "")
        return Path(self.output_path) / ("binned" if self.binned else "unbinned") / year / name
