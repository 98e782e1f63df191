"""Command line for the sample generator (``python -m lib.generate --help``): arguments into ``generate_sample``.

Expected failures (bad argument, settings or k map, unwritable output) end as one line on stderr
and exit code 1, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import NoReturn, Sequence

from lib import console
from lib.categories import CategoryScheme
from lib.config import DEFAULT_CONFIG, load_config
from lib.errors import CalibrationError, InputError
from lib.generator import (
    DEFAULT_SEED, DEFAULT_SETTINGS, GeneratorSettings, SampleRequest, WriteOptions, generate_sample, load_k_override, load_settings,
)  # fmt: skip
from lib.generator.kmaps import parse_muon_k_map
from lib.generator.settings import validated


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error raises, to be reported in one line instead of the usage block and exit code 2."""

    def error(self, message: str) -> NoReturn:
        raise InputError(message)


def _count(text: str) -> int:
    """An event count: integer >= 0, also written as 1e7 or 10_000_000."""
    try:
        value = float(text.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an event count, got '{text}'") from None
    if not (value >= 0 and value.is_integer()):
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


def _with_options(settings: GeneratorSettings, args: argparse.Namespace, scheme: CategoryScheme) -> GeneratorSettings:
    """The settings with the command line's generator options applied, validated again as a whole (the ranges too).

    Raises:
        ConfigError: the combination the schema rejects (named in the message).
        InputError: an unreadable per-muon k map.
    """
    raw = settings.model_dump()
    for which in ("data", "mc"):
        text = getattr(args, f"muon_k_{which}")
        if text is not None:
            raw["muon_k_maps"][which] = parse_muon_k_map(text, scheme).model_dump()
    if args.fsr_shape is not None:
        raw["fsr"]["shape"] = args.fsr_shape
    if args.fsr_probability is not None:
        raw["fsr"]["probability"] = args.fsr_probability
    raw["gen_mass_column"] |= args.gen_mass_column
    raw["truth_columns"] |= args.truth_columns
    return validated(GeneratorSettings, raw, "generator options")


def _request(args: argparse.Namespace) -> SampleRequest:
    """What the command line asks to make: year, seed, event counts and k overrides."""
    k_data = load_k_override(args.k_data) if args.k_data is not None else None
    k_mc = load_k_override(args.k_mc) if args.k_mc is not None else None
    counts = {"n_data": args.n_data, "n_mc": args.n_mc, "n_signal": args.n_signal}
    return SampleRequest(year=args.year, seed=args.seed, k_data=k_data, k_mc=k_mc, **counts)


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
    parser.add_argument(
        "--muon-k-data", metavar="K1,K2,..._OR_JSON",
        help="give each Data muon its own k instead of one per category: one k per |eta| region of the analysis "
        "categories (e.g. 1.08,1.16,1.30), or a JSON file {abseta_edges, pt_edges_gev, k: [[k per pT bin] per region]}; "
        "the files then carry the per-event truth (truth_sigma_m, ...).",
    )  # fmt: skip
    parser.add_argument("--muon-k-mc", metavar="K1,K2,..._OR_JSON", help="the same for MC and signal.")
    parser.add_argument(
        "--fsr-shape", choices=["exponential", "qed", "recovered"],
        help="photon fraction of FSR: exponential, the leading-log QED radiator, or that radiator with Stage-1-like "
        "recovery of the harder photons (default: fsr.shape of the settings, exponential).",
    )  # fmt: skip
    parser.add_argument("--fsr-probability", type=float, metavar="P", help="per-muon FSR probability (0: no FSR).")
    parser.add_argument("--gen-mass-column", action="store_true", help="MC and signal files carry dimuon_mass_gen (before FSR and smearing).")
    parser.add_argument("--truth-columns", action="store_true", help="every file carries the per-event truth columns truth_*.")
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
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    console.configure(args.log_level)

    def generate() -> int:
        start = time.monotonic()
        scheme = CategoryScheme.from_config(load_config(args.analysis_config).categories)
        settings = _with_options(load_settings(args.config), args, scheme)
        try:
            options = WriteOptions(args.files_per_dataset, args.row_group_rows, workers=args.workers)
            year_dir = generate_sample(args.output, _request(args), options, settings, scheme)
        except OSError as err:
            raise CalibrationError(f"cannot write the sample: {err}") from err
        print(f"sample written in {time.monotonic() - start:.1f} s: {year_dir} (truth: {year_dir / 'truth.json'})")
        return 0

    return console.run_cli(generate, args.log_level == "DEBUG")

if __name__ == "__main__":
    sys.exit(main())
