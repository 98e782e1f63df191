"""Install a correction JSON into the analysis: copy it and point the file list at it.

The one entry ``BS_res_calib_path.<year>.<Data|MC>`` of ``configs/parameters/correction_filelist.yaml``
is changed through ruamel.yaml's round trip, which keeps the rest of that file as it was (comments,
quoting, key order, blank lines, and the indentation of a file that indents alike throughout), so
its owners review the change by diff. The edit is checked by re-parsing: the new file must load to
the old content with exactly that one value changed, otherwise nothing is written.
"""

from __future__ import annotations

import io
import logging
import re
from datetime import date
from pathlib import Path
from typing import Any

import yaml
from ruamel.yaml import YAML, YAMLError
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.error import CommentMark
from ruamel.yaml.scalarstring import DoubleQuotedScalarString, ScalarString
from ruamel.yaml.tokens import CommentToken
from ruamel.yaml.util import load_yaml_guess_indent

from lib.config import Config
from lib.correction.auditor import audit_correction
from lib.correction.writer import atomic_write_bytes, load_correction
from lib.errors import ConfigError, CorrectionError

logger = logging.getLogger(__name__)

FILELIST = Path("configs/parameters/correction_filelist.yaml")
INSTALL_DIR = Path("data/res_calib")
TOP_KEY = "BS_res_calib_path"
# Spaces between an entry's value and the comment ``install`` writes after it.
_COMMENT_GAP = 2


def install_correction(json_path: Path, year: int | str, is_mc: bool, repo_root: Path, config: Config, force: bool = False) -> Path:
    """Audit a correction, copy it into ``data/res_calib/`` of ``repo_root`` and register it in the file list; the copy.

    What Stage-1 reads for every event of a year must not be a failed fit or another sample's file,
    so installing refuses (unless ``force``: it warns) a file whose audit flags a category (with
    ``config``'s categories and ``step3`` thresholds), or whose name or description says another
    year or Data/MC than asked. The entry's trailing comment, which
    described the file being replaced, is rewritten.

    Raises:
        CorrectionError: the JSON does not load or validate, cannot be copied, or is refused (one
            line naming the categories or the mismatch, and ``--force``).
        ConfigError: the file list cannot be read, or the entry cannot be edited safely
            (e.g. the year holds a scalar instead of a Data/MC mapping).
    """
    json_path, repo_root = Path(json_path), Path(repo_root)
    kind = "MC" if is_mc else "Data"
    comment = _refuse_or_warn(json_path, str(year), kind, config, force)
    target = repo_root / INSTALL_DIR / json_path.name
    target.parent.mkdir(parents=True, exist_ok=True)
    if not (target.exists() and target.resolve() == json_path.resolve()):
        atomic_write_bytes(target, json_path.read_bytes())
    filelist = repo_root / FILELIST
    try:
        text = filelist.read_bytes().decode() if filelist.exists() else ""
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"cannot read {filelist}: {err}") from err
    value = (INSTALL_DIR / json_path.name).as_posix()
    new_text = set_filelist_entry(text, year, kind, value, where=str(filelist), comment=comment)
    if new_text != text:
        filelist.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(filelist, new_text.encode())
    logger.info("installed %s; %s.%s.%s = %s in %s", target, TOP_KEY, year, kind, value, filelist)
    return target


def _refuse_or_warn(json_path: Path, year: str, kind: str, config: Config, force: bool) -> str:
    """Refuse (unless ``force``: warn) a file that fails its audit or names another sample; the entry's new comment."""
    loaded = load_correction(json_path)
    problems = _sample_mismatches(json_path.name, loaded.model.description or "", year, kind)
    report = audit_correction(json_path, config)
    problems += [f"{c.name} = {c.value:.4g} ({'; '.join(c.reasons)})" for c in report.categories if c.reasons]
    if problems and not force:
        raise CorrectionError(f"refusing to install {json_path} as {year} {kind}: {'; '.join(problems)} (--force installs it anyway)")
    for problem in problems:
        logger.warning("installing %s despite: %s", json_path.name, problem)
    verdict = "audit OK" if report.ok else f"audit flags {', '.join(report.flagged)} (installed with --force)"
    return f"{json_path.name}, installed {date.today().isoformat()}: {verdict}"


_YEAR = re.compile(r"(?<![0-9])(20[12][0-9](?:pre|post)?(?:EE|VFP|BPix)?)(?![0-9])")


def _sample_mismatches(file_name: str, description: str, year: str, kind: str) -> list[str]:
    """What in the file's name or description says another year, or Data for MC (or the reverse)."""
    problems = []
    for where, text in (("name", file_name), ("description", description)):
        years = set(_YEAR.findall(text))
        if years and year not in years:
            problems.append(f"its {where} says year {', '.join(sorted(years))}")
        tokens = set(re.split(r"[^A-Za-z]+", text))
        other = "Data" if kind == "MC" else "MC"
        if other in tokens and kind not in tokens:
            problems.append(f"its {where} says {other}")
    return problems


def set_filelist_entry(
    text: str, year: int | str, kind: str, value: str, where: str = "file list", comment: str | None = None
) -> str:
    """``text`` with ``BS_res_calib_path.<year>.<kind>`` set to ``value``, all else unchanged.

    Missing keys are added at the end of their parent block; a year matches quoted and unquoted
    (``'2018'``, ``2018``). The entry's quoting and trailing comment are kept, or the comment is
    replaced by ``# <comment>`` when one is given.

    Raises:
        ConfigError: (``where`` named) invalid YAML, duplicate keys, flow-style or scalar parents,
            a non-scalar value, or an edit that would change anything else.

    Example:
        >>> print(set_filelist_entry("x: 1  # keep\\nBS_res_calib_path:\\n  '2018':\\n    Data: old.json  # note\\n", 2018, "Data", "new.json"), end="")
        x: 1  # keep
        BS_res_calib_path:
          '2018':
            Data: new.json  # note
    """
    eol = "\r\n" if "\r\n" in text else "\n"
    source = text.replace("\r\n", "\n")
    round_trip = YAML()
    round_trip.preserve_quotes = True
    round_trip.width = 4096  # a long path stays on its line
    try:
        doc, indent, sequence_offset = load_yaml_guess_indent(source, yaml=round_trip)
        before = yaml.safe_load(source)
    except (YAMLError, yaml.YAMLError) as err:
        raise ConfigError(f"{where} is not valid YAML: {' '.join(str(err).split())}") from err
    doc = CommentedMap() if doc is None else doc
    if not isinstance(doc, CommentedMap):
        raise ConfigError(f"{where} must be a mapping at top level")
    # The guess is of the block sequences where the file has any, of the mappings otherwise.
    round_trip.indent(mapping=_mapping_indent(doc) or 2, sequence=indent or 2, offset=sequence_offset or 0)
    path = (TOP_KEY, str(year), kind)
    replaced = _set_entry(doc, path, value, where)
    if replaced is not None:
        node, key, previous = replaced
        _place_comment(node, key, previous, source.splitlines()[node.lc.key(key)[0]], round_trip, comment)
    buffer = io.StringIO()
    round_trip.dump(doc, buffer)
    new_text = buffer.getvalue().replace("\n", eol)
    _check_only_change(before or {}, new_text, path, value, where)
    return new_text


def _set_entry(doc: CommentedMap, path: tuple[str, ...], value: str, where: str) -> tuple[CommentedMap, object, object] | None:
    """Walk ``path`` down ``doc``: set its last key to ``value`` (quoting kept), or add what is missing.

    Returns the mapping, key and previous value of a replaced entry (its comment is the caller's to
    place), None where the entry was added.
    """
    node = doc
    for depth, key in enumerate(path):
        found = next((k for k in node if str(k) == key), None)
        if found is None:
            _append(node, path[depth:], value)
            return None
        child = node[found]
        if depth == len(path) - 1:
            if isinstance(child, (dict, list)):
                raise ConfigError(f"{where}: '{'.'.join(path)}' holds a nested block, not a file path")
            node[found] = type(child)(value) if isinstance(child, ScalarString) else value
            return node, found, child
        elif not isinstance(child, CommentedMap) or child.fa.flow_style():
            shown = "a flow-style mapping" if isinstance(child, CommentedMap) else f"'{child}'"
            raise ConfigError(
                f"{where}: '{'.'.join(path[: depth + 1])}' is {shown}, not a block mapping (one key per line) "
                f"that could hold '{path[depth + 1]}'; rewrite it in block style and retry"
            )
        node = child


def _mapping_indent(node: CommentedMap) -> int | None:
    """How far the file indents a block mapping below its key (the first nested one), None where it nests none."""
    nested = [(key, child) for key, child in node.items() if isinstance(child, CommentedMap) and child]
    for key, child in nested:
        if not child.fa.flow_style():
            return child.lc.col - node.lc.key(key)[1]
    return next((indent for _, child in nested if (indent := _mapping_indent(child))), None)


def _append(node: CommentedMap, keys: tuple[str, ...], value: str) -> None:
    """Add ``keys[0]: {keys[1]: ... value}`` as the last entry of ``node``.

    The blank lines and comments that followed the block's last line (ruamel.yaml keeps them after
    the end-of-line comment of its deepest last entry) move below the new entry, so they still
    separate the block from the next one.
    """
    inner: object = value
    for key in reversed(keys[1:]):
        inner = CommentedMap([(_new_key(key), inner)])
    tail = ""
    if node:
        last_map, last_key = _deepest_last(node)
        token = _eol_comment(last_map, last_key)
        if token is not None and "\n" in token.value:
            own, tail = token.value.split("\n", 1)
            last_map.ca.items[last_key][2] = CommentToken(own + "\n", CommentMark(token.column)) if own else None
    node[_new_key(keys[0])] = inner
    if tail:
        last_map, last_key = _deepest_last(node)
        last_map.ca.items[last_key] = [None, None, CommentToken("\n" + tail, CommentMark(0)), None]


def _deepest_last(node: CommentedMap) -> tuple[CommentedMap, Any]:
    """The mapping and key of the block's last line."""
    key = list(node)[-1]
    child = node[key]
    return _deepest_last(child) if isinstance(child, CommentedMap) and child else (node, key)


def _eol_comment(node: CommentedMap, key: Any) -> CommentToken | None:
    """What ruamel.yaml keeps after the entry's value: its own comment and the lines below up to the next entry."""
    items = node.ca.items.get(key)
    return items[2] if items and len(items) > 2 else None


def _place_comment(node: CommentedMap, key: Any, old_value: object, line: str, round_trip: YAML, comment: str | None) -> None:
    """Put the entry's end-of-line comment as far after its new value as it was in ``line`` (the file's), or ``comment`` there."""
    token = _eol_comment(node, key)
    own, tail = token.value.split("\n", 1) if token is not None and "\n" in token.value else ("", "")
    before_comment = line[: token.column] if token is not None else line
    if comment is not None:
        own, gap = f"# {comment}", _COMMENT_GAP
    elif own:
        gap = len(before_comment) - len(before_comment.rstrip())
    else:
        return
    buffer = io.StringIO()
    round_trip.dump({"k": node[key]}, buffer)
    width = len(buffer.getvalue().rstrip("\n")) - len("k: ")  # the new value as written, quotes included
    start = node.lc.value(key)[1] if old_value is not None else len(before_comment.rstrip()) + 1
    node.ca.items[key] = [None, None, CommentToken(f"{own}\n{tail}", CommentMark(start + width + gap)), None]


def _new_key(key: str) -> Any:
    """A new key: plain where YAML reads it back as this text (``2018``, ``2022preEE``), else quoted."""
    try:
        loaded = yaml.safe_load(f"{key}: 1")
    except yaml.YAMLError:
        loaded = None
    if isinstance(loaded, dict) and [str(k) for k in loaded] == [key]:
        return next(iter(loaded))
    return DoubleQuotedScalarString(key)


def _check_only_change(before: dict[str, Any], new_text: str, path: tuple[str, ...], value: str, where: str) -> None:
    """Re-parse the edited text: it must equal the old content (keys as text) with only ``path`` set to ``value``."""
    try:
        after = yaml.safe_load(new_text)
    except yaml.YAMLError as err:
        raise ConfigError(f"{where}: editing {'.'.join(path)} would produce invalid YAML; file left untouched") from err
    expected = node = _normalise(before)
    for key in path[:-1]:
        if not isinstance(node.get(key), dict):
            node[key] = {}
        node = node[key]
    node[path[-1]] = value
    if _normalise(after) != expected:
        raise ConfigError(f"{where}: editing {'.'.join(path)} would change other entries; file left untouched, edit it by hand")


def _normalise(node: Any) -> Any:
    """A copy with mapping keys as text, so ``2018`` and ``'2018'`` compare equal."""
    if isinstance(node, dict):
        return {str(k): _normalise(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_normalise(v) for v in node]
    return node
