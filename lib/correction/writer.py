"""Build, write, load and read back the correctionlib JSON that Stage-1 applies.

The layout is the original's, so the analysis reads our file unchanged: schema v2, one correction
with inputs ``leading_mu_pt``, ``leading_mu_abseta``, ``subleading_mu_abseta``, output
``correction_factor`` and a ``multibinning`` node with ``flow: clamp`` whose content is row-major
(``9*i_pt + 3*i_eta1 + i_eta2`` for the default 36 categories). Unlike the original, a missing or
non-finite factor is an error here, never a silent 1.0, and nothing reaches disk before the file has
been re-validated by both correctionlib loaders and evaluated back at every bin centre.
"""

from __future__ import annotations

import gzip as gzip_module
import hashlib
import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import correctionlib
import correctionlib.schemav2 as cs
import numpy as np
from pydantic import ValidationError

from lib.categories import CategoryScheme
from lib.io.atomic import atomic_path
from lib.errors import CorrectionError

logger = logging.getLogger(__name__)

_INPUTS = (
    ("leading_mu_pt", "Transverse momentum of the leading muon (GeV)"),
    ("leading_mu_abseta", "Absolute pseudorapidity of the leading muon"),
    ("subleading_mu_abseta", "Absolute pseudorapidity of the subleading muon"),
)
_OUTPUT = cs.Variable(
    name="correction_factor", type="real", description="Multiplicative factor for the predicted per-event dimuon mass resolution"
)
# correctionlib's C++ JSON parser can round a decimal 1 ulp away from Python's: an evaluated factor may differ by this many ulp.
ULP_TOLERANCE = 4


def correction_from_grid(values: np.ndarray, edges: Sequence[Sequence[float]], name: str, description: str) -> cs.CorrectionSet:
    """The standard CorrectionSet layout around a (pT, |eta1|, |eta2|) grid of factors, flattened in C order.

    Raises:
        CorrectionError: a value is not finite (its bin named), or the edges are not a valid binning (e.g. the
            importer's ``--pt-edges`` not increasing): correctionlib's schema names the first problem.
    """
    grid = np.asarray(values, dtype=np.float64)
    bad = np.argwhere(~np.isfinite(grid))
    if len(bad):
        raise CorrectionError(f"factor grid holds non-finite values at bin (pt, eta1, eta2) {tuple(bad[0])}")
    try:
        return cs.CorrectionSet(schema_version=2, corrections=[_correction(grid, edges, name, description)])
    except ValidationError as err:
        raise CorrectionError(f"correction '{name}' is invalid: {_first_error(err)}") from err


def _correction(grid: np.ndarray, edges: Sequence[Sequence[float]], name: str, description: str) -> cs.Correction:
    return cs.Correction(
        name=name,
        description=description,
        version=1,
        inputs=[cs.Variable(name=n, type="real", description=d) for n, d in _INPUTS],
        output=_OUTPUT,
        data=cs.MultiBinning(
            nodetype="multibinning",
            inputs=[n for n, _ in _INPUTS],
            edges=[[float(x) for x in e] for e in edges],
            content=[float(x) for x in grid.ravel(order="C")],
            flow="clamp",
        ),
    )


def build_correction(factors: Mapping[str, float], scheme: CategoryScheme, name: str, description: str) -> cs.CorrectionSet:
    """CorrectionSet holding one factor per category of ``scheme``, on the categories' edges.

    Every category must be present: the original wrote 1.0 for a missing one, which silently
    disables the calibration for those events.

    Raises:
        CorrectionError: a category is missing or unknown, or a factor is not finite (named).

    Example:
        >>> from lib.config import load_config
        >>> s = CategoryScheme.from_config(load_config().categories)
        >>> cset = build_correction({n: 1.1 for n in s.names}, s, "c", "test")
        >>> cset.corrections[0].data.edges[0]
        [30.0, 45.0, 52.0, 62.0, 200.0]
    """
    names = scheme.names
    missing = [n for n in names if n not in factors]
    if missing:
        raise CorrectionError(
            f"no calibration factor for categor{'y' if len(missing) == 1 else 'ies'} {', '.join(missing)}; "
            "every category needs a factor (fix or re-fit it, or set step3.failed_fallback)"
        )
    unknown = sorted(set(factors) - set(names))
    if unknown:
        raise CorrectionError(f"factors given for unknown categories {', '.join(unknown)}; valid: {', '.join(names)}")
    for n in names:
        if not math.isfinite(factors[n]):
            raise CorrectionError(f"calibration factor for category {n} is {factors[n]}; a factor must be finite")
    grid = np.array([float(factors[n]) for n in names]).reshape(scheme.n_pt, scheme.n_eta, scheme.n_eta)
    return correction_from_grid(grid, (scheme.pt_edges, scheme.abseta_edges, scheme.abseta_edges), name, description)


def write_correction(cset: cs.CorrectionSet, path: Path, gzip: bool = False) -> list[Path]:
    """Validate ``cset`` by a full round trip, then write it (and with ``gzip`` a ``.gz`` copy) atomically; the paths.

    Raises:
        CorrectionError: the set does not evaluate back to its content, or the file cannot be written.
    """
    text = json.dumps(cset.model_dump(mode="json", exclude_unset=True), indent=4, allow_nan=False) + "\n"
    _validate_text(text, str(path))
    data = text.encode()
    written = [Path(path)]
    atomic_write_bytes(path, data)
    if gzip:
        gz_path = written[0].with_name(written[0].name + ".gz")
        atomic_write_bytes(gz_path, gzip_module.compress(data, mtime=0))
        written.append(gz_path)
    logger.info("wrote correction %s (sha256 %s)", path, hashlib.sha256(data).hexdigest()[:16])
    return written


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` whole, flushed to disk, keeping the replaced file's mode.

    Raises:
        CorrectionError: the directory is missing or not writable.
    """
    try:
        with atomic_path(Path(path), durable=True, keep_mode=True, create_parent=False) as tmp:
            tmp.write_bytes(data)
    except OSError as err:
        raise CorrectionError(f"cannot write {path}: {err.strerror or err}") from err


@dataclass(frozen=True)
class LoadedCorrection:
    """A validated correction file: the pydantic model, the compiled evaluator and the file hash."""

    path: Path
    model: cs.Correction
    evaluator: correctionlib.highlevel.Correction
    sha256: str

    @property
    def name(self) -> str:
        return self.model.name

    def evaluate(self, lead_pt: np.ndarray, lead_abseta: np.ndarray, sublead_abseta: np.ndarray) -> np.ndarray:
        """Factor per event of 1-d arrays; NaN where an input is not finite.

        correctionlib's ``clamp`` maps NaN onto an arbitrary bin, so non-finite inputs are masked
        here rather than given a plausible-looking factor.
        """
        columns = (lead_pt, lead_abseta, sublead_abseta)
        by_name = {n: np.asarray(c, dtype=np.float64) for (n, _), c in zip(_INPUTS, columns)}
        args = [by_name[var.name] for var in self.model.inputs]
        finite = np.isfinite(args[0]) & np.isfinite(args[1]) & np.isfinite(args[2])
        out = np.full(finite.shape, np.nan)
        out[finite] = self.evaluator.evaluate(*(a[finite] for a in args))
        return out

    def factors(self, scheme: CategoryScheme) -> dict[str, float]:
        """Factor per category of ``scheme``, evaluated at the category centres.

        Evaluating (rather than reading the content array) makes the answer independent of the file's
        binning, so files with other edges (imported ROOT maps) compare category by category.
        """
        centres = np.array([scheme.center(i) for i in range(scheme.n_categories)])
        values = self.evaluate(centres[:, 0], centres[:, 1], centres[:, 2])
        return {n: float(v) for n, v in zip(scheme.names, values)}


def load_correction(path: Path, name: str | None = None) -> LoadedCorrection:
    """Load and fully validate a correction file (``.json`` or ``.json.gz``); ``name=None`` takes its only correction.

    Raises:
        CorrectionError: unreadable, not JSON, rejected by the schema or by correctionlib, no such
            correction, or inputs other than the three this tool defines (one line, file named).
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
        text = (gzip_module.decompress(raw) if path.suffix == ".gz" else raw).decode()
    except OSError as err:
        raise CorrectionError(f"cannot read correction file {path}: {err.strerror or err}") from err
    except (UnicodeDecodeError, EOFError) as err:
        raise CorrectionError(f"correction file {path} is not a (gzipped) UTF-8 JSON text") from err
    cset, evaluators = _validate_text(text, str(path))
    matches = [c for c in cset.corrections if name is None or c.name == name]
    if len(matches) != 1:
        found = ", ".join(c.name for c in cset.corrections) or "none"
        if name is None:
            raise CorrectionError(f"{path} holds {len(cset.corrections)} corrections ({found}); name the one to use")
        raise CorrectionError(f"{path} has no correction '{name}' (found: {found})")
    model = matches[0]
    inputs = [(v.name, v.type) for v in model.inputs]
    if sorted(inputs) != sorted((n, "real") for n, _ in _INPUTS):
        expected = ", ".join(n for n, _ in _INPUTS)
        raise CorrectionError(f"correction '{model.name}' in {path} takes inputs {inputs}; expected real {expected}")
    return LoadedCorrection(path, model, evaluators[model.name], hashlib.sha256(raw).hexdigest())


def _validate_text(text: str, where: str) -> tuple[cs.CorrectionSet, correctionlib.highlevel.CorrectionSet]:
    """Parse JSON text with pydantic and the C++ loader and check multibinning bin centres evaluate to content."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise CorrectionError(f"{where} is not valid JSON (line {err.lineno}, column {err.colno}: {err.msg})") from err
    try:
        cset = cs.CorrectionSet.model_validate(data)
    except ValidationError as err:
        raise CorrectionError(f"{where} is not a valid correctionlib schema-v2 file: {_first_error(err)}") from err
    try:
        evaluator = correctionlib.CorrectionSet.from_string(text)
    except RuntimeError as err:
        raise CorrectionError(f"correctionlib refuses {where}: {err}") from err
    for model in cset.corrections:
        if isinstance(model.data, cs.MultiBinning):
            _check_centres(model, evaluator[model.name], where)
    return cset, evaluator


def _check_centres(model: cs.Correction, evaluator: correctionlib.highlevel.Correction, where: str) -> None:
    """Evaluate a top-level MultiBinning of plain numbers at every bin centre and compare with its content."""
    node = model.data
    if not all(isinstance(e, list) for e in node.edges) or not all(isinstance(c, float) for c in node.content):
        return
    if sorted(node.inputs) != sorted(v.name for v in model.inputs):
        return
    axes = [0.5 * (np.asarray(e[:-1], dtype=float) + np.asarray(e[1:], dtype=float)) for e in node.edges]
    by_name = {n: m.ravel() for n, m in zip(node.inputs, np.meshgrid(*axes, indexing="ij"))}
    got = evaluator.evaluate(*(by_name[v.name] for v in model.inputs))
    want = np.asarray(node.content, dtype=float)
    close = np.abs(got - want) <= ULP_TOLERANCE * np.spacing(np.abs(want))
    bad = np.flatnonzero(~(close | (np.isnan(got) & np.isnan(want))))
    if len(bad):
        raise CorrectionError(
            f"{where}: correction '{model.name}' evaluates to {got[bad[0]]} at bin {bad[0]} whose content is {want[bad[0]]}"
        )


def _first_error(err: ValidationError) -> str:
    """One line from a pydantic error: where (without union tags such as ``tagged-union[...]``), what, how many more."""
    errors = err.errors()
    loc = ".".join(str(p) for p in errors[0]["loc"] if "[" not in str(p))
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{loc}: {errors[0]['msg']}{more}"
