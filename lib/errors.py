"""One exception family: the CLI turns any of these into a one-line message and exit code 1."""

from __future__ import annotations


class CalibrationError(Exception):
    """Raised for any expected failure; the message is one line saying what, where and how to fix."""


class ConfigError(CalibrationError):
    """Raised when the YAML configuration is malformed or names an unknown key or parameter."""


class InputError(CalibrationError):
    """Raised when input files are missing, unreadable or lack a required column."""


class FitError(CalibrationError):
    """Raised when fitting cannot proceed at all (not for a single failed category)."""


class CorrectionError(CalibrationError):
    """Raised when a correction JSON is invalid, implausible or incomplete."""


class GateFailure(CalibrationError):
    """Raised when a quality gate refuses a result that would otherwise be shipped."""


class ExecutionError(CalibrationError):
    """Raised when tasks cannot run: their worker processes died again after a retry, or the Dask scheduler was lost.

    A machine's failure, never a physics result: no task lost this way becomes a "not fitted" row or a fallback.
    """
