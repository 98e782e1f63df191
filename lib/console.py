"""One console: the tool's own log lines in one format, in the parent and every worker; one error boundary for each CLI.

``configure`` is called by each CLI and ``configure_once`` by every worker task (``lib.executor``) with
the parent's level, so Dask's dozens of INFO lines per run stay hidden unless the user asks for DEBUG.
"""

from __future__ import annotations

import errno
import logging
import os
import signal
import sys
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from lib.errors import CalibrationError

LOG_FORMAT = "%(levelname)s %(name)s: %(message)s"
# Libraries whose INFO lines describe their own machinery, not the calibration: shown from DEBUG.
QUIET_LOGGERS = ("distributed", "tornado", "bokeh", "dask_gateway")
# Of those, the ones shown only from DEBUG at any level: a lost worker or scheduler makes them print
# tracebacks, while the tool reports the consequence (a task retried, the run stopped) in one line.
SILENT_LOGGERS = ("distributed", "tornado")
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

    Called again it replaces its own handler and leaves others (a test's log capture) alone.
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
    """Third-party loggers at WARNING (distributed and tornado silent; all at DEBUG when the root logger is), through the root handler.

    Called again once ``distributed`` is imported (it sets its sub-loggers' levels then, which are
    cleared here), and exported to the environment for the Dask processes started from here.
    """
    debug = current_level() <= logging.DEBUG
    os.environ["DASK_LOGGING__DISTRIBUTED"] = "debug" if debug else "critical"
    levels = {name: logging.DEBUG if debug else logging.WARNING for name in QUIET_LOGGERS}
    levels |= {name: logging.DEBUG if debug else logging.CRITICAL + 1 for name in SILENT_LOGGERS}
    levels |= {name: logging.WARNING for name in ALWAYS_QUIET}
    for name, logger in list(logging.root.manager.loggerDict.items()):
        if isinstance(logger, logging.Logger) and name.partition(".")[0] in SILENT_LOGGERS and name not in levels:
            levels[name] = logging.NOTSET
    for name, level in levels.items():
        library = logging.getLogger(name)
        library.setLevel(level)
        # distributed gives its loggers their own stderr handler; through the root one instead, in our format.
        for own in list(library.handlers):
            library.removeHandler(own)
        library.propagate = True


# What a batch system or a closed terminal sends to stop a job: handled like Ctrl-C.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)
# How long after a swallowed stop the signal is sent again (the finaliser that swallowed it has returned by then).
RESIGNAL_DELAY_S = 0.01


class Terminated(KeyboardInterrupt):
    """Raised in the main thread by SIGTERM or SIGHUP: the run unwinds as after Ctrl-C (pools stopped, temp files removed)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @staticmethod
    def handler(signum: int, _frame: object) -> None:
        """Raise once: a second signal while the run unwinds must not cut its clean-up short."""
        for stop in STOP_SIGNALS:
            signal.signal(stop, signal.SIG_IGN)
        raise Terminated(signum)


@contextmanager
def _stop_signals_raise() -> Iterator[None]:
    """Within the block, SIGTERM and SIGHUP raise ``Terminated`` in the main thread; the previous handlers after it."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {stop: signal.signal(stop, Terminated.handler) for stop in STOP_SIGNALS}
    previous_hook = sys.unraisablehook
    sys.unraisablehook = signal_again_if_swallowed
    try:
        yield
    finally:
        sys.unraisablehook = previous_hook
        for stop, handler in previous.items():
            signal.signal(stop, handler)


def signal_again_if_swallowed(unraisable: object) -> None:
    """``sys.unraisablehook`` wherever a stop signal raises (``run_cli``'s main thread, a worker pool's processes).

    A stop (an exception with ``signum`` and the ``handler`` that raises it) raised inside a finaliser
    (``__del__``, a weakref callback) is swallowed there: the signal is sent again so that it stops the
    run or task at its next Python line. Anything else is reported as usual.
    """
    stop = getattr(unraisable, "exc_value", None)
    handler = getattr(stop, "handler", None) if hasattr(stop, "signum") else None
    if handler is None:
        sys.__unraisablehook__(unraisable)  # type: ignore[arg-type]
        return
    signal.signal(stop.signum, handler)  # type: ignore[union-attr]
    # Sent from a thread, after a moment: raised here, the handler's exception would be swallowed too.
    threading.Timer(RESIGNAL_DELAY_S, os.kill, (os.getpid(), stop.signum)).start()  # type: ignore[union-attr]


def os_error_line(err: OSError) -> str:
    """An operating-system error as the user reads it: the path and the cause (``No space left on device``)."""
    if err.errno in (errno.EEXIST, errno.ENOTDIR) and err.filename is not None:
        path = Path(os.fsdecode(err.filename))
        blocker = next((p for p in (path, *path.parents) if p.exists() and not p.is_dir()), None)
        if blocker is not None:
            return f"{blocker}: a file where a directory is needed"
    cause = err.strerror or (os.strerror(err.errno) if err.errno else str(err))
    if err.errno == errno.ENOSPC:
        cause += " (the disk is full: free space or choose another --output_path)"
    elif err.errno == errno.EROFS:
        cause += " (a read-only file system)"
    paths = [str(p) for p in (err.filename, err.filename2) if p is not None]
    return f"{' -> '.join(paths)}: {cause}" if paths else cause


def run_cli(body: Callable[[], int], debug: bool, interrupted: str = "interrupted") -> int:
    """Every command line's one error boundary: run ``body`` and turn what escapes into one stderr line and an exit code.

    ``CalibrationError`` and ``OSError`` (the path and the cause): ``error: ...``, 1. Ctrl-C: ``interrupted``,
    130; SIGTERM and SIGHUP: the same line naming the signal, 128 + its number (the shell's codes). Anything
    else is a bug: ``internal error: ...``, 2, with its traceback only when ``debug`` (``--log-level DEBUG``).
    """
    try:
        with _stop_signals_raise():
            return body()
    except CalibrationError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except OSError as err:
        if debug:
            raise
        print(f"error: {os_error_line(err)}", file=sys.stderr)
        return 1
    except Terminated as stop:
        name = signal.Signals(stop.signum).name
        print(interrupted.replace("interrupted", f"interrupted by {name}", 1), file=sys.stderr)
        return 128 + stop.signum
    except KeyboardInterrupt:
        print(interrupted, file=sys.stderr)
        return 128 + signal.SIGINT
    except Exception as err:  # noqa: BLE001 - the boundary: a crash is one line unless debugging
        if debug:
            raise
        print(f"internal error: {type(err).__name__}: {err} (re-run with --log-level DEBUG for the traceback)", file=sys.stderr)
        return 2
