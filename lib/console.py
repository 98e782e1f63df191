"""One console: the tool's own log lines, in one format, in the parent and in every worker.

Dask's scheduler, nannies and workers log dozens of INFO lines per run (cluster start, each
connection, each close), and worker processes start with no logging set up at all, so the
tool's own warnings from a worker printed bare. ``configure`` is called by each CLI, and
``configure_once`` by every worker task (``lib.executor``) with the parent's level: the
libraries' chatter stays at WARNING unless the user asks for DEBUG.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Callable

from lib.errors import CalibrationError

__all__ = ["configure", "configure_once", "quiet_libraries", "current_level", "run_cli", "LOG_FORMAT", "QUIET_LOGGERS"]

LOG_FORMAT = "%(levelname)s %(name)s: %(message)s"
# Libraries whose INFO lines describe their own machinery, not the calibration: shown from DEBUG.
QUIET_LOGGERS = ("distributed", "tornado", "bokeh", "dask_gateway")
# A worker warns for each task the client cancelled; the tool cancels them on purpose after a failure.
CANCELLED_TASKS = "distributed.worker.state_machine"
# Libraries whose DEBUG lines (font scans, event loops) help nobody debugging a calibration.
ALWAYS_QUIET = ("matplotlib", "PIL", "asyncio", "fsspec")


_MARK = "_ebe_calib_console"


class _CurrentStderr(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at each record, not the one it saw when created."""

    @property  # type: ignore[override]
    def stream(self) -> object:
        return sys.stderr

    @stream.setter
    def stream(self, _value: object) -> None:
        """StreamHandler's constructor assigns a stream; the current sys.stderr is always used instead."""


def configure(level: str | int = "INFO") -> None:
    """Log to stderr in the tool's format at ``level``; third-party loggers at WARNING unless DEBUG.

    Called again (a worker re-configured, a CLI run twice in one process) it replaces its own
    handler and leaves others (a test's log capture) alone.
    """
    numeric = logging.getLevelName(level) if isinstance(level, str) else level
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, _MARK, False):
            root.removeHandler(handler)
    handler = _CurrentStderr()
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    setattr(handler, _MARK, True)
    root.addHandler(handler)
    root.setLevel(numeric)
    quiet_libraries()


_configured_level: list[int] = []


def configure_once(level: int) -> None:
    """``configure(level)`` unless this process is already configured at that level (a worker's every task calls it)."""
    if _configured_level != [level]:
        configure(level)
        _configured_level[:] = [level]


def current_level() -> int:
    """The root logger's level: what worker processes are configured with."""
    return logging.getLogger().level


def quiet_libraries() -> None:
    """Third-party loggers at WARNING (DEBUG when the root logger is at DEBUG), through the root handler.

    Called again after ``distributed`` is imported, which sets up its own loggers on import, and
    exported to the environment so that Dask processes started from here (a local cluster's
    scheduler and workers) read the same level when they import it.
    """
    debug = current_level() <= logging.DEBUG
    os.environ["DASK_LOGGING__DISTRIBUTED"] = "debug" if debug else "warning"
    levels = {name: logging.DEBUG if debug else logging.WARNING for name in QUIET_LOGGERS}
    levels |= {name: logging.WARNING for name in ALWAYS_QUIET}
    levels[CANCELLED_TASKS] = logging.DEBUG if debug else logging.ERROR
    for name, level in levels.items():
        library = logging.getLogger(name)
        library.setLevel(level)
        # distributed gives its loggers their own stderr handler; through the root one instead, in our format.
        for own in list(library.handlers):
            library.removeHandler(own)
        library.propagate = True


def run_cli(body: Callable[[], int], debug: bool, interrupted: str = "interrupted") -> int:
    """Every command line's one error boundary: run ``body`` and turn what escapes into one stderr line and an exit code.

    A ``CalibrationError`` (bad input, configuration, output) is ``error: ...`` and 1; Ctrl-C is
    ``interrupted`` and 130; anything else is a bug, ``internal error: ...`` and 2, with its
    traceback only when ``debug`` (``--log-level DEBUG``).
    """
    try:
        return body()
    except CalibrationError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(interrupted, file=sys.stderr)
        return 130
    except Exception as err:  # noqa: BLE001 - the boundary: a crash is one line unless debugging
        if debug:
            raise
        print(f"internal error: {type(err).__name__}: {err} (re-run with --log-level DEBUG for the traceback)", file=sys.stderr)
        return 2
