"""Compare two output directories of the tool: are the numbers the same, bit for bit?

A refactoring must not change a result. This compares every CSV and LaTeX table, the correction
JSON (its description's run-specific lines aside) and ``fit_params.json`` (the timings aside) of
two runs on the same input, and prints each difference; exit status 1 when there is one.

    .venv/bin/python benchmarks/compare_outputs.py plots/binned/2018/Data_2018_before plots/binned/2018/Data_2018_after
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


def _differences(before: Path, after: Path) -> list[str]:
    names = sorted({p.name for g in COMPARED_GLOBS for d in (before, after) for p in d.glob(g)} - SKIPPED)
    found = []
    for name in names:
        a, b = before / name, after / name
        if not a.exists() or not b.exists():
            found.append(f"{name}: only in {'after' if not a.exists() else 'before'}")
        elif name.endswith(".json"):
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
    differences = _differences(args.before, args.after)
    for line in differences:
        print(line)
    compared = len({p.name for g in COMPARED_GLOBS for p in args.before.glob(g)} - SKIPPED)
    print(f"{compared} files compared, {len(differences)} differ")
    return 1 if differences else 0


if __name__ == "__main__":
    sys.exit(main())
