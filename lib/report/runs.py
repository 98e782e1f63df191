"""The runs that filled an output directory: command line, start, wall time, versions, ``--previous``.

``provenance.json`` says what the outputs were computed from (inputs, configuration), but not who
ran what and when: a directory is filled by several commands (steps, a ``--fixCat``, the closure),
and the report must say which of them produced what the reader sees. Each finished run appends
one record here; the report shows them in order.
"""

from __future__ import annotations

import json
import platform
import shlex
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

from lib import __version__
from lib.fitting.backend import root_version
from lib.io.atomic import write_text_atomic
from lib.outputs import OutputDir

__all__ = ["RunRecord", "current_versions", "read_runs", "record_run"]

# Enough to show a tuning session of --fixCat runs; older runs' outputs have been replaced anyway.
MAX_RUNS = 50
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


@dataclass(frozen=True)
class RunRecord:
    """One finished command on the directory; ``previous`` is the ``--previous`` JSON it was given."""

    command: str
    started_utc: str
    seconds: float
    versions: dict[str, str] = field(default_factory=dict)
    previous: str | None = None

    @classmethod
    def now(cls, program: str, args: list[str], started: datetime, seconds: float, previous: Path | None) -> "RunRecord":
        """The record of the command ``program args`` that started at ``started`` and ran ``seconds``."""
        return cls(
            command=shlex.join([program, *args]),
            started_utc=started.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            seconds=round(seconds, 1),
            versions=current_versions(),
            previous=None if previous is None else str(Path(previous).resolve()),
        )


def read_runs(out_dir: Path) -> list[RunRecord]:
    """The directory's run records, oldest first; none for a directory filled before runs were recorded."""
    path = OutputDir(Path(out_dir)) / OutputDir.RUNS_JSON
    if not path.exists():
        return []
    try:
        return [RunRecord(**entry) for entry in json.loads(path.read_text())]
    except (ValueError, TypeError):
        return []  # a hand-edited or foreign file: the report shows no runs rather than failing the run


def record_run(out_dir: Path, record: RunRecord) -> list[RunRecord]:
    """Append ``record`` (keeping the last ``MAX_RUNS``) and return the directory's records."""
    runs = (read_runs(out_dir) + [record])[-MAX_RUNS:]
    write_text_atomic(OutputDir(Path(out_dir)) / OutputDir.RUNS_JSON, json.dumps([asdict(r) for r in runs], indent=1))
    return runs
