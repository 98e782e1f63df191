"""Module-level task functions for executor tests (worker processes must be able to import them)."""

from __future__ import annotations

import os
import signal


def square_or_crash(value: int) -> int:
    """Return value**2; value -1 kills its own process like a ROOT segfault would."""
    if value == -1:
        os.kill(os.getpid(), signal.SIGSEGV)
    return value * value


def module_loaded(name: str) -> bool:
    """Whether ``name`` was imported in this worker before the task ran (e.g. by the forkserver's preload)."""
    import sys

    return name in sys.modules
