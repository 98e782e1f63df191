"""The pins and the imports agree: every pinned package is used, every imported package is pinned.

A pin nothing imports is installed, audited and upgraded for nothing; an import nothing pins works
only while some other package happens to bring it along. environment.yml follows the pip pins.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SOURCES = [REPO / "lib", REPO / "tests", REPO / "benchmarks", REPO / "getCalibrationFactor.py"]
REQUIREMENTS = [REPO / "requirements.txt", REPO / "requirements-test.txt"]

# Distributions whose import name is not their name with "-" as "_" (compared lower-case).
MODULES = {"root": "ROOT", "pyyaml": "yaml", "ruamel.yaml": "ruamel", "pillow": "PIL"}
# Pins used other than by an import statement: the file and the text in it that uses them.
USED_WITHOUT_IMPORT = {
    "dask-gateway-server": ("tests/test_servers.py", 'shutil.which("dask-gateway-server"'),
}
# Pip pins environment.yml leaves out, and those whose conda-forge version differs.
PIP_ONLY = {"dask-gateway-server"}  # its one test skips without it
CONDA_VERSIONS_DIFFER = {"root"}  # the PyPI "ROOT" wheel has versions of its own


def _pins() -> dict[str, tuple[str, str]]:
    """Pinned distribution (lower-case, extras dropped) -> (version, file)."""
    pins = {}
    for path in REQUIREMENTS:
        for line in path.read_text().splitlines():
            line = line.split("#")[0].strip()
            if not line or line.startswith("-r"):
                continue
            name, version = line.split("==")
            pins[re.sub(r"\[.*\]", "", name).lower()] = (version, path.name)
    return pins


def _imported_modules() -> set[str]:
    """Top-level names of every absolute import in the sources."""
    found = set()
    for source in SOURCES:
        for path in [source] if source.is_file() else sorted(source.rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    found |= {alias.name.split(".")[0] for alias in node.names}
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    found.add(node.module.split(".")[0])
    return found


def _third_party(modules: set[str]) -> set[str]:
    own = {p.name for p in REPO.iterdir() if p.is_dir()} | {p.stem for p in [*REPO.glob("*.py"), *REPO.glob("benchmarks/*.py")]}
    return {m for m in modules if m not in sys.stdlib_module_names and m not in own}


def _module(distribution: str) -> str:
    return MODULES.get(distribution, distribution.replace("-", "_"))


def test_every_pin_is_imported_or_used_as_recorded():
    imported = _imported_modules()
    unused = [f"{name} ({where})" for name, (_, where) in _pins().items() if _module(name) not in imported and name not in USED_WITHOUT_IMPORT]
    assert not unused, f"pinned but never imported: {', '.join(unused)}"
    for name, (path, text) in USED_WITHOUT_IMPORT.items():
        assert name in _pins() and text in (REPO / path).read_text(), f"{name} is kept pinned for {path}, which no longer uses it"


def test_every_imported_package_is_pinned():
    pinned = {_module(name) for name in _pins()}
    unpinned = sorted(_third_party(_imported_modules()) - pinned)
    assert not unpinned, f"imported but not pinned in {' or '.join(p.name for p in REQUIREMENTS)}: {', '.join(unpinned)}"


def test_environment_yml_follows_the_pip_pins():
    text = (REPO / "environment.yml").read_text()
    conda = dict(re.findall(r"^  - ([\w.-]+)=(\S+)$", text, flags=re.MULTILINE))
    conda.pop("python")
    pins = _pins()
    assert set(conda) == set(pins) - PIP_ONLY
    assert {n: v for n, v in conda.items() if n not in CONDA_VERSIONS_DIFFER} == {
        n: pins[n][0] for n in conda if n not in CONDA_VERSIONS_DIFFER
    }


@pytest.mark.parametrize("name", sorted(MODULES))
def test_the_module_map_names_installed_distributions(name):
    """The map stays true: each distribution it names is installed and provides that module."""
    from importlib.metadata import packages_distributions

    assert name in {d.lower() for d in packages_distributions().get(MODULES[name], [])}
