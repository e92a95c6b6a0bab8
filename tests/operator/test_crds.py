"""The CRDs are generated from the models, committed as generated, and valid."""

from __future__ import annotations

from typing import Any

import jsonschema
import kubernetes_validate
import pytest

from mlops_operator import crd
from tests.corpus import CRDS, crd_documents, example_documents


def schema_of(kind: str) -> dict[str, Any]:
    return crd_documents()[kind]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


@pytest.mark.parametrize("resource", crd.RESOURCES, ids=lambda r: r.kind)
def test_committed_crd_is_the_generated_one(resource: crd.Resource) -> None:
    committed = (CRDS / crd.filename(resource)).read_text()
    assert committed == crd.render(resource), "crds/ is stale: run `make crds`"


@pytest.mark.parametrize("resource", crd.RESOURCES, ids=lambda r: r.kind)
def test_crd_is_a_valid_kubernetes_object(resource: crd.Resource) -> None:
    kubernetes_validate.validate(crd.definition(resource), "1.34", strict=True)


def test_crds_have_short_names_category_and_status() -> None:
    crds = crd_documents()
    assert crds["TrainingJob"]["spec"]["names"]["shortNames"] == ["tj"]
    assert crds["ModelDeployment"]["spec"]["names"]["shortNames"] == ["mdep"]
    for definition in crds.values():
        assert definition["spec"]["names"]["categories"] == ["mlops"]
        version = definition["spec"]["versions"][0]
        assert version["subresources"] == {"status": {}}
        columns = [column["name"] for column in version["additionalPrinterColumns"]]
        assert columns[0] == "Phase"
        assert columns[-1] == "Age"


def test_every_field_has_a_description() -> None:
    def walk(node: dict[str, Any], where: str) -> list[str]:
        missing = []
        for name, child in node.get("properties", {}).items():
            if where and name != "metadata" and not child.get("description"):
                missing.append(f"{where}.{name}")
            missing += walk(child, f"{where}.{name}" if where else name)
        if "items" in node:
            missing += walk(node["items"], f"{where}[]")
        return missing

    for kind in ("TrainingJob", "ModelDeployment"):
        assert walk(schema_of(kind), "") == []


def test_nested_defaults_reach_the_api_server() -> None:
    traffic = schema_of("ModelDeployment")["properties"]["spec"]["properties"]["traffic"]
    assert traffic["default"] == {}
    assert traffic["properties"]["interval"]["default"] == "1m"


@pytest.mark.parametrize(
    ("name", "document"), example_documents(), ids=[name for name, _ in example_documents()]
)
def test_example_matches_its_crd_schema(name: str, document: dict[str, Any]) -> None:
    jsonschema.Draft4Validator(schema_of(document["kind"])).validate(document)


def test_examples_cover_both_kinds_and_every_strategy() -> None:
    documents = [document for _, document in example_documents()]
    kinds = {document["kind"] for document in documents}
    strategies = {
        document["spec"].get("strategy", "canary")
        for document in documents
        if document["kind"] == "ModelDeployment"
    }
    assert kinds == {"TrainingJob", "ModelDeployment"}
    assert strategies == {"canary", "blueGreen", "abTest", "shadow"}
