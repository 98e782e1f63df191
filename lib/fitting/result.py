"""Fit outcomes as frozen, picklable dataclasses: what a worker process hands back (no ROOT here).

Every RooFit object is turned into plain numbers and numpy arrays inside the runner, so a result
can cross a process or Dask boundary, be written to JSON/CSV and be drawn without PyROOT.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from lib.config.schema import FSR_PARAMETERS


def _finite_or_none(value: float) -> float | None:
    """JSON has no NaN/inf: a non-finite number becomes null."""
    return float(value) if math.isfinite(value) else None


@dataclass(frozen=True)
class ParamResult:
    """One fit parameter after the fit; ``min``/``max`` are None for an unbounded parameter."""

    name: str
    value: float
    error: float
    min: float | None
    max: float | None
    constant: bool
    at_limit: bool

    def to_dict(self) -> dict[str, object]:
        return {
            "val": _finite_or_none(self.value),
            "err": _finite_or_none(self.error),
            "min": self.min,
            "max": self.max,
            "constant": self.constant,
            "at_limit": self.at_limit,
        }


@dataclass(frozen=True)
class AttemptRecord:
    """One configured try (nominal or a retry step) and the gate failures it produced.

    ``status`` is the overall status of the second (Hesse) ``fitTo``; ``status_history`` keeps each
    minimiser step of that fit, ``status_first`` the first fit's status, for diagnosis only.
    """

    label: str
    status: int
    status_first: int
    status_history: tuple[tuple[str, int], ...]
    cov_qual: int
    edm: float
    min_nll: float
    sigma: float
    sigma_err: float
    chi2_ndf: float
    n_float: int
    n_events: int
    sum_weights: float
    params: tuple[ParamResult, ...]
    failures: tuple[str, ...]
    seconds: float
    n_bins: int = 0  # bins of the chi2 plot, to turn chi2/NDF into a per-bin mismodelling estimate
    fixed_undetermined: tuple[str, ...] = ()  # fixed after the first fitTo or the Hesse fit: the data could not determine them
    # The resolution the factor uses (the spec's ``width``: effective or the core sigma) and its error, GeV.
    width: float = math.nan
    width_err: float = math.nan

    @property
    def passed(self) -> bool:
        return not self.failures

    def param(self, name: str) -> ParamResult:
        """The parameter called ``name`` (model names without the category suffix)."""
        for p in self.params:
            if p.name == name:
                return p
        raise KeyError(f"attempt '{self.label}' has no parameter '{name}'; it has {[p.name for p in self.params]}")

    def to_dict(self) -> dict[str, object]:
        return {
            "label": self.label,
            "status": self.status,
            "status_first": self.status_first,
            "status_history": [list(step) for step in self.status_history],
            "cov_qual": self.cov_qual,
            "edm": _finite_or_none(self.edm),
            "min_nll": _finite_or_none(self.min_nll),
            "sigma": _finite_or_none(self.sigma),
            "sigma_err": _finite_or_none(self.sigma_err),
            "width": _finite_or_none(self.width),
            "width_err": _finite_or_none(self.width_err),
            "chi2_ndf": _finite_or_none(self.chi2_ndf),
            "n_float": self.n_float,
            "n_events": self.n_events,
            "sum_weights": _finite_or_none(self.sum_weights),
            "failures": list(self.failures),
            "fixed_undetermined": list(self.fixed_undetermined),
            "seconds": round(self.seconds, 4),
        }


@dataclass(frozen=True, eq=False)
class FitCurves:
    """Everything a fit plot needs, in events per plot bin (``eq=False``: arrays do not compare).

    Data points sit at bin centres with asymmetric errors (Poisson for counts, sqrt(sum w^2) for
    weighted data, as RooFit plots them); the curves are RooFit's own, resampled onto ``curve_x``;
    ``pulls`` are (data - curve averaged over the bin) / (data error on the curve's side), the terms
    of RooFit's chi2/NDF; NaN where that error is zero (an empty bin of weighted data).
    """

    edges: np.ndarray
    counts: np.ndarray
    err_low: np.ndarray
    err_high: np.ndarray
    curve_x: np.ndarray
    total: np.ndarray
    signal: np.ndarray
    background: np.ndarray | None
    pulls: np.ndarray


@dataclass(frozen=True)
class FitResult:
    """Outcome of one category: the attempts made and the one ``chosen``, the accepted attempt or the best failed one.

    ``fit_val``/``fit_err`` are the resolution the chosen attempt reports and its error (GeV): the
    DCB's effective width or its core sigma, as ``width_definition`` says. When ``ok`` is False the
    numbers are still those of the best attempt, so a human can look, but ``reason`` says why they
    must not be used. ``seconds`` is the whole category's time (every attempt and the bookkeeping).
    """

    name: str
    chosen: AttemptRecord
    attempts: tuple[AttemptRecord, ...]
    weighted: bool
    peak: str
    backend: str
    curves: FitCurves | None = field(default=None, compare=False, repr=False)
    seconds: float = 0.0
    width_definition: str = "core"

    @property
    def ok(self) -> bool:
        return self.chosen.passed

    @property
    def reason(self) -> str:
        """Empty when ``ok``; else why the best attempt must not be used."""
        chosen = self.chosen
        return "" if chosen.passed else f"no attempt passed (best '{chosen.label}'): " + "; ".join(chosen.failures)

    @property
    def quality(self) -> str:
        return "ok" if self.ok else "failed"

    @property
    def fit_val(self) -> float:
        return self.chosen.width

    @property
    def fit_err(self) -> float:
        return self.chosen.width_err

    def to_dict(self) -> dict[str, object]:
        """JSON-ready record for ``fit_params.json``: the chosen attempt's numbers first (no curves, non-finite numbers as null)."""
        chosen = self.chosen.to_dict()
        shared = ("status", "cov_qual", "edm", "min_nll", "chi2_ndf", "n_float", "n_events", "sum_weights")
        return {
            "cat_name": self.name,
            "quality": self.quality,
            "reason": self.reason,
            "label": chosen["label"],
            "fit_val": chosen["width"],
            "fit_err": chosen["width_err"],
            **{key: chosen[key] for key in shared},
            "weighted": self.weighted,
            "peak": self.peak,
            "backend": self.backend,
            "width_definition": self.width_definition,
            "params": {p.name: p.to_dict() for p in self.chosen.params},
            "attempts": [a.to_dict() for a in self.attempts],
            "seconds": round(self.seconds, 4),
        }

    def summary_row(self) -> FitRow:
        """Its row of ``fit_results.csv``; with a radiation component in the model, its fraction and scale too."""
        chosen = self.chosen
        radiation = {
            column: getattr(chosen.param(name), attribute)
            for name in FSR_PARAMETERS if any(p.name == name for p in chosen.params)
            for column, attribute in ((name, "value"), (f"{name}_err", "error"))
        }  # fmt: skip
        return FitRow(
            self.name, chosen.width, chosen.width_err, chosen.status, chosen.cov_qual, self.quality, self.reason, chosen.chi2_ndf,
            chosen.n_events, chosen.sum_weights, len(self.attempts), chosen.label, **radiation,
        )  # fmt: skip


@dataclass(frozen=True)
class FitRow:
    """One row of ``fit_results.csv``: the table's columns, in order, declared here once.

    Step 3 reads them back typed, with ``lib.io.tables.read_rows``.
    """

    cat_name: str
    fit_val: float
    fit_err: float
    status: int
    cov_qual: int
    quality: str
    reason: str
    chi2_ndf: float
    n_events: int
    sum_weights: float
    attempts: int
    label: str
    # The radiation component's parameters (``fit.fsr`` other than none); columns only where a fit has them.
    fsr_fraction: float = math.nan
    fsr_fraction_err: float = math.nan
    fsr_scale: float = math.nan
    fsr_scale_err: float = math.nan

    @classmethod
    def not_fitted(cls, name: str, reason: str, n_events: int) -> FitRow:
        """The row of a category whose fit never came back (a crashed worker, too few events)."""
        nan = float("nan")
        return cls(name, nan, nan, -1, -1, "failed", reason, nan, n_events, nan, 0, "")

    def row(self) -> dict[str, object]:
        """The CSV columns: the radiation's only where the fit had a radiation component."""
        row = asdict(self)
        if all(math.isnan(row[column]) for column in FSR_COLUMNS):
            for column in FSR_COLUMNS:
                del row[column]
        return row


FSR_COLUMNS = ("fsr_fraction", "fsr_fraction_err", "fsr_scale", "fsr_scale_err")
