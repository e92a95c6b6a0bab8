"""Every manifest of the invalid corpus is rejected, with a message that names the field."""

from __future__ import annotations

import jsonschema
import pytest

from mlops_operator.manifests import ManifestError, parse
from tests.corpus import InvalidManifest, crd_documents, invalid_manifests

CASES = invalid_manifests()


def crd_schema(kind: str) -> dict[str, object]:
    version = crd_documents()[kind]["spec"]["versions"][0]
    return version["schema"]["openAPIV3Schema"]  # type: ignore[no-any-return]


def cel_messages(node: object) -> list[str]:
    if isinstance(node, dict):
        own = [rule["message"] for rule in node.get("x-kubernetes-validations", [])]
        return own + [message for child in node.values() for message in cel_messages(child)]
    if isinstance(node, list):
        return [message for child in node for message in cel_messages(child)]
    return []


def test_the_corpus_covers_many_rules() -> None:
    assert len(CASES) >= 12
    assert {case.layer for case in CASES} == {"schema", "cel", "strict"}


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_models_reject_with_the_expected_message(case: InvalidManifest) -> None:
    with pytest.raises(ManifestError) as raised:
        parse(case.document, case.path.name)
    for expected in case.expect:
        assert expected in str(raised.value)


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_crd_rejects_it_in_the_layer_named(case: InvalidManifest) -> None:
    schema = crd_schema(case.document["kind"])
    errors = list(jsonschema.Draft4Validator(schema).iter_errors(case.document))
    if case.layer == "schema":
        assert errors, "the OpenAPI schema accepts it"
        return
    assert errors == [], "the header says the schema accepts it"
    if case.layer == "cel":
        assert any(case.expect[0] in message for message in cel_messages(schema))
