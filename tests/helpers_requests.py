"""Requests for tests, from flat keywords: ``make_request(binned=True, workers=2, plot_formats=())``."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from lib.request import STEPS, Execution, Figures, Handling, Paths, Request, Selection

_PARTS = {"selection": Selection, "paths": Paths, "execution": Execution, "handling": Handling}


def _split(flat: dict[str, object]) -> dict[str, dict[str, object]]:
    parts: dict[str, dict[str, object]] = {name: {} for name in (*_PARTS, "figures")}
    for key, value in flat.items():
        if key == "plot_formats":
            parts["figures"]["formats"] = tuple(value)  # type: ignore[arg-type]
            continue
        if key == "steps":
            value = frozenset(STEPS if value == "all" else (value,))
        if key in ("input_path", "output_path", "calib_json") and value is not None:
            value = Path(value)  # type: ignore[arg-type]
        owner = next((name for name, cls in _PARTS.items() if key in {f.name for f in dataclasses.fields(cls)}), None)
        if owner is None:
            raise TypeError(f"no request field {key}")
        parts[owner][key] = value
    return parts


def make_request(**flat: object) -> Request:
    """A request with the given fields set (``steps="all"``, ``plot_formats=()``, ``workers=2``, …), the rest default."""
    return with_fields(Request(), **flat)


def with_fields(request: Request, **flat: object) -> Request:
    """``request`` with the given flat fields replaced."""
    parts = _split(flat)
    return Request(
        dataclasses.replace(request.selection, **parts["selection"]),
        dataclasses.replace(request.paths, **parts["paths"]),
        dataclasses.replace(request.execution, **parts["execution"]),
        dataclasses.replace(request.figures, **parts["figures"]),
        dataclasses.replace(request.handling, **parts["handling"]),
    )
