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

__all__ = [
    "INPUT_NAMES",
    "OUTPUT_NAME",
    "ULP_TOLERANCE",
    "LoadedCorrection",
    "atomic_write_bytes",
    "build_correction",
    "correction_from_grid",
    "load_correction",
    "read_factors",
    "write_correction",
]

logger = logging.getLogger(__name__)

_INPUTS = (
    ("leading_mu_pt", "Transverse momentum of the leading muon (GeV)"),
    ("leading_mu_abseta", "Absolute pseudorapidity of the leading muon"),
    ("subleading_mu_abseta", "Absolute pseudorapidity of the subleading muon"),
)
INPUT_NAMES: tuple[str, ...] = tuple(name for name, _ in _INPUTS)
OUTPUT_NAME = "correction_factor"
ULP_TOLERANCE = 4
"""Units in the last place by which an evaluated factor may differ from the JSON text's value."""
_OUTPUT_DESCRIPTION = "Multiplicative factor for the predicted per-event dimuon mass resolution"


def correction_from_grid(
    values: np.ndarray, edges: Sequence[Sequence[float]], name: str, description: str
) -> cs.CorrectionSet:
    """Wrap a (pT, |eta1|, |eta2|) grid of factors into the standard CorrectionSet layout.

    Args:
        values: factors with shape ``(n_pt, n_eta1, n_eta2)``; flattened in C order, which is the
            row-major order of the MultiBinning content.
        edges: bin edges of the three inputs, in input order.
        name: correction name looked up by Stage-1 (``step3.correction_name``).
        description: meaning and provenance, stored in the file for whoever opens it later.

    Returns:
        The schema-v2 model (validated by pydantic on construction).

    Raises:
        CorrectionError: shape and edges disagree, or a value is not finite.
    """
    grid = np.asarray(values, dtype=np.float64)
    shape = tuple(len(e) - 1 for e in edges)
    if len(edges) != len(INPUT_NAMES) or grid.shape != shape:
        raise CorrectionError(f"factor grid of shape {grid.shape} does not match edges giving {shape}")
    bad = np.argwhere(~np.isfinite(grid))
    if len(bad):
        raise CorrectionError(f"factor grid holds non-finite values at bin (pt, eta1, eta2) {tuple(bad[0])}")
    try:
        correction = cs.Correction(
            name=name,
            description=description,
            version=1,
            inputs=[cs.Variable(name=n, type="real", description=d) for n, d in _INPUTS],
            output=cs.Variable(name=OUTPUT_NAME, type="real", description=_OUTPUT_DESCRIPTION),
            data=cs.MultiBinning(
                nodetype="multibinning",
                inputs=list(INPUT_NAMES),
                edges=[[float(x) for x in e] for e in edges],
                content=[float(x) for x in grid.ravel(order="C")],
                flow="clamp",
            ),
        )
        return cs.CorrectionSet(schema_version=2, corrections=[correction])
    except ValidationError as err:
        raise CorrectionError(f"correction '{name}' is invalid: {_first_error(err)}") from err


def build_correction(
    factors: Mapping[str, float], scheme: CategoryScheme, name: str, description: str
) -> cs.CorrectionSet:
    """CorrectionSet holding one factor per category of ``scheme``.

    Every category must be present: the original wrote 1.0 for a missing one, which silently
    disables the calibration for those events.

    Args:
        factors: category name (``30-45_OB``) to calibration factor.
        scheme: the categories; their edges become the MultiBinning edges.
        name: correction name (``step3.correction_name``).
        description: meaning and provenance (config hash, inputs, date), stored in the file.

    Returns:
        The schema-v2 model, ready for :func:`write_correction`.

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
    values = []
    for n in names:
        value = float(factors[n])
        if not math.isfinite(value):
            raise CorrectionError(f"calibration factor for category {n} is {value}; a factor must be finite")
        values.append(value)
    grid = np.array(values).reshape(scheme.n_pt, scheme.n_eta, scheme.n_eta)
    return correction_from_grid(grid, (scheme.pt_edges, scheme.abseta_edges, scheme.abseta_edges), name, description)


def write_correction(cset: cs.CorrectionSet, path: Path, gzip: bool = False) -> list[Path]:
    """Validate a CorrectionSet by a full round trip, then write it atomically.

    The text is re-parsed by pydantic and by correctionlib's C++ loader and every multibinning
    bin centre is evaluated back against its content before anything is written, so a file on disk
    is always one that Stage-1 can load and that says what was meant.

    Args:
        cset: the model, as built by :func:`build_correction`.
        path: destination JSON; its directory must exist.
        gzip: also write ``<path>.gz`` with the same content.

    Returns:
        The paths written (JSON first).

    Raises:
        CorrectionError: the set does not validate or does not evaluate back to its content, or
            the file cannot be written.
    """
    path = Path(path)
    try:
        text = json.dumps(cset.model_dump(mode="json", exclude_unset=True), indent=4, allow_nan=False) + "\n"
    except ValueError as err:
        raise CorrectionError(f"correction for {path} holds a non-finite number: {err}") from err
    _validate_text(text, str(path))
    data = text.encode()
    written = [path]
    atomic_write_bytes(path, data)
    if gzip:
        gz_path = path.with_name(path.name + ".gz")
        atomic_write_bytes(gz_path, gzip_module.compress(data, mtime=0))
        written.append(gz_path)
    logger.info("wrote correction %s (sha256 %s)", path, hashlib.sha256(data).hexdigest()[:16])
    return written


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` whole (``lib.io.atomic``), flushed to disk, keeping the replaced file's mode.

    Raises:
        CorrectionError: the directory is missing or not writable.
    """
    path = Path(path)
    try:
        with atomic_path(path, durable=True, keep_mode=True, create_parent=False) as tmp:
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
        """Vectorised factor per event; NaN where an input is not finite.

        correctionlib's ``clamp`` maps NaN onto an arbitrary bin, so non-finite inputs are masked
        here rather than given a plausible-looking factor.
        """
        by_name = {
            "leading_mu_pt": np.asarray(lead_pt, dtype=np.float64),
            "leading_mu_abseta": np.asarray(lead_abseta, dtype=np.float64),
            "subleading_mu_abseta": np.asarray(sublead_abseta, dtype=np.float64),
        }
        args = [np.atleast_1d(a).ravel() for a in np.broadcast_arrays(*(by_name[var.name] for var in self.model.inputs))]
        finite = np.isfinite(args[0]) & np.isfinite(args[1]) & np.isfinite(args[2])
        out = np.full(finite.shape, np.nan)
        if finite.any():
            out[finite] = self.evaluator.evaluate(*(a[finite] for a in args))
        return out.reshape(np.broadcast_shapes(*(np.shape(a) for a in by_name.values())))

    def factors(self, scheme: CategoryScheme) -> dict[str, float]:
        """Factor per category of ``scheme``, evaluated at the category centres."""
        centres = np.array([scheme.center(i) for i in range(scheme.n_categories)])
        values = self.evaluate(centres[:, 0], centres[:, 1], centres[:, 2])
        return {n: float(v) for n, v in zip(scheme.names, values)}


def load_correction(path: Path, name: str | None = None) -> LoadedCorrection:
    """Load and fully validate a correction file (``.json`` or ``.json.gz``).

    Args:
        path: the file.
        name: correction to take; ``None`` takes the only one in the file.

    Returns:
        The validated correction with its evaluator.

    Raises:
        CorrectionError: unreadable, not JSON, rejected by the schema or by correctionlib, no such
            correction, or inputs other than the three this tool defines (one line, file named).
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
        if path.suffix == ".gz":
            raw = gzip_module.decompress(raw)
        text = raw.decode()
    except OSError as err:
        raise CorrectionError(f"cannot read correction file {path}: {err.strerror or err}") from err
    except (UnicodeDecodeError, EOFError) as err:
        raise CorrectionError(f"correction file {path} is not a (gzipped) UTF-8 JSON text") from err
    cset, evaluators = _validate_text(text, str(path))
    if name is None:
        if len(cset.corrections) != 1:
            found = ", ".join(c.name for c in cset.corrections) or "none"
            raise CorrectionError(f"{path} holds {len(cset.corrections)} corrections ({found}); name the one to use")
        model = cset.corrections[0]
    else:
        matches = [c for c in cset.corrections if c.name == name]
        if not matches:
            found = ", ".join(c.name for c in cset.corrections) or "none"
            raise CorrectionError(f"{path} has no correction '{name}' (found: {found})")
        model = matches[0]
    inputs = [(v.name, v.type) for v in model.inputs]
    if sorted(inputs) != sorted((n, "real") for n in INPUT_NAMES):
        raise CorrectionError(
            f"correction '{model.name}' in {path} takes inputs {inputs}; expected real {', '.join(INPUT_NAMES)}"
        )
    return LoadedCorrection(path, model, evaluators[model.name], hashlib.sha256(raw).hexdigest())


def read_factors(path: Path, scheme: CategoryScheme, name: str | None = None) -> dict[str, float]:
    """Factor per category, evaluated at each category centre; works for the original's files too.

    Evaluating (rather than reading the content array) makes the answer independent of the file's
    binning, so files with other edges (imported ROOT maps) compare category by category.

    Raises:
        CorrectionError: the file does not load or validate (see :func:`load_correction`).
    """
    return load_correction(path, name).factors(scheme)


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
    """Evaluate a top-level MultiBinning at every bin centre and compare with its content."""
    node = model.data
    if not all(isinstance(e, list) for e in node.edges) or not all(isinstance(c, float) for c in node.content):
        return
    if sorted(node.inputs) != sorted(v.name for v in model.inputs):
        return
    axes = [0.5 * (np.asarray(e[:-1], dtype=float) + np.asarray(e[1:], dtype=float)) for e in node.edges]
    mesh = np.meshgrid(*axes, indexing="ij")
    by_name = {n: m.ravel() for n, m in zip(node.inputs, mesh)}
    got = evaluator.evaluate(*(by_name[v.name] for v in model.inputs))
    want = np.asarray(node.content, dtype=float)
    # correctionlib's C++ JSON parser can round a decimal 1 ulp away from Python's: allow a few ulp.
    close = np.abs(got - want) <= ULP_TOLERANCE * np.spacing(np.abs(want))
    bad = np.flatnonzero(~(close | (np.isnan(got) & np.isnan(want))))
    if len(bad):
        raise CorrectionError(
            f"{where}: correction '{model.name}' evaluates to {got[bad[0]]} at bin {bad[0]} whose content is {want[bad[0]]}"
        )


def _first_error(err: ValidationError) -> str:
    """One line from a pydantic error: where, what, and how many more."""
    errors = err.errors()
    first = errors[0]
    # Drop pydantic's internal union tags ("tagged-union[...]", "function-after[...]") from the path.
    loc = ".".join(str(p) for p in first["loc"] if "[" not in str(p))
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{loc}: {first['msg']}{more}"
