"""Module-level tasks that misbehave on purpose, for the fault tests (worker processes must be able to import them)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path


def square_killed_once(task: tuple[int, str]) -> int:
    """value**2, but the first run for a marker path kills its own process (SIGKILL, as the OOM killer does)."""
    value, marker = task
    if not Path(marker).exists():
        Path(marker).touch()
        os.kill(os.getpid(), signal.SIGKILL)
    return value * value


def square_always_killed(value: int) -> int:
    """value**2; value -1 kills its own process every time (SIGKILL)."""
    if value == -1:
        os.kill(os.getpid(), signal.SIGKILL)
    return value * value


def sleep_then_square(value: int) -> int:
    """value**2 after ``value`` tenths of a second."""
    time.sleep(value / 10)
    return value * value


def pid_after(seconds: float) -> int:
    """This process's id, after ``seconds``."""
    time.sleep(seconds)
    return os.getpid()


def write_slowly(target: str) -> None:
    """Hold ``target``'s atomic temp file open for a minute, as a figure being drawn does for a moment."""
    from lib.io.atomic import atomic_path

    with atomic_path(Path(target)) as tmp:
        tmp.write_text("half")
        time.sleep(60)
