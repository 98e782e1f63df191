"""Install a correction JSON into the analysis: copy it and point the file list at it.

Users of the original copied the JSON into ``data/res_calib/`` and edited
``configs/parameters/correction_filelist.yaml`` by hand. Here the one entry
``BS_res_calib_path.<year>.<Data|MC>`` is changed by a line-based edit that leaves every other
byte of that file as it was (comments, quoting, key order, other keys): a YAML dump would
reformat the whole file, which its owners review by diff. The edit is checked by re-parsing: the
new file must load to the old content with exactly that one value changed, otherwise nothing is
written.
"""

from __future__ import annotations

import copy
import json
import logging
import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import yaml

from lib.config import Config
from lib.correction.writer import atomic_write_bytes, load_correction
from lib.errors import ConfigError, CorrectionError

__all__ = ["FILELIST", "INSTALL_DIR", "TOP_KEY", "install_correction", "set_filelist_entry"]

logger = logging.getLogger(__name__)

FILELIST = Path("configs/parameters/correction_filelist.yaml")
INSTALL_DIR = Path("data/res_calib")
TOP_KEY = "BS_res_calib_path"

# A block-mapping key line: indent, key (plain or quoted), colon, and whatever follows it.
_KEY_LINE = re.compile(
    r"""^(?P<indent>[ ]*)(?P<key>"(?:[^"\\]|\\.)*"|'(?:[^']|'')*'|[^\s#'"{}\[\]&*!|>%@`,-][^#]*?|-[^\s#][^#]*?)"""
    r"""[ \t]*:(?=[ \t]|$)(?P<rest>.*)$"""
)
_DEFAULT_STEP = 2


def install_correction(
    json_path: Path, year: int | str, is_mc: bool, repo_root: Path, config: Config | None = None, force: bool = False
) -> Path:
    """Audit a correction, copy it into ``data/res_calib/`` and register it in the file list.

    What Stage-1 reads for every event of a year must not be a failed fit or another sample's file,
    so installing refuses (unless ``force``) a file whose audit flags a category (outside the
    plausible band, or an outlier against its neighbours: the original shipped 0.0629) and a file
    whose name or description says another year or Data/MC than asked. The entry's trailing
    comment is rewritten: it described the file being replaced.

    Args:
        json_path: the correction file (``.json`` or ``.json.gz``); it is validated first.
        year: the analysis year key (``2018``, ``2022preEE``).
        is_mc: register under ``MC`` instead of ``Data``.
        repo_root: root of the analysis checkout holding ``data/`` and ``configs/``.
        config: categories and thresholds of the audit (``step3``); None: the default configuration.
        force: install despite audit flags or a name/description that disagrees (each logged as a warning).

    Returns:
        The installed copy.

    Raises:
        CorrectionError: the JSON does not load or validate, cannot be copied, or is refused (one
            line naming the categories or the mismatch, and ``--force``).
        ConfigError: the file list cannot be read, or the entry cannot be edited safely
            (e.g. the year holds a scalar instead of a Data/MC mapping).
    """
    from lib.categories import CategoryScheme
    from lib.config import load_config
    from lib.correction.auditor import audit_correction

    json_path, repo_root = Path(json_path), Path(repo_root)
    loaded = load_correction(json_path)
    config = config or load_config()
    kind = "MC" if is_mc else "Data"
    problems = _sample_mismatches(json_path.name, loaded.model.description or "", str(year), kind)
    report = audit_correction(
        json_path, CategoryScheme.from_config(config.categories), tuple(config.step3.plausible_factor_band),
        config.step3.neighbour_outlier_ratio,
    )  # fmt: skip
    problems += [f"{c.name} = {c.value:.4g} ({'; '.join(c.reasons)})" for c in report.categories if c.reasons]
    if problems and not force:
        raise CorrectionError(f"refusing to install {json_path} as {year} {kind}: {'; '.join(problems)} (--force installs it anyway)")
    for problem in problems:
        logger.warning("installing %s despite: %s", json_path.name, problem)
    verdict = "audit OK" if report.ok else f"audit flags {', '.join(report.flagged)} (installed with --force)"
    comment = f"{json_path.name}, installed {date.today().isoformat()}: {verdict}"
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
    """Return ``text`` with ``BS_res_calib_path.<year>.<kind>`` set to ``value``, all else unchanged.

    Missing keys are added at the end of their parent block, indented like their siblings. The
    entry's trailing comment is kept, or replaced by ``# <comment>`` when one is given.

    Args:
        text: the YAML file's text (block style under ``BS_res_calib_path``).
        year: year key; quoted and unquoted keys (``'2018'``, ``2018``) both match.
        kind: ``Data`` or ``MC``.
        value: the new path.
        where: file name for error messages.

    Returns:
        The edited text.

    Raises:
        ConfigError: invalid YAML, duplicate keys, flow-style or scalar parents, a non-scalar
            value, or an edit that would change anything else.

    Example:
        >>> print(set_filelist_entry("x: 1  # keep\\nBS_res_calib_path:\\n  '2018':\\n    Data: old.json  # note\\n", 2018, "Data", "new.json"), end="")
        x: 1  # keep
        BS_res_calib_path:
          '2018':
            Data: new.json  # note
    """
    try:
        before = yaml.safe_load(text) if text.strip() else {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{where} is not valid YAML: {' '.join(str(err).split())}") from err
    if not isinstance(before, dict):
        raise ConfigError(f"{where} must be a mapping at top level")
    eol = "\r\n" if "\r\n" in text else "\n"
    lines = [_Line.split(raw) for raw in text.splitlines(keepends=True)]
    path = (TOP_KEY, str(year), kind)
    parent_line: int | None = None
    parent_indent, child_indent, step = -1, 0, _DEFAULT_STEP
    for depth, key in enumerate(path):
        start, end = (0, len(lines)) if parent_line is None else _block(lines, parent_line, parent_indent)
        found, child_indent = _find_child(lines, start, end, key, child_indent if depth == 0 else None, where)
        if found is None:
            insert_at = _last_content(lines, start, end) if depth else len(lines)
            indent = child_indent if child_indent is not None else parent_indent + step
            step = next((ln.indent - indent for ln in lines[start:end] if ln.is_content and ln.indent > indent), step)
            new = _new_lines(path[depth:], indent, step, value, eol)
            if insert_at == len(lines) and lines and not lines[-1].eol:
                # Appending to a file without a final newline: move the missing newline to the end.
                lines[-1] = _Line(lines[-1].text, eol)
                new[-1] = _Line(new[-1].text, "")
            lines[insert_at:insert_at] = new
            break
        match = _KEY_LINE.match(lines[found].text)
        lead, body, trail = _split_value(match["rest"])
        if depth < len(path) - 1:
            if body:
                raise ConfigError(
                    f"{where}: '{'.'.join(path[: depth + 1])}' is '{body}', not a block mapping (one key per line) "
                    f"that could hold '{path[depth + 1]}'; rewrite it in block style and retry"
                )
            if depth > 0:
                step = child_indent - parent_indent
            parent_line, parent_indent = found, child_indent
            continue
        if not body and _block(lines, found, child_indent)[1] > found + 1:
            raise ConfigError(f"{where}: '{'.'.join(path)}' holds a nested block, not a file path")
        if body[:1] in ("|", ">", "&", "*", "!", "{", "["):
            raise ConfigError(f"{where}: '{'.'.join(path)}' is '{body}'; only a plain or quoted path can be replaced")
        if comment is not None:
            trail = "  # " + comment
        spaced = trail if not trail.startswith("#") else " " + trail
        text_line = f"{match['indent']}{match['key']}:{lead or ' '}{_format_value(value, body)}{spaced}"
        lines[found] = _Line(text_line, lines[found].eol)
    new_text = "".join(line.text + line.eol for line in lines)
    _check_only_change(before, new_text, path, value, where)
    return new_text


@dataclass(frozen=True)
class _Line:
    text: str
    eol: str

    @classmethod
    def split(cls, raw: str) -> "_Line":
        body = raw.rstrip("\r\n")
        return cls(body, raw[len(body) :])

    @property
    def is_content(self) -> bool:
        stripped = self.text.strip()
        return bool(stripped) and not stripped.startswith("#")

    @property
    def indent(self) -> int:
        return len(self.text) - len(self.text.lstrip(" "))


def _block(lines: list[_Line], key_index: int, key_indent: int) -> tuple[int, int]:
    """[start, end) of the lines nested under a key line, trailing blanks and comments excluded."""
    end = key_index + 1
    last = key_index + 1
    while end < len(lines) and (not lines[end].is_content or lines[end].indent > key_indent):
        end += 1
        if lines[end - 1].is_content:
            last = end
    return key_index + 1, last


def _last_content(lines: list[_Line], start: int, end: int) -> int:
    """Index just after the last content line in [start, end) (``start`` when there is none)."""
    last = start
    for i in range(start, end):
        if lines[i].is_content:
            last = i + 1
    return last


def _key_name(key: str) -> str:
    """A key as YAML reads it, as text: quotes removed, escapes resolved."""
    if key[:1] in ("'", '"'):
        return str(yaml.safe_load(key))
    return key.strip()


def _find_child(
    lines: list[_Line], start: int, end: int, key: str, indent: int | None, where: str
) -> tuple[int | None, int | None]:
    """Line index of ``key`` among the direct children in [start, end), and the children's indent."""
    found = None
    for i in range(start, end):
        line = lines[i]
        if not line.is_content:
            continue
        if indent is None:
            indent = line.indent
        if line.indent != indent:
            continue
        match = _KEY_LINE.match(line.text)
        if match is None:
            raise ConfigError(f"{where}: line {i + 1} ('{line.text.strip()}') is not a 'key: value' line; cannot edit safely")
        if _key_name(match["key"]) == key:
            if found is not None:
                raise ConfigError(f"{where}: key '{key}' appears twice (lines {found + 1} and {i + 1})")
            found = i
    return found, indent


def _split_value(rest: str) -> tuple[str, str, str]:
    """(whitespace, value, trailing whitespace + comment) of what follows a key's colon."""
    body = rest.lstrip(" \t")
    lead = rest[: len(rest) - len(body)]
    if body.startswith("#"):
        return lead, "", body
    end = None
    if body[:1] == '"':
        i = 1
        while i < len(body):
            if body[i] == "\\":
                i += 2
                continue
            if body[i] == '"':
                end = i + 1
                break
            i += 1
    elif body[:1] == "'":
        i = 1
        while i < len(body):
            if body[i] == "'":
                if body[i + 1 : i + 2] == "'":
                    i += 2
                    continue
                end = i + 1
                break
            i += 1
    else:
        comment = re.search(r"[ \t]+#", body)
        end = comment.start() if comment else len(body.rstrip(" \t"))
    end = len(body) if end is None else end
    return lead, body[:end], body[end:]


def _format_value(value: str, old: str) -> str:
    """``value`` as a YAML scalar, in the old value's quoting style where it had one."""
    if old.startswith('"'):
        return json.dumps(value)
    if old.startswith("'"):
        return "'" + value.replace("'", "''") + "'"
    try:
        plain_ok = yaml.safe_load(f"k: {value}") == {"k": value}
    except yaml.YAMLError:
        plain_ok = False
    return value if plain_ok else json.dumps(value)


def _format_key(key: str) -> str:
    """A new key, quoted when YAML would not read it back as this string (``2018`` stays plain)."""
    try:
        loaded = yaml.safe_load(f"{key}: 1")
    except yaml.YAMLError:
        loaded = None
    return key if isinstance(loaded, dict) and [str(k) for k in loaded] == [key] else json.dumps(key)


def _new_lines(keys: tuple[str, ...], indent: int, step: int, value: str, eol: str) -> list[_Line]:
    """Block lines creating ``keys[0]: {keys[1]: ... value}`` at ``indent``."""
    out = []
    for depth, key in enumerate(keys):
        pad = " " * (indent + depth * step)
        tail = f" {_format_value(value, '')}" if depth == len(keys) - 1 else ""
        out.append(_Line(f"{pad}{_format_key(key)}:{tail}", eol))
    return out


def _check_only_change(before: dict[str, Any], new_text: str, path: tuple[str, ...], value: str, where: str) -> None:
    """Re-parse the edited text: it must equal the old content with only ``path`` set to ``value``."""
    try:
        after = yaml.safe_load(new_text)
    except yaml.YAMLError as err:
        raise ConfigError(f"{where}: editing {'.'.join(path)} would produce invalid YAML; file left untouched") from err
    expected = copy.deepcopy(before)
    node = expected
    for key in path[:-1]:
        match = next((k for k in node if str(k) == key), key)
        if not isinstance(node.get(match), dict):
            node[match] = {}
        node = node[match]
    node[path[-1]] = value
    if _normalise(after) != _normalise(expected):
        raise ConfigError(f"{where}: editing {'.'.join(path)} would change other entries; file left untouched, edit it by hand")


def _normalise(node: Any) -> Any:
    """Mapping keys as text, so ``2018`` and ``'2018'`` compare equal."""
    if isinstance(node, dict):
        return {str(k): _normalise(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_normalise(v) for v in node]
    return node
