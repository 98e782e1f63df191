"""Caches that cannot go stale or hurt: one verified entry format, keys of content, and the reduction cache.

A key hashes the inputs, the configuration and the source of the code that computes the entry
(``source_digest``), so no change of any of them can reuse an old result. Each entry file starts
with a header line (kind, slot, key, size and CRC-32 of the payload), all checked before the
payload is decoded; CRC-32 catches truncation and changed bytes at a fraction of a cryptographic
hash's cost. A bad entry is one warning naming it and a recomputation, never an error.
"""

from __future__ import annotations

import hashlib
import json
import logging
import pickle
import re
import zlib
from functools import cache
from pathlib import Path
from types import MappingProxyType
from typing import Generic, Mapping, Sequence, TypeVar

import lib
from lib.io.atomic import atomic_path
from lib.io.merge import Reduction, ReductionMerger
from lib.io.reader import Keep, reduce_file

log = logging.getLogger(__name__)

T = TypeVar("T")

ENTRY_FORMAT = "ebe-calib cache entry 1"
ENTRY_SUFFIX = ".entry"
_HEADER_LIMIT = 4096  # bytes: a first line longer than this is no header of ours
_LIB = Path(lib.__file__).resolve().parent
# Sources beside a module that its code compiles at run time (``lib.fitting.model`` declares its C++ pdf).
_RUNTIME_SOURCES = "*.cxx"


def inputs_fingerprint(files: Sequence[Path]) -> str:
    """Hash of the input files' paths, sizes and modification times (content is not read)."""
    digest = hashlib.sha256()
    for path in files:
        stat = Path(path).stat()
        digest.update(f"{Path(path).resolve()}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


@cache
def source_digest(*modules: str) -> str:
    """Hash of the ``source_files`` of ``modules``: their paths relative to ``lib`` and their bytes (a copy elsewhere hashes the same)."""
    files = source_files(*modules)
    digest = hashlib.sha256()
    for relative in sorted(files):
        digest.update(relative.encode() + b"\0" + files[relative].read_bytes() + b"\0")
    return digest.hexdigest()[:16]


@cache
def source_files(*modules: str) -> Mapping[str, Path]:
    """The source files of the ``lib`` ``modules`` and of every ``lib`` module they import, by path relative to ``lib``.

    Imports deferred inside functions count, a package stands for all of its modules, and C++
    sources beside a module count too.
    """
    files: dict[str, Path] = {}
    pending = [name for root in modules for name in _package_modules(root)]
    seen: set[str] = set()
    while pending:
        name = pending.pop()
        path = _module_path(name)
        if name in seen or path is None:
            continue
        seen.add(name)
        files[path.relative_to(_LIB).as_posix()] = path
        files |= {p.relative_to(_LIB).as_posix(): p for p in path.parent.glob(_RUNTIME_SOURCES)}
        pending.extend(_imported_modules(path, name))
    return MappingProxyType(files)


@cache
def _module_path(name: str) -> Path | None:
    """The source file of the ``lib`` module ``name`` (a package's ``__init__.py``), None when it is none."""
    parts = name.split(".")
    if parts[0] != "lib":
        return None
    base = _LIB.joinpath(*parts[1:])
    for path in (base / "__init__.py", base.with_suffix(".py")):
        if path.is_file():
            return path
    return None


def _package_modules(name: str) -> list[str]:
    """``name``, and every module inside it when it is a package."""
    path = _module_path(name)
    if path is None:
        raise ValueError(f"{name} is not a module of lib")
    if path.name != "__init__.py":
        return [name]
    inside = (p.relative_to(_LIB).with_suffix("").parts for p in path.parent.rglob("*.py"))
    return [".".join(("lib", *(parts[:-1] if parts[-1] == "__init__" else parts))) for parts in inside]


# An import statement at the start of a line: ``import a.b as c, d`` or ``from .x import y`` (names
# in parentheses over several lines). A docstring line that reads like one adds a harmless candidate.
_IMPORT = re.compile(r"^[ \t]*(?:from[ \t]+(\.*[\w.]*)[ \t]+import[ \t]+(\([^)]*\)|[^\n]*)|import[ \t]+([^\n]*))", re.M)
_COMMENT = re.compile(r"#[^\n]*")


@cache
def _imported_modules(path: Path, name: str) -> tuple[str, ...]:
    """The modules ``path`` (module ``name``) imports anywhere in it, with the packages that importing them runs.

    A regular expression rather than ``ast``: the same modules for formatted code at a small part of the cost.
    """
    found: list[str] = []
    for match in _IMPORT.finditer(path.read_text()):
        base, names, modules = match.groups()
        if modules is not None:
            targets = _names(modules)
        else:
            base = _absolute(base, name if path.name == "__init__.py" else name.rpartition(".")[0])
            targets = [f"{base}.{n}" if _module_path(f"{base}.{n}") else base for n in _names(names.strip().strip("()"))]
        for target in targets:
            parts = target.split(".")
            found.extend(".".join(parts[:i]) for i in range(1, len(parts) + 1))
    return tuple(found)


def _names(listed: str) -> list[str]:
    """The names of an import's comma-separated list (``x as y`` gives ``x``), comments dropped."""
    return [words[0] for part in _COMMENT.sub("", listed).split(",") if (words := part.split())]


def _absolute(module: str, package: str) -> str:
    """``module`` of a ``from`` import made absolute: its leading dots climb from ``package``."""
    level = len(module) - len(module.lstrip("."))
    if not level:
        return module
    anchor = package.split(".")[: len(package.split(".")) - level + 1]
    return ".".join([*anchor, *([module[level:]] if module[level:] else [])])


class EntryStore(Generic[T]):
    """Verified, pickled cache entries of one kind and type in one directory: one file per slot, named by slot and key.

    ``kind`` says what the entries are (``reduction``, ``fit``); a slot is what an entry is for (a
    category, a reduction's shape). Storing an entry drops the slot's entries of other keys,
    which can never match again. A payload is unpickled only once its header and checksum are
    verified: the cache lives in the run's own output directory, whose writer is trusted, and
    the checksum guards against damage, not against that writer.
    """

    def __init__(self, directory: Path, kind: str, entry_type: type[T]) -> None:
        self.directory = Path(directory)
        self.kind = kind
        self.entry_type = entry_type

    def path(self, slot: str, key: str) -> Path:
        return self.directory / f"{self.kind}-{slot}-{key}{ENTRY_SUFFIX}"

    def load(self, slot: str, key: str) -> T | None:
        """The entry of ``slot`` and ``key``, or None when there is none or it is bad (then with a warning)."""
        path = self.path(slot, key)
        try:
            with open(path, "rb") as handle:
                header = _parse_header(handle.readline(_HEADER_LIMIT))
                payload = handle.read() if header is not None else b""
        except FileNotFoundError:
            return None
        except OSError as err:
            return self._ignored(path, f"unreadable ({err.strerror or err})")
        problem = self._problem(header, payload, slot, key)
        if problem is not None:
            return self._ignored(path, problem)
        try:
            entry = pickle.loads(payload)
        except Exception as err:  # noqa: BLE001 - whatever a bad entry raises, recomputing it is always right
            return self._ignored(path, f"its content does not decode ({type(err).__name__}: {err})")
        if not isinstance(entry, self.entry_type):
            return self._ignored(path, f"it holds a {type(entry).__name__}, not a {self.entry_type.__name__}")
        return entry

    def store(self, slot: str, key: str, entry: T) -> Path:
        """Write the entry atomically (header and pickled payload in one file), then drop the slot's entries of other keys."""
        payload = pickle.dumps(entry, protocol=pickle.HIGHEST_PROTOCOL)
        header = {"format": ENTRY_FORMAT, "kind": self.kind, "slot": slot, "key": key, "size": len(payload),
                  "crc32": zlib.crc32(payload)}  # fmt: skip
        path = self.path(slot, key)
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as handle:
                handle.write(json.dumps(header, sort_keys=True).encode() + b"\n")
                handle.write(payload)
        for other in self.directory.glob(f"{self.kind}-*{ENTRY_SUFFIX}"):
            other_slot, _, other_key = other.name[len(self.kind) + 1 : -len(ENTRY_SUFFIX)].rpartition("-")
            if other_slot == slot and other_key != key:
                other.unlink(missing_ok=True)
        return path

    def _problem(self, header: dict[str, object] | None, payload: bytes, slot: str, key: str) -> str | None:
        """Why the entry cannot be used, or None when it is the one asked for and its ``payload`` is intact."""
        if header is None:
            return "not a cache entry of this tool (no header)"
        if (header.get("kind"), header.get("slot")) != (self.kind, slot):
            return f"it holds the {header.get('kind')} entry of {header.get('slot')}, not the {self.kind} entry of {slot}"
        if header.get("key") != key:
            return f"it holds key {header.get('key')}, not {key}"
        if header.get("size") != len(payload):
            return f"its payload is {len(payload)} bytes, its header says {header.get('size')} (truncated or appended to)"
        if zlib.crc32(payload) != header["crc32"]:
            return "its checksum does not match (bytes changed since it was written)"
        return None

    @staticmethod
    def _ignored(path: Path, why: str) -> None:
        log.warning("ignoring cache entry %s: %s; recomputing it", path, why)
        return None


def _parse_header(line: bytes) -> dict[str, object] | None:
    """The header of an entry from its first line, None when the line is none of ours."""
    try:
        header = json.loads(line) if line.endswith(b"\n") else None
    except ValueError:
        return None
    if not isinstance(header, dict) or header.get("format") != ENTRY_FORMAT or not isinstance(header.get("crc32"), int):
        return None
    return header


# The modules a reduction comes from (with all they import): reading, histogramming, merging, caching.
REDUCTION_CODE = (reduce_file.__module__, ReductionMerger.__module__, __name__)


def reduction_key(files_fingerprint: str, settings: dict[str, object]) -> str:
    """Key of a reduction: the inputs, the settings that shape it, and the code it comes from."""
    parts = {"files": files_fingerprint, "settings": settings, "code": source_digest(*REDUCTION_CODE)}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:20]


def _slot(keep: Keep) -> str:
    """Steps 1-2 and the closure keep one entry each, so alternating runs do not evict each other."""
    return f"h{len(keep.specs)}{'e' if keep.events else ''}{'m' if keep.muons else ''}"


def load_cached_reduction(cache_dir: Path, key: str, keep: Keep) -> Reduction | None:
    """The cached reduction for ``key`` (what ``keep`` keeps), or None; a bad entry is also a warning, and the caller recomputes it."""
    store = EntryStore(cache_dir, "reduction", Reduction)
    reduction = store.load(_slot(keep), key)
    if reduction is not None:
        log.info("using cached reduction %s (%d events kept)", store.path(_slot(keep), key), reduction.n_kept)
    return reduction


def store_reduction(cache_dir: Path, key: str, keep: Keep, reduction: Reduction) -> Path:
    """Write the reduction of what ``keep`` keeps for ``key`` as one verified entry."""
    return EntryStore(cache_dir, "reduction", Reduction).store(_slot(keep), key, reduction)
