"""Z/Higgs peak fits with RooFit. Importing this package does not import ROOT; fitting does.

Public API: ``FitTask`` + ``fit_category`` (one category, retries and gates included),
``cross_check_backend``, the result dataclasses, and the backend probe ``cuda_available`` /
``require_backend``.
"""

from lib.fitting.backend import cuda_available, require_backend
from lib.fitting.result import AttemptRecord, FitCurves, FitResult, ParamResult
from lib.fitting.runner import FitTask, cross_check_backend, fit_category

__all__ = [
    "AttemptRecord",
    "FitCurves",
    "FitResult",
    "FitTask",
    "ParamResult",
    "cross_check_backend",
    "cuda_available",
    "fit_category",
    "require_backend",
]
