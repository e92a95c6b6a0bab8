"""Reading TrainingJob and ModelDeployment manifests from YAML files, with readable errors."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from mlops_operator.api import API_VERSION, ModelDeployment, TrainingJob

Resource = TrainingJob | ModelDeployment
KINDS: dict[str, type[Resource]] = {"TrainingJob": TrainingJob, "ModelDeployment": ModelDeployment}


class ManifestError(Exception):
    """A manifest that cannot be read or is not valid; the message names the field."""


class DuplicateKey(yaml.YAMLError):
    """A mapping repeats a key."""


class _UniqueKeyLoader(yaml.SafeLoader):
    """Refuses a mapping that repeats a key (YAML says keys are unique; kubectl keeps the last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if key in seen:
                first = seen[key]
                raise DuplicateKey(f"duplicate key {key!r} on line {line} (first on line {first})")
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


def describe(error: ValidationError) -> str:
    """One line per problem: the field's path, then what is wrong with it."""
    problems = []
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"]) or "(object)"
        if item["type"] == "extra_forbidden":  # in the API server's words (strict decoding)
            problems.append(f'unknown field "{where}"')
        else:
            problems.append(f"{where}: {item['msg'].removeprefix('Value error, ')}")
    return "; ".join(problems)


def parse(document: Any, source: str = "<manifest>") -> Resource:
    """A manifest as its API model."""
    if not isinstance(document, dict):
        raise ManifestError(
            f"{source}: a manifest must be a mapping, not {type(document).__name__}"
        )
    kind, api_version = document.get("kind"), document.get("apiVersion")
    if kind not in KINDS:
        raise ManifestError(f"{source}: kind {kind!r} is not one of {', '.join(KINDS)}")
    if api_version != API_VERSION:
        raise ManifestError(f"{source}: apiVersion {api_version!r} is not {API_VERSION}")
    name = (document.get("metadata") or {}).get("name", "?")
    try:
        return KINDS[kind].model_validate(document, strict=True)
    except ValidationError as error:
        raise ManifestError(f"{source}: {kind} {name}: {describe(error)}") from None


def documents(path: Path) -> Iterator[Any]:
    try:
        text = path.read_text()
        loaded = yaml.load_all(text, Loader=_UniqueKeyLoader)
        yield from (doc for doc in loaded if doc is not None)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise ManifestError(f"{path}: cannot read manifest: {error}") from None


def files(paths: Iterable[Path]) -> Iterator[Path]:
    """The manifest files named, with directories expanded to their YAML files in order."""
    for path in paths:
        if path.is_dir():
            yield from sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml"))
        elif path.exists():
            yield path
        else:
            raise ManifestError(f"{path}: no such file or directory")


def load(paths: Iterable[Path]) -> list[Resource]:
    """Every resource in the files and directories named, validated."""
    return [parse(doc, str(path)) for path in files(paths) for doc in documents(path)]
