"""The import graph of ``lib``: no cycles, and the layers point one way.

Every ``import`` of a ``lib`` module counts, deferred ones inside functions included (a deferred
import hides a cycle from Python, not from a reader), except those under ``if TYPE_CHECKING:``
(types, never run); importing ``lib.a.b`` also imports the package ``lib.a`` (its ``__init__``),
except from inside ``lib.a``, whose package is loaded already. Read from the source with ``ast``:
nothing is imported, so the test needs no ROOT.
"""

from __future__ import annotations

import ast
from pathlib import Path

LIB = Path(__file__).resolve().parent.parent / "lib"

# The orchestration layer: how a run reads, fits and writes, and what it reports. Nothing below
# it may import it.
ORCHESTRATION = ("lib.route", "lib.run", "lib.report")
# Physics: pure numbers, no I/O, no executors, no figures.
PHYSICS = (
    "lib.categories", "lib.resolution", "lib.medians", "lib.factors", "lib.acceptance", "lib.peak_scaling",
    "lib.dimuon_kinematics", "lib.histograms", "lib.histogram_specs", "lib.fitting.quality", "lib.fitting.undetermined", "lib.closure",
)  # fmt: skip
PHYSICS_MAY_IMPORT = ("lib.categories", "lib.config", "lib.errors", "lib.acceptance", "lib.resolution", "lib.histograms", "lib.histogram_specs", "lib.dimuon_kinematics", "lib.medians",
                      "lib.peak_scaling", "lib.fitting.result", "lib.fitting.quality", "lib.fitting")  # fmt: skip


def _module_name(path: Path) -> str:
    parts = path.relative_to(LIB.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in LIB.rglob("*.py")}


def _with_parents(name: str, known: dict[str, Path]) -> set[str]:
    parts = name.split(".")
    return {".".join(parts[:i]) for i in range(2, len(parts) + 1)} & set(known)


def _runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node of ``tree`` except those under ``if TYPE_CHECKING:``, which name types and never run."""
    nodes: list[ast.AST] = []
    pending = [tree]
    while pending:
        node = pending.pop()
        nodes.append(node)
        for child in ast.iter_child_nodes(node):
            test = child.test if isinstance(child, ast.If) else None
            if test is not None and (getattr(test, "id", None) or getattr(test, "attr", None)) == "TYPE_CHECKING":
                pending.extend(child.orelse)
                continue
            pending.append(child)
    return nodes


def _imports(path: Path, known: dict[str, Path]) -> set[str]:
    """The ``lib`` modules ``path`` imports anywhere in it (type-only imports aside), with the packages they belong to."""
    found: set[str] = set()
    for node in _runtime_nodes(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in known else node.module for a in node.names]
        else:
            continue
        for name in names:
            if name.split(".")[0] == "lib":
                found |= _with_parents(name, known)
    return found - {"lib"}


def _graph() -> dict[str, set[str]]:
    known = _modules()
    return {name: _imports(path, known) - _with_parents(name, known) for name, path in known.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _in(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def test_the_cycle_finder_finds_a_cycle_hidden_in_a_deferred_import(tmp_path):
    graph = {"lib.a": {"lib.b"}, "lib.b": {"lib.c"}, "lib.c": {"lib.a"}, "lib.d": {"lib.a"}}
    assert _cycles(graph) == [["lib.a", "lib.b", "lib.c"]]
    source = tmp_path / "m.py"
    source.write_text("def f():\n    from lib.run.reduction import load_reduction\n")
    assert _imports(source, {"lib.run": Path(), "lib.run.reduction": Path()}) == {"lib.run", "lib.run.reduction"}
    source.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from lib.io.reader import Skim\n")
    assert _imports(source, {"lib.io": Path(), "lib.io.reader": Path()}) == set()


def test_lib_has_no_import_cycle():
    assert _cycles(_graph()) == []


def test_nothing_below_the_orchestration_layer_imports_it():
    upward = {
        name: sorted(d for d in deps if _in(d, ORCHESTRATION))
        for name, deps in _graph().items()
        if not _in(name, ORCHESTRATION)
    }
    assert {name: deps for name, deps in upward.items() if deps} == {}


def test_physics_modules_import_no_io_executor_or_figures():
    graph = _graph()
    assert set(PHYSICS) <= set(graph), "a physics module was renamed: update PHYSICS"
    leaks = {name: sorted(d for d in graph[name] if not _in(d, PHYSICS_MAY_IMPORT)) for name in PHYSICS}
    assert {name: deps for name, deps in leaks.items() if deps} == {}


def _imports_root(path: Path) -> bool:
    """Whether ``path`` imports ROOT anywhere (type-only imports aside)."""
    for node in _runtime_nodes(ast.parse(path.read_text())):
        if isinstance(node, ast.Import) and any(a.name.split(".")[0] == "ROOT" for a in node.names):
            return True
        if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] == "ROOT":
            return True
    return False


def test_root_is_imported_only_inside_lib_fitting():
    """ROOT's heavy start-up and its C++ messages stay with the fits: every other module runs without it."""
    importers = {name for name, path in _modules().items() if _imports_root(path)}
    assert importers, "no module imports ROOT: the check no longer finds the fits"
    assert sorted(name for name in importers if not name.startswith("lib.fitting.")) == []
