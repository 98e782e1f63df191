"""The documentation holds together: every relative link resolves, and the generated pages are current."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted([ROOT / "README.md", ROOT / "CONTRIBUTING.md", *(ROOT / "docs").glob("*.md")])

_FENCE = re.compile(r"^(```|~~~).*?^\1", re.S | re.M)
_CODE_SPAN = re.compile(r"`[^`\n]*`")
_LINK = re.compile(r"!?\[[^\]\n]*\]\(([^()\s]+)(?:\s+\"[^\"]*\")?\)")
_HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.M)


def _gen_docs():
    spec = importlib.util.spec_from_file_location("gen_docs", ROOT / "tools" / "gen_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _prose(text: str) -> str:
    """The page without fenced or indented code blocks (links there are examples, not links)."""
    kept: list[str] = []
    in_code = False
    previous = ""
    for line in _FENCE.sub("", text).splitlines():
        in_code = line.startswith("    ") and (in_code or not previous.strip())
        if not in_code:
            kept.append(line)
        previous = line
    return "\n".join(kept)


def _anchors(page: Path) -> set[str]:
    """The #anchors GitHub gives the page's headings (a repeated one gets -1, -2, ...)."""
    anchor = _gen_docs().heading_anchor
    seen: dict[str, int] = {}
    out = set()
    for heading in _HEADING.findall(_prose(page.read_text())):
        text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)
        base = anchor(text)
        count = seen.get(base, 0)
        seen[base] = count + 1
        out.add(base if count == 0 else f"{base}-{count}")
    return out


def _links(page: Path) -> list[str]:
    text = _CODE_SPAN.sub(lambda m: "x" if "](" not in m.group(0) else m.group(0), _prose(page.read_text()))
    return [t for t in _LINK.findall(text) if not re.match(r"[a-z][a-z0-9+.-]*:", t)]


def test_the_pages_exist() -> None:
    names = {p.name for p in PAGES}
    assert {"README.md", "CONTRIBUTING.md", "method.md", "validation.md", "cli.md", "configuration.md"} <= names


def test_heading_anchors_follow_github() -> None:
    anchor = _gen_docs().heading_anchor
    assert anchor("Running it") == "running-it"
    assert anchor("`fit.params.<name>`") == "fitparamsname"
    assert anchor("The width: σ_fit (effective)") == "the-width-σ_fit-effective"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(page: Path) -> None:
    broken = []
    for target in _links(page):
        path, _, fragment = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            broken.append(f"{target} (no such file)")
        elif fragment and dest.suffix == ".md" and fragment not in _anchors(dest):
            broken.append(f"{target} (no heading #{fragment} in {dest.relative_to(ROOT)})")
    assert not broken, f"{page.relative_to(ROOT)}: " + "; ".join(broken)


def test_the_link_checker_sees_a_broken_link(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "# Title\n\n[ok](#title) [bad](#nothing) [gone](missing.md)\n```\n[code](fenced.md)\n```\n\n    [code](indented.md)\n"
    )
    assert _links(page) == ["#title", "#nothing", "missing.md"]
    assert _anchors(page) == {"title"}


def test_the_generated_pages_are_current() -> None:
    stale = [str(p.relative_to(ROOT)) for p in _gen_docs().stale_pages()]
    assert not stale, f"{stale} out of date: run .venv/bin/python tools/gen_docs.py"


def test_the_readme_stays_one_screen_of_reading() -> None:
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= 160
    assert lines[3].startswith("make run") and lines[4].startswith("make test")
