"""Compare two output directories of the tool: are the numbers the same, bit for bit?

A refactoring must not change a result. This walks both trees (an output directory, or a folder
holding several, such as an ``--output_path``) and compares every CSV and LaTeX table, the
correction JSON (its description's run-specific lines aside) and ``fit_params.json`` (the timings
aside) by their path below the top, and names every output file (figures and logs too) that only
one of them has; exit status 1 when there is a difference. Caches (``.cache``) are not outputs.

    .venv/bin/python benchmarks/compare_outputs.py plots/before plots/after
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

# Fields that differ between two runs of the same numbers: wall times and when/where it ran.
VOLATILE_KEYS = {"seconds", "created", "creation_time", "description"}
COMPARED_GLOBS = ("*.csv", "*.tex", "*.json")
SKIPPED = {"provenance.json", "report_runs.json"}


def _without_volatile(value: object) -> object:
    if isinstance(value, dict):
        return {k: _without_volatile(v) for k, v in value.items() if k not in VOLATILE_KEYS}
    if isinstance(value, list):
        return [_without_volatile(v) for v in value]
    return value


def _outputs(top: Path) -> set[Path]:
    """Every output file below ``top``, by its path below it (caches and the run lock aside)."""
    return {p.relative_to(top) for p in top.rglob("*") if p.is_file() and ".cache" not in p.parts and p.name != ".lock"}


def _compared(files: set[Path]) -> set[Path]:
    return {p for p in files if any(p.match(g) for g in COMPARED_GLOBS) and p.name not in SKIPPED}


def _differences(before: Path, after: Path, files_before: set[Path], files_after: set[Path]) -> list[str]:
    found = [f"{p}: only in before" for p in sorted(files_before - files_after)]
    found += [f"{p}: only in after" for p in sorted(files_after - files_before)]
    for name in sorted(_compared(files_before & files_after)):
        a, b = before / name, after / name
        if name.suffix == ".json":
            if _without_volatile(json.loads(a.read_text())) != _without_volatile(json.loads(b.read_text())):
                found.append(f"{name}: differs")
        elif a.read_bytes() != b.read_bytes():
            found.append(f"{name}: differs")
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    args = parser.parse_args()
    files_before, files_after = _outputs(args.before), _outputs(args.after)
    differences = _differences(args.before, args.after, files_before, files_after)
    for line in differences:
        print(line)
    compared = len(_compared(files_before & files_after))
    print(f"{compared} files compared, {len(differences)} differ")
    return 1 if differences else 0


if __name__ == "__main__":
    sys.exit(main())
