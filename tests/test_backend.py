"""Evaluation-backend probe: CUDA is detected by loading its library, never by asking RooFit."""

from __future__ import annotations

import ctypes.util
import shutil
from pathlib import Path

import numpy as np
import pytest

from lib.config import Config, resolve_fit_spec
from lib.errors import FitError
from lib.fitting import backend
from lib.fitting.backend import NO_CUDA_MESSAGE, cuda_available, require_backend


@pytest.fixture
def fresh_probe(monkeypatch):
    """Clear the cached probe around a test that changes the library search path."""
    backend.cuda_library.cache_clear()
    yield monkeypatch
    backend.cuda_library.cache_clear()


def test_this_root_has_no_cuda():
    assert cuda_available() is False


def test_cuda_request_fails_with_one_clear_line():
    with pytest.raises(FitError) as err:
        require_backend("cuda")
    assert str(err.value) == NO_CUDA_MESSAGE
    assert "libRooBatchCompute_CUDA not found" in NO_CUDA_MESSAGE and "\n" not in NO_CUDA_MESSAGE
    assert "LCG_106b_cuda" in NO_CUDA_MESSAGE and "--backend cpu" in NO_CUDA_MESSAGE


@pytest.mark.parametrize("name", ["cpu", "legacy", "codegen"])
def test_cpu_backends_are_accepted(name: str):
    assert require_backend(name) == name


def test_unknown_backend_is_refused():
    with pytest.raises(FitError, match="unknown RooFit evaluation backend 'gpu'"):
        require_backend("gpu")


def test_unloadable_library_is_not_cuda(fresh_probe, tmp_path: Path):
    (tmp_path / backend.CUDA_LIBRARY).write_text("not an ELF file")
    fresh_probe.setenv("LD_LIBRARY_PATH", str(tmp_path))
    assert cuda_available() is False


def test_loadable_library_on_ld_library_path_is_found(fresh_probe, tmp_path: Path):
    """A separately built CUDA library (ROOT PR 15775) is picked up from LD_LIBRARY_PATH."""
    libm = ctypes.util.find_library("m")
    source = next((p for d in ("/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64", "/usr/lib64")
                   if libm and (p := Path(d) / libm).is_file()), None)  # fmt: skip
    if source is None:
        pytest.skip("no libm shared object to stand in for the CUDA library")
    shutil.copy(source, tmp_path / backend.CUDA_LIBRARY)
    fresh_probe.setenv("LD_LIBRARY_PATH", str(tmp_path))
    assert backend.cuda_library() == tmp_path / backend.CUDA_LIBRARY


def test_cuda_fit_is_refused_before_roofit_is_touched(config: Config):
    """Asking RooFit for CUDA without the library segfaults: fit_category must stop first."""
    from lib.fitting.runner import fit_category
    from lib.fitting.task import FitEvents, FitTask

    spec = resolve_fit_spec(config, "30-45_BB", binned=True, backend="cuda")
    task = FitTask("30-45_BB", FitEvents(np.full(100, 91.0, dtype=np.float32)), spec, (), 1.3, config.fit.quality)
    with pytest.raises(FitError, match="no RooFit CUDA support"):
        fit_category(task)
