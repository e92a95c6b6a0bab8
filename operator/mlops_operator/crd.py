"""CustomResourceDefinitions generated from the API models (`mlops crds`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

from mlops_operator.api import GROUP, VERSION, ModelDeployment, TrainingJob
from mlops_operator.api.base import ApiModel, Rule
from mlops_operator.api.common import CATEGORY

_KEPT = (
    "type",
    "description",
    "default",
    "enum",
    "minimum",
    "maximum",
    "pattern",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "minProperties",
    "maxProperties",
    "x-kubernetes-validations",
)
_SIZE_KEYS = {"minLength": "minProperties", "maxLength": "maxProperties"}


@dataclass(frozen=True)
class Resource:
    model: type[ApiModel]
    plural: str
    short_names: tuple[str, ...]
    columns: tuple[tuple[str, str, str], ...]
    """(name, type, jsonPath) of each printer column, Age last."""
    rules: tuple[Rule, ...] = ()
    """Rules on the whole object (they may read the status)."""

    @property
    def kind(self) -> str:
        return str(self.model.model_fields["kind"].default)


RESOURCES = (
    Resource(
        TrainingJob,
        plural="trainingjobs",
        short_names=("tj",),
        columns=(
            ("Phase", "string", ".status.phase"),
            ("Estimator", "string", ".spec.model.estimator"),
            ("Trials", "string", ".status.search.progress"),
            ("Score", "string", ".status.score"),
            ("Version", "string", ".status.model.version"),
        ),
        rules=(
            Rule(
                "!has(oldSelf.status) || !has(oldSelf.status.startTime) "
                "|| self.spec == oldSelf.spec",
                "spec is immutable once training has started: create a new TrainingJob to retrain",
                None,
            ),
        ),
    ),
    Resource(
        ModelDeployment,
        plural="modeldeployments",
        short_names=("mdep",),
        columns=(
            ("Phase", "string", ".status.phase"),
            ("Strategy", "string", ".spec.strategy"),
            ("Stable", "string", ".status.stable.model"),
            ("Canary", "string", ".status.canary.model"),
            ("Weight", "integer", ".status.canaryWeight"),
            ("URL", "string", ".status.url"),
        ),
    ),
)


class SchemaError(Exception):
    """An API model that cannot be expressed as a structural schema."""


def _convert(node: dict[str, Any], defs: dict[str, Any], where: str) -> dict[str, Any]:
    """A pydantic JSON schema node as a Kubernetes structural schema node."""
    if "$ref" in node:
        target = defs[node["$ref"].rsplit("/", 1)[-1]]
        return _convert({**target, **{k: v for k, v in node.items() if k != "$ref"}}, defs, where)
    if "anyOf" in node:
        options = [option for option in node["anyOf"] if option.get("type") != "null"]
        rest = {k: v for k, v in node.items() if k != "anyOf"}
        if len(options) == 1:
            return _convert({**options[0], **rest}, defs, where)
        if sorted(option.get("type", "") for option in options) == ["integer", "string"]:
            text = next(option for option in options if option.get("type") == "string")
            bound = {"maxLength": text["maxLength"]} if "maxLength" in text else {}
            return {**_scalars(rest), **bound, "x-kubernetes-int-or-string": True}
        raise SchemaError(f"{where}: unions other than int-or-string are not structural")
    result = _scalars(node)
    if "const" in node:
        result["enum"] = [node["const"]]
    if "exclusiveMinimum" in node:
        result |= {"minimum": node["exclusiveMinimum"], "exclusiveMinimum": True}
    if "exclusiveMaximum" in node:
        result |= {"maximum": node["exclusiveMaximum"], "exclusiveMaximum": True}
    kind = node.get("type")
    if kind == "object":
        result |= _object(node, defs, where)
    elif kind == "array":
        result["items"] = _convert(node["items"], defs, f"{where}[]")
    elif kind is None:
        result["x-kubernetes-preserve-unknown-fields"] = True
    return result


def _scalars(node: dict[str, Any]) -> dict[str, Any]:
    kept = {key: node[key] for key in _KEPT if key in node}
    if node.get("type") == "object":
        kept |= {_SIZE_KEYS[key]: node[key] for key in _SIZE_KEYS if key in node}
        kept = {key: value for key, value in kept.items() if key not in _SIZE_KEYS}
    if kept.get("default", 0) is None:
        del kept["default"]
    return kept


def _object(node: dict[str, Any], defs: dict[str, Any], where: str) -> dict[str, Any]:
    if "properties" in node:
        properties = {
            name: _convert(child, defs, f"{where}.{name}")
            for name, child in node["properties"].items()
        }
        undocumented = [name for name, child in properties.items() if not child.get("description")]
        if undocumented:
            raise SchemaError(f"{where}: fields without a description: {undocumented}")
        result: dict[str, Any] = {"properties": properties}
        if node.get("required"):
            result["required"] = node["required"]
        return result
    values = node.get("additionalProperties")
    if isinstance(values, dict) and values:
        return {"additionalProperties": _convert(values, defs, f"{where}.*")}
    return {"x-kubernetes-preserve-unknown-fields": True}


def _schema(model: type[ApiModel], where: str) -> dict[str, Any]:
    raw = model.model_json_schema(by_alias=True, mode="validation")
    return _convert(raw, raw.get("$defs", {}), where)


def definition(resource: Resource) -> dict[str, Any]:
    """The CustomResourceDefinition of one resource."""
    fields = resource.model.model_fields
    spec = _schema(fields["spec"].annotation, "spec")  # type: ignore[arg-type]
    status_model = fields["status"].annotation.__args__[0]  # type: ignore[union-attr]
    root: dict[str, Any] = {
        "type": "object",
        "description": resource.model.__doc__,
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string", "description": "The API version, mlops.dev/v1alpha1."},
            "kind": {"type": "string", "description": f"The kind, {resource.kind}."},
            "metadata": {"type": "object"},
            "spec": spec,
            "status": _schema(status_model, "status"),
        },
    }
    rules = (*resource.model.__dict__.get("rules", ()), *resource.rules)
    if rules:
        root["x-kubernetes-validations"] = [rule.schema() for rule in rules]
    columns = [
        {"name": name, "type": kind, "jsonPath": path} for name, kind, path in resource.columns
    ]
    columns.append({"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"})
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{resource.plural}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": resource.kind,
                "listKind": f"{resource.kind}List",
                "plural": resource.plural,
                "singular": resource.kind.lower(),
                "shortNames": list(resource.short_names),
                "categories": [CATEGORY],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": root},
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": columns,
                }
            ],
        },
    }


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        return True


def render(resource: Resource) -> str:
    """The CRD as YAML, the way crds/ holds it."""
    header = "# Generated by `mlops crds` from the API models; do not edit.\n"
    body = yaml.dump(definition(resource), Dumper=_Dumper, sort_keys=False, width=100)
    return header + body


def filename(resource: Resource) -> str:
    return f"{GROUP}_{resource.plural}.yaml"
