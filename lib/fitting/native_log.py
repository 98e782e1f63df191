"""Send what ROOT's C++ prints during a fit to a per-category log file instead of the terminal.

RooFit's message service and Minuit write to the process's stdout/stderr from C++ (lines such
as ``[#0] ERROR:Minimization -- RooMinimizer::calculateHessErrors()``), for attempts that the
retry ladder then handles. Those lines are evidence for whoever debugs that category, and noise
for everyone else. The file descriptors themselves are pointed at the file for the duration of
the ROOT calls (no Python logging happens inside), so nothing the C++ side prints escapes.
"""

from __future__ import annotations

import ctypes
import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

_LIBC = ctypes.CDLL(None)


@contextmanager
def native_output_to(path: Path | None) -> Iterator[None]:
    """Within the block, fd 1 and 2 append to ``path`` (created with its directory); None: unchanged.

    A file left empty is removed on the way out, so the log directory only lists categories that
    had something to say.
    """
    if path is None:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = (os.dup(1), os.dup(2))
    target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o666)
    try:
        os.dup2(target, 1)
        os.dup2(target, 2)
        yield
    finally:
        _LIBC.fflush(None)  # C stdio buffers (std::cout is synced with them) go to the file, not the terminal
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, target):
            os.close(fd)
        if path.exists() and path.stat().st_size == 0:
            path.unlink()
