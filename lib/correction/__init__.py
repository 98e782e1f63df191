"""The correction file: build and write it, audit it, import legacy ROOT maps, apply and install it.

Names are imported lazily, so ``import lib.correction.writer`` does not pull in uproot or pyarrow.
CLI: ``python -m lib.correction {audit,import,apply,install} ...``.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "AppliedFile",
    "AuditReport",
    "CategoryAudit",
    "LoadedCorrection",
    "apply_correction",
    "audit_correction",
    "audit_with_config",
    "build_correction",
    "correction_filename",
    "correction_from_grid",
    "import_root",
    "import_th2_set",
    "import_th3",
    "install_correction",
    "load_correction",
    "read_factors",
    "set_filelist_entry",
    "write_correction",
]

_MODULE_OF = {
    "AppliedFile": "apply",
    "apply_correction": "apply",
    "AuditReport": "auditor",
    "CategoryAudit": "auditor",
    "audit_correction": "auditor",
    "audit_with_config": "auditor",
    "import_root": "importer",
    "import_th2_set": "importer",
    "import_th3": "importer",
    "install_correction": "install",
    "set_filelist_entry": "install",
    "LoadedCorrection": "writer",
    "build_correction": "writer",
    "correction_filename": "writer",
    "correction_from_grid": "writer",
    "load_correction": "writer",
    "read_factors": "writer",
    "write_correction": "writer",
}


def __getattr__(name: str) -> Any:
    if name in _MODULE_OF:
        return getattr(importlib.import_module(f"{__name__}.{_MODULE_OF[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
