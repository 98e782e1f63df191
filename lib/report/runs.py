"""The record of this run for the output directories it filled: command line, start, wall time, versions, ``--previous``.

A directory is filled by several commands (steps, a ``--fixCat``, the closure); the report lists them in order.
"""

from __future__ import annotations

import platform
import shlex
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

from lib import __version__
from lib.fitting.backend import root_version
from lib.outputs import RunRecord

# The packages whose versions change the numbers or the files (the fit, the arrays, the JSON); ROOT
# is named by its own release, not by the version of the pip package that ships it.
VERSIONED_PACKAGES = ("numpy", "pyarrow", "correctionlib", "matplotlib")


def current_versions() -> dict[str, str]:
    """This process's tool, Python, ROOT and package versions (``unknown`` for a package not installed)."""
    versions = {"ebe-calib": __version__, "python": platform.python_version(), "ROOT": root_version()}
    for package in VERSIONED_PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "unknown"
    return versions


def run_record(program: str, args: list[str], started: datetime, seconds: float, previous: Path | None) -> RunRecord:
    """The record of the command ``program args`` that started at ``started`` and ran ``seconds``."""
    return RunRecord(
        command=shlex.join([program, *args]),
        started_utc=started.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        seconds=round(seconds, 1),
        versions=current_versions(),
        previous=None if previous is None else str(Path(previous).resolve()),
    )
