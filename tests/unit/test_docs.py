"""The README stays short and points at docs/; no link in either leads nowhere.

The README is for users and operators (at most 300 lines, its first code block the two
commands .ci/run and a fresh clone rely on); everything else lives in docs/, and each page
there is reachable from the README. Relative links (and their #anchors, GitHub's way of
naming headings) must resolve, so a moved file or a renamed heading fails here.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
MAX_README_LINES = 300

_LINK = re.compile(r"\]\(([^)\s]+)\)")
_FENCE = re.compile(r"^\s*```")


def _outside_code(text: str) -> list[str]:
    lines, fenced = [], False
    for line in text.splitlines():
        if _FENCE.match(line):
            fenced = not fenced
        elif not fenced:
            lines.append(line)
    return lines


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    return {_slug(line.lstrip("#")) for line in _outside_code(path.read_text())
            if line.startswith("#")}


def _relative_links(path: Path) -> list[str]:
    links = []
    for line in _outside_code(path.read_text()):
        for target in _LINK.findall(line):
            if not re.match(r"[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto: ...
                links.append(target)
    return links


def test_readme_is_at_most_300_lines() -> None:
    n = len(README.read_text().splitlines())
    assert n <= MAX_README_LINES, f"README.md has {n} lines; move detail to docs/"


def test_readme_first_code_block_has_the_two_commands() -> None:
    block = re.search(r"```[a-z]*\n(.*?)```", README.read_text(), re.S)
    assert block is not None
    commands = [line.split("#")[0].strip() for line in block.group(1).splitlines()]
    assert "make run" in commands and "make test" in commands


def test_docs_pages_exist() -> None:
    names = {p.name for p in DOCS}
    for page in ("architecture.md", "model-card.md", "data-card.md", "benchmarks.md",
                 "operations.md", "gpu.md"):
        assert page in names


@pytest.mark.parametrize("page", DOCS, ids=lambda p: p.name)
def test_every_docs_page_is_linked_from_the_readme(page: Path) -> None:
    targets = {t.partition("#")[0] for t in _relative_links(README)}
    assert f"docs/{page.name}" in targets, f"README.md does not link docs/{page.name}"


@pytest.mark.parametrize("doc", [README, *DOCS], ids=lambda p: p.name)
def test_every_relative_link_resolves(doc: Path) -> None:
    broken = []
    for target in _relative_links(doc):
        path, _, anchor = target.partition("#")
        dest = (doc.parent / path).resolve() if path else doc
        if not dest.exists():
            broken.append(target)
        elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
            broken.append(target)
    assert broken == []


def test_anchor_slugs_follow_github() -> None:
    # the rule the link check relies on, pinned to headings this repository uses
    assert _slug("Metrics: `GET /metrics` (Prometheus)") == "metrics-get-metrics-prometheus"
    assert (_slug("Coalescing at the edge (api/coalesce.py)")
            == "coalescing-at-the-edge-apicoalescepy")
    assert _slug("Model round 4, 2026-12-04") == "model-round-4-2026-12-04"
