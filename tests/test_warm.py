"""The fit workers fork warm from their server, and importing the warm-up module anywhere else costs nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _python(code: str, timeout: float) -> str:
    """Run ``code`` in a fresh interpreter (one forkserver per process) and return what it printed."""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                         env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=timeout)  # fmt: skip
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_importing_the_warm_up_module_runs_no_fit():
    """Doctest collection and users import it: outside a forkserver it must not load ROOT nor fit."""
    printed = _python("import sys, lib.fitting.warm as w; print(w.in_forkserver(), 'ROOT' in sys.modules, 'lib.fitting.runner' in sys.modules)", 120)
    assert printed == "False False False"


@pytest.mark.root
@pytest.mark.slow
def test_fit_workers_fork_from_a_warmed_server():
    """The forkserver of the fit pool runs the warm-up: its workers hold ROOT and the fit runner before their first task."""
    pytest.importorskip("ROOT")
    printed = _python(
        "from lib.executor import ProcessExecutor\n"
        "from lib.run.reduction import FIT_WORKER_PRELOAD\n"
        "from tests.helpers_tasks import module_loaded\n"
        "pool = ProcessExecutor(1, preload=FIT_WORKER_PRELOAD)\n"
        "pool.start()\n"
        "print(pool.map(module_loaded, ['ROOT', 'lib.fitting.runner'], ['a', 'b']))\n",
        300,
    )
    assert printed == "[True, True]"
