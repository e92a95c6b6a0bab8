"""The committed CRDs on a real API server: Established, printer columns, invalid specs rejected."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from tests.corpus import InvalidManifest, crd_documents, example_documents, invalid_manifests

from .harness import Cluster, crd_established, wait_for

TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io"
CRDS = crd_documents()
EXAMPLES = [
    pytest.param(name, doc, id=f"{name}:{doc['metadata']['name']}")
    for name, doc in example_documents()
]


@pytest.fixture(scope="module")
def rejected_crds(cluster: Cluster) -> dict[str, str]:
    """Installs every committed CRD; returns the API server's message for each one it refused."""
    rejected = {}
    for kind, crd in CRDS.items():
        result = cluster.kubectl(
            "apply",
            "--server-side",
            "--field-manager=tests",
            "-f",
            "-",
            input=json.dumps(crd),
            check=False,
        )
        if result.returncode != 0:
            rejected[kind] = result.stderr
            continue
        name = crd["metadata"]["name"]
        wait_for(f"CRD {name} Established", lambda name=name: crd_established(cluster.api, name))
    return rejected


def require_crd(rejected_crds: dict[str, str], kind: str) -> dict[str, Any]:
    if kind in rejected_crds:
        pytest.skip(f"the API server refused the {kind} CRD (see test_crd_is_established)")
    return CRDS[kind]


def storage_version(crd: dict[str, Any]) -> dict[str, Any]:
    return next(v for v in crd["spec"]["versions"] if v.get("storage"))


def printer_columns(crd: dict[str, Any]) -> list[str]:
    return [c["name"] for c in storage_version(crd).get("additionalPrinterColumns", [])]


def resource_name(crd: dict[str, Any]) -> str:
    return f"{crd['spec']['names']['plural']}.{crd['spec']['group']}"


@pytest.mark.parametrize("kind", sorted(CRDS))
def test_crd_is_established_and_serves_its_printer_columns(
    cluster: Cluster, rejected_crds: dict[str, str], namespace: str, kind: str
) -> None:
    assert kind not in rejected_crds, rejected_crds[kind]
    crd = CRDS[kind]
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
    rejected_crds: dict[str, str],
    namespace: str,
    name: str,
    document: dict[str, Any],
) -> None:
    crd = require_crd(rejected_crds, document["kind"])
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
    rejected_crds: dict[str, str],
    namespace: str,
    case: InvalidManifest,
) -> None:
    require_crd(rejected_crds, case.document["kind"])
    result = cluster.kubectl(
        "create", "--dry-run=server", f"--namespace={namespace}", "-f", str(case.path), check=False
    )
    assert result.returncode != 0, f"{case.path.name} was accepted:\n{result.stdout}"
    for message in case.expect:
        assert message in result.stderr, result.stderr
