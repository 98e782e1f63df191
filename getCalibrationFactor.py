#!/usr/bin/env python3
"""EBE dimuon mass-resolution calibration (drop-in for copperheadV2's getCalibrationFactor.py).

Thin CLI: parse arguments into a request, load the YAML config, run the route, print a summary. Expected
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
from lib.config.schema import BACKENDS  # noqa: E402
from lib.errors import CalibrationError  # noqa: E402
from lib.outputs import OutputDir  # noqa: E402
from lib.plots.save import PLOT_FORMATS  # noqa: E402
from lib.request import Execution, Figures, Handling, Paths, Request, Selection, STEPS  # noqa: E402

if TYPE_CHECKING:
    from lib.config import Config
    from lib.results import YearSummary

EXAMPLES = """examples:
  # calibrate data, then simulation, then run the closure test on the data's JSON
  python getCalibrationFactor.py --years 2018 --ifbinned --steps all --input_path /eos/.../stage1 --extraString V1
  python getCalibrationFactor.py --years 2018 --ifbinned --steps all --isMC --input_path /eos/.../stage1 --extraString V1
  python getCalibrationFactor.py --years 2018 --ifbinned --closure_test --input_path /eos/.../stage1 --extraString V1

  # re-fit one category after tuning fit.overrides in the YAML, then re-make the JSON
  python getCalibrationFactor.py --years 2018 --ifbinned --steps step1 --fixCat 30-45_EE --extraString V1
  python getCalibrationFactor.py --years 2018 --ifbinned --steps step3 --extraString V1
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Derive (steps 1-3) or validate (--closure_test) the event-by-event mass-resolution calibration.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run = parser.add_argument_group("what to run")
    run.add_argument("--steps", choices=[*STEPS, "all"], default="all",
                     help="step1: Z fits per category; step2: sigma_pred medians; step3: factors, tables, JSON (default: all)")
    run.add_argument("--isMC", action="store_true", help="calibrate DY simulation (weights honoured) instead of data")
    run.add_argument("--ifbinned", action="store_true", help="binned fits (RooDataHist); without it, unbinned")
    run.add_argument("--closure_test", action="store_true", help="closure test in bins of calibrated sigma_pred (needs the JSON)")
    run.add_argument("--validate-higgs", action="store_true", help="with --closure_test: also fit the H->mumu peak in the same bins")
    run.add_argument("--fixCat", metavar="CAT", help="re-fit one category (or closure bin) and merge it into the existing results")
    run.add_argument("--years", nargs="+", default=["2018"], metavar="YEAR", help="years to process (default: 2018)")
    run.add_argument("--nanoAODv", default="12", metavar="N", help="NanoAOD version, used in the JSON's file name (default: 12)")
    io = parser.add_argument_group("inputs and outputs")
    io.add_argument("--input_path", type=Path, metavar="DIR", help="Stage-1 root (default: input.stage1_path of the configuration)")
    io.add_argument("--output_path", type=Path, default=Path("plots"), metavar="DIR", help="output root (default: plots)")
    io.add_argument("--extraString", default="", metavar="S", help="suffix of the output directory's name")
    io.add_argument("--config", type=Path, metavar="YAML", help="configuration (default: configs/default.yaml)")
    io.add_argument("--calib-json", type=Path, metavar="FILE", help="correction JSON the closure tests (default: the output directory's)")
    io.add_argument("--previous", type=Path, metavar="FILE",
                    help="earlier correction JSON: the report shows each category's factor change against it")
    _add_execution_arguments(parser)
    figures = parser.add_argument_group("figures")
    figures.add_argument("--no-plots", action="store_true", help="skip figures (faster)")
    figures.add_argument("--plot-formats", nargs="+", choices=PLOT_FORMATS, default=list(PLOT_FORMATS), metavar="FORMAT",
                         help=f"figure files: png (quick look, the report's images) and/or pdf (notes) (default: {' '.join(PLOT_FORMATS)})")
    handling = parser.add_argument_group("output handling")
    handling.add_argument("--backup", action="store_true", help="keep timestamped copies of outputs that would be overwritten")
    handling.add_argument("--overwrite", action="store_true", help="replace the outputs of a different configuration in the output directory")
    handling.add_argument("--force", action="store_true",
                          help="accept factors outside the plausible band, and let --install install a JSON the audit flags")
    handling.add_argument("--install", action="store_true",
                          help="copy the JSON to data/res_calib/ and point configs/parameters/correction_filelist.yaml at it")
    handling.add_argument("--report-pdf", action="store_true", help=f"also write {OutputDir.REPORT_PDF} beside {OutputDir.REPORT_HTML}")
    return parser  # fmt: skip


def _add_execution_arguments(parser: argparse.ArgumentParser) -> None:
    """The "execution" group: workers, RooFit backend, Dask mode, bad files, log level."""
    execution = parser.add_argument_group("execution")
    execution.add_argument("--workers", type=int, metavar="N", help="parallel workers (default: one per core; 0: serial, in-process)")
    execution.add_argument("--backend", choices=BACKENDS,
                           help="RooFit evaluation backend (default: fit.backend of the configuration, cpu)")
    execution.add_argument("--no-dask-client", dest="no_dask_client", action="store_true",
                           help="read in-process and fit on a local process pool, without Dask")
    execution.add_argument("--dask", choices=["local", "scheduler", "gateway"], default="local",
                           help="Dask mode (default: local, a cluster of this machine's processes)")
    execution.add_argument("--scheduler", metavar="ADDRESS", help="Dask scheduler address (or DASK_SCHEDULER_ADDRESS); implies --dask scheduler")
    execution.add_argument("--gateway", nargs="?", const="", metavar="ADDRESS",
                           help="use Dask-Gateway; implies --dask gateway (address optional: DASK_GATEWAY__ADDRESS)")
    execution.add_argument("--gateway-option", action="append", default=[], metavar="KEY=VALUE",
                           help="Dask-Gateway option of a new cluster, e.g. worker_cores=2 (repeatable)")
    execution.add_argument("--skip-bad-files", action="store_true", help="skip unreadable or truncated parquet files with a warning")
    execution.add_argument("--task-timeout", type=float, default=600.0, metavar="SECONDS",
                           help="a fit on the local process pool that runs alone longer than this counts as a hung worker "
                                "(default: 600; 0: no limit; raise it for very large unbinned categories)")
    execution.add_argument("--log-level", default="WARNING", choices=["DEBUG", "INFO", "WARNING", "ERROR"],
                           help="WARNING: warnings and the summary; INFO: each phase as it ends; DEBUG: every fit attempt (default: WARNING)")


def _key_values(pairs: list[str]) -> tuple[tuple[str, str], ...]:
    """``["a=1", "b=x"]`` as ``(("a", "1"), ("b", "x"))``; CalibrationError naming a pair without '='."""
    out = []
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise CalibrationError(f"--gateway-option '{pair}' is not KEY=VALUE")
        out.append((key.strip(), value.strip()))
    return tuple(out)


def _dask_mode(args: argparse.Namespace) -> str | None:
    """The Dask mode of the flags; None without Dask (--no-dask-client, or --workers 0 on this machine: serial, in-process)."""
    if args.no_dask_client:
        return None
    if args.gateway is not None:
        return "gateway"
    if args.scheduler:
        return "scheduler"
    return None if args.workers == 0 and args.dask == "local" else args.dask


def request_from_args(args: argparse.Namespace) -> Request:
    """The request of the command line, each flag combination checked here with one line naming the flags.

    Raises:
        CalibrationError: a negative ``--workers`` (a local cluster of -1 workers waits forever), a
            malformed ``--gateway-option``, a missing ``--previous``, or flags that only work together.
    """
    if args.workers is not None and args.workers < 0:
        raise CalibrationError(f"--workers {args.workers}: must be 0 (serial, in-process) or more")
    if not args.task_timeout >= 0:
        raise CalibrationError(f"--task-timeout {args.task_timeout:g}: must be 0 (no limit) or more seconds")
    if args.previous is not None and not args.previous.is_file():
        raise CalibrationError(f"--previous {args.previous}: no such file")
    if args.validate_higgs and not args.closure_test:
        raise CalibrationError("--validate-higgs checks the Higgs peak beside the closure: add --closure_test")
    if args.calib_json is not None and not args.closure_test:
        raise CalibrationError("--calib-json names the JSON the closure tests: add --closure_test")
    if args.closure_test and args.steps != "all":
        raise CalibrationError(f"--closure_test runs the closure alone: drop --steps {args.steps}")
    if args.fixCat and not args.closure_test and args.steps not in ("all", "step1"):
        raise CalibrationError(f"--fixCat refits one category in step 1, which --steps {args.steps} does not run: use --steps step1")
    selection = Selection(
        steps=frozenset(STEPS if args.steps == "all" else (args.steps,)), years=tuple(args.years), is_mc=args.isMC,
        binned=args.ifbinned, fix_cat=args.fixCat, closure_test=args.closure_test, validate_higgs=args.validate_higgs,
        nanoaod_v=str(args.nanoAODv),
    )
    paths = Paths(args.input_path, args.output_path, args.extraString, args.calib_json)
    execution = Execution(
        args.workers, args.backend, _dask_mode(args), args.scheduler, args.gateway or None, _key_values(args.gateway_option),
        args.skip_bad_files, args.task_timeout or None,
    )
    figures = Figures(() if args.no_plots else tuple(dict.fromkeys(args.plot_formats)))
    return Request(selection, paths, execution, figures, Handling(args.backup, args.overwrite, args.force, args.install))  # fmt: skip


def write_reports(
    summaries: list[YearSummary], config: Config, args: argparse.Namespace, argv: list[str], started_at: datetime, seconds: float
) -> list[Path]:
    """Record this run (command line, start, wall time, versions, ``--previous``) in each output directory and write its report."""
    from lib.report import run_record, write_report

    record = run_record("getCalibrationFactor.py", argv, started_at, seconds, args.previous)
    paths = []
    for summary in summaries:
        OutputDir(summary.output_dir).record_run(record)
        paths.append(write_report(summary.output_dir, config, pdf=args.report_pdf))
    return paths


def main(argv: list[str] | None = None) -> int:
    started_at = datetime.now(timezone.utc)
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    console.configure(args.log_level)

    def calibrate() -> int:
        from lib.route import run

        config = load_config(args.config)
        request = request_from_args(args)
        if args.backend == "cuda":
            from lib.fitting.backend import require_backend

            require_backend("cuda")
        startup = time.monotonic() - _STARTED
        summaries = run(request, config)
        for summary in summaries:
            print(summary.format(), flush=True)  # before the reports: a report that cannot be written still leaves it
        report_start = time.monotonic()
        reports = write_reports(summaries, config, args, argv, started_at, report_start - _STARTED)
        # The phases of each year are in its timings line; here what comes before and after them.
        print(f"total {time.monotonic() - _STARTED:.1f} s (start-up {startup:.1f} s, report {time.monotonic() - report_start:.1f} s)")
        for path in reports:
            print(f"report: {path}")
        return 0

    return console.run_cli(calibrate, args.log_level == "DEBUG", "interrupted: finished outputs are intact; re-run to resume")


if __name__ == "__main__":
    sys.exit(main())
