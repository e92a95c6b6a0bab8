"""The committed CRDs on a real API server: Established, printer columns, invalid specs rejected."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from kubernetes import client

from tests.corpus import InvalidManifest, crd_documents, example_documents, invalid_manifests

from .harness import Cluster, wait_for

TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io"
CRDS = crd_documents()
EXAMPLES = [
    pytest.param(name, doc, id=f"{name}:{doc['metadata']['name']}")
    for name, doc in example_documents()
]


@pytest.fixture(scope="module")
def installed_crds(cluster: Cluster) -> dict[str, dict[str, Any]]:
    cluster.apply(*CRDS.values())
    ext = client.ApiextensionsV1Api(cluster.api)
    for crd in CRDS.values():
        name = crd["metadata"]["name"]
        wait_for(f"CRD {name} Established", lambda name=name: established(ext, name), 60)
    return CRDS


def established(ext: client.ApiextensionsV1Api, name: str) -> bool:
    conditions = ext.read_custom_resource_definition(name).status.conditions or []
    status = {c.type: c.status for c in conditions}
    return status.get("Established") == "True" and status.get("NamesAccepted") == "True"


def storage_version(crd: dict[str, Any]) -> dict[str, Any]:
    return next(v for v in crd["spec"]["versions"] if v.get("storage"))


def printer_columns(crd: dict[str, Any]) -> list[str]:
    return [c["name"] for c in storage_version(crd).get("additionalPrinterColumns", [])]


def resource_name(crd: dict[str, Any]) -> str:
    return f"{crd['spec']['names']['plural']}.{crd['spec']['group']}"


@pytest.mark.parametrize("kind", sorted(CRDS))
def test_crd_is_established_and_serves_its_printer_columns(
    cluster: Cluster, installed_crds: dict[str, dict[str, Any]], namespace: str, kind: str
) -> None:
    crd = installed_crds[kind]
    expected = printer_columns(crd)
    assert expected, f"{kind} has no printer columns"
    assert table_columns(cluster, crd, namespace)[1 : len(expected) + 1] == expected


def table_columns(cluster: Cluster, crd: dict[str, Any], namespace: str) -> list[str]:
    """The columns the API server's Table output has (what `kubectl get` prints)."""
    spec = crd["spec"]
    scope = f"/namespaces/{namespace}" if spec["scope"] == "Namespaced" else ""
    url = f"/apis/{spec['group']}/{storage_version(crd)['name']}{scope}/{spec['names']['plural']}"
    request = cluster.api.param_serialize(
        "GET", url, header_params={"Accept": TABLE}, auth_settings=["BearerToken"]
    )
    response = cluster.api.call_api(*request[:3])
    response.read()
    return [c["name"] for c in json.loads(response.data)["columnDefinitions"]]


@pytest.mark.parametrize(("name", "document"), EXAMPLES)
def test_example_is_accepted_and_kubectl_get_shows_its_columns(
    cluster: Cluster,
    installed_crds: dict[str, dict[str, Any]],
    namespace: str,
    name: str,
    document: dict[str, Any],
) -> None:
    crd = installed_crds[document["kind"]]
    manifest = copy.deepcopy(document)
    manifest["metadata"].pop("namespace", None)
    cluster.apply(manifest, namespace=namespace)
    output = cluster.kubectl("get", resource_name(crd), f"--namespace={namespace}").stdout
    header, row = output.splitlines()[:2]
    expected = ["NAME", *(c.upper() for c in printer_columns(crd))]
    assert header.split()[: len(expected)] == expected
    assert row.split()[0] == manifest["metadata"]["name"]


@pytest.mark.parametrize("case", invalid_manifests(), ids=lambda c: c.id)
def test_invalid_manifest_is_rejected_by_the_api_server(
    cluster: Cluster,
    installed_crds: dict[str, dict[str, Any]],
    namespace: str,
    case: InvalidManifest,
) -> None:
    result = cluster.kubectl(
        "create", "--dry-run=server", f"--namespace={namespace}", "-f", str(case.path), check=False
    )
    assert result.returncode != 0, f"{case.path.name} was accepted:\n{result.stdout}"
    for message in case.expect:
        assert message in result.stderr
