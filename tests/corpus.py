"""The manifests tests share: the examples and the invalid-manifest corpus."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
CRDS = ROOT / "crds"
INVALID = Path(__file__).parent / "data" / "invalid"


@dataclass(frozen=True)
class InvalidManifest:
    path: Path
    layer: str
    """schema, cel or strict: what in the API server rejects it."""
    expect: tuple[str, ...]
    """Substrings every rejection message must contain."""
    document: dict[str, Any]

    @property
    def id(self) -> str:
        return self.path.stem


def invalid_manifests() -> list[InvalidManifest]:
    cases = []
    for path in sorted(INVALID.glob("*.yaml")):
        text = path.read_text()
        header = dict(
            line[2:].split(": ", 1) for line in text.splitlines() if line.startswith("# ")
        )
        expect = tuple(
            line.removeprefix("# expect: ")
            for line in text.splitlines()
            if line.startswith("# expect: ")
        )
        cases.append(InvalidManifest(path, header["layer"], expect, yaml.safe_load(text)))
    return cases


def example_documents() -> list[tuple[str, dict[str, Any]]]:
    """(file name, document) of every manifest under examples/."""
    return [
        (str(path.relative_to(EXAMPLES)), doc)
        for path in sorted(EXAMPLES.rglob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text())
        if doc is not None and doc.get("apiVersion", "").startswith("mlops.dev/")
    ]


def crd_documents() -> dict[str, dict[str, Any]]:
    """The committed CRDs by kind."""
    crds = (yaml.safe_load(path.read_text()) for path in sorted(CRDS.glob("*.yaml")))
    return {crd["spec"]["names"]["kind"]: crd for crd in crds}
