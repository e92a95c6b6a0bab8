"""The docs: every relative link resolves, and docs/api.md is the generated one."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mlops_operator import apidocs

from .tools import REPO

PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
FENCE = re.compile(r"^(```|~~~).*?^\1", re.M | re.S)
INLINE_CODE = re.compile(r"`[^`\n]*`")


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading."""
    text = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    text = FENCE.sub("", page.read_text())
    found: set[str] = set()
    for heading in re.findall(r"^#{1,6}\s+(.+?)\s*#*$", text, re.M):
        base = slug(heading)
        name, n = base, 1
        while name in found:
            name, n = f"{base}-{n}", n + 1
        found.add(name)
    return found


def links(page: Path) -> list[str]:
    text = INLINE_CODE.sub("", FENCE.sub("", page.read_text()))
    return LINK.findall(text)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_resolve(page: Path) -> None:
    broken = []
    for target in links(page):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto:, ...
            continue
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        if not resolved.exists():
            broken.append(f"{target}: no such file")
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
            broken.append(f"{target}: no heading #{anchor} in {resolved.name}")
    assert broken == []


def test_pages_exist() -> None:
    for name in ("install.md", "operations.md", "api.md"):
        assert (REPO / "docs" / name).exists(), name


def test_api_reference_is_generated() -> None:
    committed = (REPO / "docs" / "api.md").read_text()
    assert committed == apidocs.render(), "docs/api.md is stale: run hack/sync-generated.sh"


def test_api_reference_documents_every_field() -> None:
    text = apidocs.render()
    for path in ("spec.dataset.builtin", "spec.traffic.steps", "status.phase", "status.model"):
        assert f"`{path}`" in text, path


def test_slug_is_githubs() -> None:
    assert slug("Why the CRDs are templates") == "why-the-crds-are-templates"
    assert slug("kubectl and kustomize") == "kubectl-and-kustomize"
    assert slug("`mlops` CLI: the *API*") == "mlops-cli-the-api"
