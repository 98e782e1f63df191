#!/usr/bin/env python3
"""EBE dimuon mass-resolution calibration (drop-in for copperheadV2's getCalibrationFactor.py).

Thin CLI: parse arguments, load the YAML config, run the pipeline, print a summary. Expected
failures print one line and exit 1; unexpected crashes exit 2 (traceback only with --log-level DEBUG).
"""

from __future__ import annotations

import time

_STARTED = time.monotonic()  # before the library imports below, so that the start-up time counts them

import argparse  # noqa: E402
import sys  # noqa: E402
from datetime import datetime, timezone  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import TYPE_CHECKING  # noqa: E402

from lib import console  # noqa: E402
from lib.config import load_config  # noqa: E402
from lib.errors import CalibrationError  # noqa: E402
from lib.options import RunOptions  # noqa: E402
from lib.plots.save import PLOT_FORMATS  # noqa: E402

if TYPE_CHECKING:
    from lib.config import Config
    from lib.pipeline import YearSummary


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Derive (steps 1-3) or validate (--closure_test) the event-by-event mass-resolution calibration.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--steps", choices=["step1", "step2", "step3", "all"], default="all",
                        help="step1: Z fits per category; step2: sigma_pred medians; step3: factors, tables, JSON")
    parser.add_argument("--isMC", action="store_true", help="calibrate DY MC (weights honoured) instead of data")
    parser.add_argument("--ifbinned", action="store_true", help="binned fits (RooDataHist); default unbinned")
    parser.add_argument("--closure_test", action="store_true", help="closure test in bins of calibrated sigma_pred")
    parser.add_argument("--validate-higgs", action="store_true", help="with --closure_test: also fit the H->mumu peak")
    parser.add_argument("--fixCat", metavar="CAT", help="re-fit one category (or closure bin) and merge it into existing results")
    parser.add_argument("--years", nargs="+", default=["2018"], help="years to process")
    parser.add_argument("--nanoAODv", default="12", help="NanoAOD version (used in the JSON file name)")
    parser.add_argument("--extraString", default="", help="suffix of the output directory name")
    parser.add_argument("--input_path", type=Path, help="Stage-1 root (default: input.stage1_path in the config)")
    parser.add_argument("--output_path", type=Path, default=Path("plots"), help="output root")
    parser.add_argument("--config", type=Path, help="YAML configuration (default: configs/default.yaml)")
    parser.add_argument("--workers", type=int, help="parallel workers (default: one per core; 0: serial in-process)")
    parser.add_argument("--backend", choices=["cpu", "legacy", "codegen", "cuda"], help="RooFit evaluation backend")
    parser.add_argument("--no-dask-client", dest="no_dask_client", action="store_true",
                        help="read in-process and fit on a local process pool, without Dask")
    parser.add_argument("--dask", choices=["local", "scheduler", "gateway"], default="local",
                        help="Dask mode when a client is used")
    parser.add_argument("--scheduler", help="Dask scheduler address (or DASK_SCHEDULER_ADDRESS); implies --dask scheduler")
    parser.add_argument("--gateway", nargs="?", const="", help="use Dask-Gateway (address optional: DASK_GATEWAY__ADDRESS)")
    parser.add_argument("--gateway-option", action="append", default=[], metavar="KEY=VALUE",
                        help="Dask-Gateway cluster option for a new cluster, e.g. worker_cores=2 (repeatable)")
    parser.add_argument("--backup", action="store_true", help="keep timestamped copies of outputs that would be overwritten")
    parser.add_argument("--force", action="store_true", help="accept factors outside the plausible band")
    parser.add_argument("--install", action="store_true",
                        help="copy the JSON to data/res_calib/ and point configs/parameters/correction_filelist.yaml at it")
    parser.add_argument("--calib-json", type=Path, help="correction JSON for --closure_test (default: the output directory's)")
    parser.add_argument("--no-plots", action="store_true", help="skip figures (faster)")
    parser.add_argument("--plot-formats", nargs="+", choices=PLOT_FORMATS, default=list(PLOT_FORMATS), metavar="FORMAT",
                        help="figure files to write: png (quick look, the report's images) and/or pdf (notes)")
    parser.add_argument("--skip-bad-files", action="store_true",
                        help="skip unreadable or truncated parquet files with a warning instead of stopping")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the outputs of a different configuration in the output directory")
    parser.add_argument("--previous", type=Path, metavar="FILE",
                        help="earlier correction JSON: the report shows each category's factor change against it")
    parser.add_argument("--report-pdf", action="store_true", help="also write report.pdf beside report.html")
    parser.add_argument("--log-level", default="WARNING", choices=["DEBUG", "INFO", "WARNING", "ERROR"],
                        help="WARNING: warnings and the summary; INFO: also each phase as it ends; DEBUG: every fit attempt")
    return parser


def _key_values(pairs: list[str]) -> tuple[tuple[str, str], ...]:
    """``["a=1", "b=x"]`` as ``(("a", "1"), ("b", "x"))``; CalibrationError naming a pair without '='."""
    out = []
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise CalibrationError(f"--gateway-option '{pair}' is not KEY=VALUE")
        out.append((key.strip(), value.strip()))
    return tuple(out)


def options_from_args(args: argparse.Namespace) -> RunOptions:
    """The run options of the command line, every number checked here with one line naming the option.

    Raises:
        CalibrationError: a negative ``--workers`` (a local cluster of -1 workers waits forever)
            or a malformed ``--gateway-option``.
    """
    if args.workers is not None and args.workers < 0:
        raise CalibrationError(f"--workers {args.workers}: must be 0 (serial, in-process) or more")
    if args.previous is not None and not args.previous.is_file():
        raise CalibrationError(f"--previous {args.previous}: no such file")
    if args.no_dask_client:
        dask_mode = None
    elif args.gateway is not None:
        dask_mode = "gateway"
    elif args.scheduler:
        dask_mode = "scheduler"
    else:
        dask_mode = args.dask
    return RunOptions(
        steps=args.steps, years=tuple(args.years), is_mc=args.isMC, binned=args.ifbinned, fix_cat=args.fixCat,
        extra_string=args.extraString, nanoaod_v=str(args.nanoAODv), input_path=args.input_path,
        output_path=args.output_path, workers=args.workers, backend=args.backend, dask_mode=dask_mode,
        scheduler=args.scheduler, gateway=args.gateway or None, gateway_options=_key_values(args.gateway_option),
        backup=args.backup, force=args.force,
        install=args.install, closure_test=args.closure_test, calib_json=args.calib_json,
        plot_formats=() if args.no_plots else tuple(dict.fromkeys(args.plot_formats)), validate_higgs=args.validate_higgs,
        skip_bad_files=args.skip_bad_files,
        overwrite=args.overwrite,
    )  # fmt: skip


def write_reports(
    summaries: list[YearSummary], config: Config, args: argparse.Namespace, argv: list[str], started_at: datetime, seconds: float
) -> list[Path]:
    """Record this run in each output directory and write its report; the paths of the reports.

    The record (command line, start, wall time, versions, ``--previous``) is what the report's
    provenance lists; the report itself is rebuilt from the directory's files.
    """
    from lib.report import RunRecord, record_run, write_report

    record = RunRecord.now("getCalibrationFactor.py", argv, started_at, seconds, args.previous)
    paths = []
    for summary in summaries:
        record_run(summary.output_dir, record)
        paths.append(write_report(summary.output_dir, config, pdf=args.report_pdf))
    return paths


def main(argv: list[str] | None = None) -> int:
    started_at = datetime.now(timezone.utc)
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    console.configure(args.log_level)

    def calibrate() -> int:
        from lib.pipeline import format_summary, run

        config = load_config(args.config)
        if args.backend == "cuda":
            from lib.fitting.backend import require_backend

            require_backend("cuda")
        options = options_from_args(args)
        startup = time.monotonic() - _STARTED
        summaries = run(options, config)
        report_start = time.monotonic()
        reports = write_reports(summaries, config, args, argv, started_at, report_start - _STARTED)
        for summary in summaries:
            print(format_summary(summary))
        # The phases of each year are in its timings line; here what comes before and after them.
        print(f"total {time.monotonic() - _STARTED:.1f} s (start-up {startup:.1f} s, report {time.monotonic() - report_start:.1f} s)")
        for path in reports:
            print(f"report: {path}")
        return 0

    return console.run_cli(calibrate, args.log_level == "DEBUG", "interrupted: finished outputs are intact; re-run to resume")


if __name__ == "__main__":
    sys.exit(main())
