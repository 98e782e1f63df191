"""Command line for the sample generator: ``python -m lib.generate --help``.

Thin on purpose: it parses arguments and calls ``lib.generator.generate_sample``. Expected
failures (bad argument, settings or k map, unwritable output) end as one line on stderr and exit
code 1, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import NoReturn, Sequence

from lib import console
from lib.categories import CategoryScheme
from lib.config import DEFAULT_CONFIG, load_config
from lib.errors import CalibrationError
from lib.generator import DEFAULT_SETTINGS, generate_sample, load_k_override, load_settings

__all__ = ["main", "default_seed", "DEFAULT_SEED"]

DEFAULT_SEED = 20261123


def default_seed(year: int) -> int:
    """The seed used when none is given: one per year, so a two-year run never compares a sample with itself.

    >>> default_seed(2018), default_seed(2017)
    (20261123, 20261122)
    """
    return DEFAULT_SEED + (year - 2018)


class _UsageError(Exception):
    """An argument argparse rejected; reported in one line instead of argparse's usage block."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error raises instead of printing the usage block and exiting 2."""

    def error(self, message: str) -> NoReturn:
        raise _UsageError(message)


def _count(text: str) -> int:
    """An event count: integer >= 0, also written as 1e7 or 10_000_000."""
    try:
        value = float(text.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an event count, got '{text}'") from None
    if value < 0 or value != int(value):
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got '{text}'")
    return int(value)


def _positive(text: str) -> int:
    """An integer >= 1 (files, rows, workers)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got '{text}'") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got '{text}'")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (importable for documentation tools)."""
    parser = _Parser(
        prog="python -m lib.generate",
        description=(
            "Write a Stage-1-like compacted sample (Data eras, DY MC, ggH signal) with a known true "
            "resolution scale k per category, plus <output>/<year>/truth.json."
        ),
    )
    parser.add_argument("--output", default="data/samples/stage1", metavar="ROOT_DIR", help="Stage-1 root (default: %(default)s).")
    parser.add_argument("--year", type=int, default=2018, help="year directory (default: %(default)s).")
    parser.add_argument("--n-data", type=_count, default=1_000_000, help="Data events over all eras (default: %(default)s).")
    parser.add_argument("--n-mc", type=_count, default=1_000_000, help="DY MC events (default: %(default)s).")
    parser.add_argument("--n-signal", type=_count, default=200_000, help="ggH signal events (default: %(default)s).")
    parser.add_argument(
        "--seed", type=int, default=None,
        help=f"master seed (default: {DEFAULT_SEED} + (year - 2018), so two years are two different samples).",
    )  # fmt: skip
    parser.add_argument(
        "--k-data",
        metavar="K_OR_JSON",
        help="true k for Data: a number (uniform) or a JSON file {category: k} overriding those categories of the built-in map.",
    )
    parser.add_argument("--k-mc", metavar="K_OR_JSON", help="the same for MC and signal.")
    parser.add_argument("--files-per-dataset", type=_positive, default=4, help="files per dataset (default: %(default)s).")
    parser.add_argument("--row-group-rows", type=_positive, default=100_000, help="rows per row group (default: %(default)s).")
    parser.add_argument("--workers", type=_positive, help="processes writing files in parallel (default: usable cores).")
    parser.add_argument("--config", default=str(DEFAULT_SETTINGS), help="generator settings YAML (default: configs/generator.yaml).")
    parser.add_argument(
        "--analysis-config", default=str(DEFAULT_CONFIG), metavar="PATH",
        help="analysis config YAML whose categories: define the categories of the k maps and truth.json (default: configs/default.yaml).",
    )  # fmt: skip
    parser.add_argument("--log-level", default="WARNING", choices=["DEBUG", "INFO", "WARNING", "ERROR"],
                        help="WARNING: warnings and the closing line; INFO: also every file written")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the generator; returns the process exit code."""
    try:
        args = build_parser().parse_args(argv)
    except _UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    console.configure(args.log_level)

    def generate() -> int:
        start = time.monotonic()
        try:
            year_dir = generate_sample(
                args.output,
                year=args.year,
                seed=args.seed if args.seed is not None else default_seed(args.year),
                n_data=args.n_data,
                n_mc=args.n_mc,
                n_signal=args.n_signal,
                k_data=load_k_override(args.k_data) if args.k_data is not None else None,
                k_mc=load_k_override(args.k_mc) if args.k_mc is not None else None,
                files_per_dataset=args.files_per_dataset,
                row_group_rows=args.row_group_rows,
                settings=load_settings(args.config),
                workers=args.workers,
                scheme=CategoryScheme.from_config(load_config(args.analysis_config).categories),
            )
        except OSError as err:
            raise CalibrationError(f"cannot write the sample: {err}") from err
        print(f"sample written in {time.monotonic() - start:.1f} s: {year_dir} (truth: {year_dir / 'truth.json'})")
        return 0

    return console.run_cli(generate, args.log_level == "DEBUG")

if __name__ == "__main__":
    sys.exit(main())
