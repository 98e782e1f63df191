"""Small markup helpers: every text escaped, every number formatted one way across the report.

The page is polyglot markup (valid HTML5 and well-formed XML: void elements closed, no named
entities beyond XML's), so a strict HTML parser and an XML parser both read it in the tests.
"""

from __future__ import annotations

import html
import math
from typing import Iterable
from urllib.parse import quote

__all__ = ["esc", "attrs", "tag", "num", "pm", "percent", "link", "url", "image"]


def esc(value: object) -> str:
    """Text or attribute value, escaped (quotes included)."""
    return html.escape(str(value), quote=True)


def attrs(**values: object) -> str:
    """`` key="value"`` pairs; ``class_`` for ``class``, ``None`` and ``False`` left out."""
    out = []
    for key, value in values.items():
        if value is None or value is False:
            continue
        out.append(f' {key.rstrip("_").replace("_", "-")}="{esc(value)}"')
    return "".join(out)


def tag(name: str, content: str | Iterable[str] = "", **values: object) -> str:
    """``<name attrs>content</name>``; ``content`` is markup already (escape text with :func:`esc`)."""
    body = content if isinstance(content, str) else "".join(content)
    return f"<{name}{attrs(**values)}>{body}</{name}>"


def num(value: float, digits: int = 4) -> str:
    """Fixed decimals, an en dash for a missing value."""
    return f"{value:.{digits}f}" if math.isfinite(value) else "–"


def pm(value: float, error: float, digits: int = 4) -> str:
    """``value ± error`` (the error left out when it is missing)."""
    if not math.isfinite(value):
        return "–"
    return num(value, digits) + (f" ± {num(error, digits)}" if math.isfinite(error) else "")


def percent(value: float, digits: int = 1, sign: bool = True) -> str:
    """``+4.2 %``; an en dash for a missing value."""
    if not math.isfinite(value):
        return "–"
    return f"{value * 100:{'+' if sign else ''}.{digits}f} %"


def url(path: str) -> str:
    """A relative path as a URL (percent-encoded, slashes kept): resolves for any file name."""
    return quote(path, safe="/")


def link(path: str | None, text: str, **values: object) -> str:
    """An anchor to a relative path, or the bare (escaped) text when there is no file to point at."""
    return tag("a", esc(text), href=url(path), **values) if path else esc(text)


def image(path: str, alt: str, **values: object) -> str:
    """An image at a relative path, linked to itself (a click shows it full size)."""
    return tag("a", f"<img{attrs(src=url(path), alt=alt, **values)} />", href=url(path))
