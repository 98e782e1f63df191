"""Command line for the correction file: ``python -m lib.correction {audit,import,apply,install}``.

Exit codes: 0 success (audit: nothing flagged), 1 an expected failure (one line on stderr) or an
audit with flagged categories, 2 an unexpected crash (traceback only with ``--log-level DEBUG``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from lib import console
from lib.config import DEFAULT_CONFIG, load_config
from lib.correction.auditor import audit_correction
from lib.errors import CorrectionError


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {value}")
    return value


def _add_config(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="ebe-calib YAML configuration (default: %(default)s)")


def setup_audit(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("audit", help=audit.__doc__, description=audit.__doc__)
    parser.add_argument("file", type=Path, help="correction JSON (.json or .json.gz)")
    parser.add_argument("--previous", type=Path, help="earlier JSON to diff against, category by category")
    parser.add_argument(
        "--band", type=float, nargs=2, metavar=("LO", "HI"), help="plausible factor band (default: step3.plausible_factor_band of --config)"
    )
    parser.add_argument("--outlier-threshold", type=float,
                        help="largest allowed ratio (either way) to the neighbour median (default: step3.neighbour_outlier_ratio of --config)")
    parser.add_argument("--name", help="correction to audit (default: the only one in the file)")
    _add_config(parser)
    parser.set_defaults(command=audit)


def audit(args: argparse.Namespace) -> int:
    """Validate a correction file and flag implausible or outlying category factors."""
    band = tuple(args.band) if args.band else None
    report = audit_correction(args.file, load_config(args.config), args.previous, args.name, band, args.outlier_threshold)
    print(report.to_text())
    if not report.ok:
        flagged = ", ".join(report.flagged)
        raise CorrectionError(f"{args.file}: {len(report.flagged)} of {len(report.categories)} categories flagged: {flagged}")
    return 0


def setup_import(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("import", help=import_.__doc__, description=import_.__doc__)
    parser.add_argument("root_file", type=Path, help="legacy res_calib_{Data|MC}_<year>.root or ebe_mass_uncertaintiy_calibration_<year>.root")
    parser.add_argument("-o", "--output", type=Path, required=True, help="JSON to write")
    parser.add_argument("--kind", choices=("Data", "MC"), help="which TH2 set of a per-pT-bin file")
    parser.add_argument("--hist", help="TH3 to take (default: the only TH3 in the file)")
    parser.add_argument("--pt-edges", type=float, nargs="+", metavar="GEV", help="pT edges of a per-pT-bin file (default: 0 45 52 62 9999)")
    parser.add_argument("--gzip", action="store_true", help="also write OUTPUT.gz")
    _add_config(parser)
    parser.set_defaults(command=import_)


def import_(args: argparse.Namespace) -> int:
    """Convert a legacy ROOT calibration map into the correctionlib JSON, bin for bin."""
    from lib.correction.importer import LEGACY_PT_EDGES_GEV, import_root
    from lib.correction.writer import write_correction

    name = load_config(args.config).step3.correction_name
    cset = import_root(args.root_file, name, kind=args.kind, hist_name=args.hist, pt_edges=args.pt_edges or LEGACY_PT_EDGES_GEV)
    for path in write_correction(cset, args.output, gzip=args.gzip):
        print(f"wrote {path}")
    return 0


def setup_apply(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("apply", help=apply.__doc__, description=apply.__doc__)
    parser.add_argument("inputs", type=Path, nargs="+", help="Stage-1 parquet files")
    parser.add_argument("--correction", type=Path, required=True, help="correction JSON")
    parser.add_argument("--output-dir", type=Path, required=True, help="directory for the new files")
    parser.add_argument("--input-root", type=Path, help="root the relative output paths start from (default: the inputs' common directory)")
    parser.add_argument("--name", help="correction in the file (default: the only one)")
    parser.add_argument("--batch-rows", type=_positive_int, help="rows per streamed batch (default: input.batch_rows)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs (never inputs)")
    _add_config(parser)
    parser.set_defaults(command=apply)


def apply(args: argparse.Namespace) -> int:
    """Write copies of Stage-1 parquet files with the calibrated per-event mass resolution added."""
    from lib.correction.apply import apply_correction
    from lib.correction.writer import load_correction

    config = load_config(args.config)
    correction = load_correction(args.correction, args.name)
    batch_rows = args.batch_rows or config.input.batch_rows
    done = apply_correction(args.inputs, args.output_dir, correction, input_root=args.input_root, batch_rows=batch_rows, overwrite=args.overwrite)
    for item in done:
        print(f"{item.output} ({item.rows} rows)")
    return 0


def setup_install(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("install", help=install.__doc__, description=install.__doc__)
    parser.add_argument("file", type=Path, help="validated correction JSON")
    parser.add_argument("--year", required=True, help="year key, e.g. 2018 or 2022preEE")
    kind = parser.add_mutually_exclusive_group(required=True)
    kind.add_argument("--data", dest="is_mc", action="store_false", help="register as the Data correction")
    kind.add_argument("--mc", dest="is_mc", action="store_true", help="register as the MC correction")
    parser.add_argument("--repo-root", type=Path, default=Path.cwd(), help="analysis checkout (default: current directory)")
    parser.add_argument("--config", type=Path, help="configuration whose categories and step3 thresholds the audit uses")
    parser.add_argument("--force", action="store_true",
                        help="install even when the audit flags a category or the file says another year or Data/MC")
    parser.set_defaults(command=install)


def install(args: argparse.Namespace) -> int:
    """Copy a correction into data/res_calib/ and set BS_res_calib_path.<year>.<Data|MC> to it."""
    from lib.correction.install import install_correction

    target = install_correction(args.file, args.year, args.is_mc, args.repo_root, load_config(args.config), force=args.force)
    print(f"installed {target}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m lib.correction",
        description="The correction file: audit it, import legacy ROOT maps, apply it to Stage-1 parquet, install it.",
    )
    parser.add_argument("--log-level", default="WARNING", choices=("DEBUG", "INFO", "WARNING", "ERROR"), help="default: %(default)s")
    subparsers = parser.add_subparsers(required=True, metavar="{audit,import,apply,install}")
    for setup in (setup_audit, setup_import, setup_apply, setup_install):
        setup(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    console.configure(args.log_level)
    return console.run_cli(lambda: args.command(args), args.log_level == "DEBUG")


if __name__ == "__main__":
    sys.exit(main())
