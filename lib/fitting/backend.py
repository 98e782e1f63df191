"""RooFit evaluation-backend selection, with a CUDA probe that never touches RooFit itself.

Asking RooFit for ``EvalBackend("cuda")`` when ``libRooBatchCompute_CUDA`` is missing (as in the
PyPI ROOT wheel) prints an error and then crashes the whole process with a segmentation
violation. CUDA support is therefore detected by finding and loading that library with ctypes,
which fails cleanly, before any fit asks for it.
"""

from __future__ import annotations

import ctypes
import functools
import importlib.util
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

from lib.config.schema import BACKENDS
from lib.errors import FitError

log = logging.getLogger(__name__)

CUDA_LIBRARY = "libRooBatchCompute_CUDA.so"
NO_CUDA_MESSAGE = (
    "this ROOT has no RooFit CUDA support (libRooBatchCompute_CUDA not found); use an LCG *_cuda view, "
    "e.g. source /cvmfs/sft.cern.ch/lcg/views/LCG_106b_cuda/x86_64-el8-gcc11-opt/setup.sh, or --backend cpu"
)


def _library_dirs() -> list[Path]:
    """Directories where RooFit looks for its batch-compute libraries, most specific first.

    The PyPI wheel keeps them in ``ROOT/lib`` inside the package; an LCG view or a ROOT build puts
    the package in ``$ROOTSYS/lib/ROOT`` next to them; a separately built CUDA library (ROOT PR
    15775) is found through ``LD_LIBRARY_PATH``.
    """
    dirs: list[Path] = []
    spec = importlib.util.find_spec("ROOT")
    if spec is not None and spec.origin:
        package = Path(spec.origin).resolve().parent
        dirs += [package / "lib", package.parent]
    if os.environ.get("ROOTSYS"):
        dirs.append(Path(os.environ["ROOTSYS"]) / "lib")
    dirs += [Path(p) for p in os.environ.get("LD_LIBRARY_PATH", "").split(os.pathsep) if p]
    return list(dict.fromkeys(dirs))


@functools.cache
def cuda_library() -> Path | None:
    """Path of a loadable ``libRooBatchCompute_CUDA.so``, or None.

    Loading is tried with ctypes because a library that exists but cannot load (no CUDA driver,
    missing runtime) is just as fatal to RooFit as a missing one.
    """
    for directory in _library_dirs():
        candidate = directory / CUDA_LIBRARY
        if not candidate.is_file():
            continue
        try:
            ctypes.CDLL(str(candidate))
        except OSError as err:
            log.debug("found %s but it does not load: %s", candidate, err)
            continue
        return candidate
    return None


def cuda_available() -> bool:
    """Whether RooFit's CUDA backend can be used in this process (found and loadable)."""
    return cuda_library() is not None


def require_backend(name: str) -> str:
    """Check that the evaluation backend ``name`` can run here, before any fit asks RooFit for it.

    Raises:
        FitError: an unknown backend, or ``cuda`` without a loadable CUDA library.
    """
    if name not in BACKENDS:
        raise FitError(f"unknown RooFit evaluation backend '{name}'; choose one of {', '.join(BACKENDS)}")
    if name == "cuda" and not cuda_available():
        raise FitError(NO_CUDA_MESSAGE)
    return name


def _root_file(*relative: str) -> Path | None:
    """A file of the ROOT that ``import ROOT`` finds: in the wheel's package, or in its installation (``bin``, ``include``)."""
    spec = importlib.util.find_spec("ROOT")
    if spec is None or not spec.origin:
        return None
    package = Path(spec.origin).resolve().parent
    for base in (package, package.parent.parent):
        candidate = base.joinpath(*relative)
        if candidate.is_file():
            return candidate
    return None


@functools.cache
def root_version() -> str:
    """ROOT's release as ROOT reports it (``gROOT.GetVersion()``, e.g. ``6.40.00``); ``unknown`` where ROOT is missing.

    The version of the pip package (``0.1a12`` for the wheel) names the packaging, not ROOT. A
    process that has imported ROOT asks it; any other asks the same installation's
    ``RVersion.h`` (``ROOT_RELEASE``, a file read) or its ``root-config --version`` (the same
    release string, where importing ROOT takes seconds), and imports ROOT only where neither is there.
    """
    if "ROOT" not in sys.modules:
        header = _root_file("include", "RVersion.h")
        if header is not None:
            match = re.search(r'#define\s+ROOT_RELEASE\s+"([^"]+)"', header.read_text(errors="replace"))
            if match:
                return match.group(1)
        script = _root_file("bin", "root-config")
        if script is not None and os.access(script, os.X_OK):
            try:
                done = subprocess.run([str(script), "--version"], capture_output=True, text=True, timeout=30, check=True)
                if done.stdout.strip():
                    return done.stdout.strip()
            except (OSError, subprocess.SubprocessError) as err:
                log.debug("%s --version failed: %s", script, err)
    try:
        from lib.fitting.model import ROOT

        return str(ROOT.gROOT.GetVersion())
    except Exception as err:  # noqa: BLE001 - a version for the provenance must never fail a run
        log.debug("ROOT does not import: %s", err)
        return "unknown"
