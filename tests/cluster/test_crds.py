"""CRDs are accepted by a real API server, print their columns, and reject invalid objects."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from .harness import REPO, Cluster, wait_for

HERE = Path(__file__).parent
CRD_FILES = sorted([*(REPO / "crds").glob("*.yaml"), *(HERE / "data" / "crds").glob("*.yaml")])
INVALID_FILES = sorted(
    [
        *(REPO / "tests" / "data" / "invalid").glob("*.yaml"),
        *(HERE / "data" / "invalid").glob("*.yaml"),
    ]
)
VALID_FILES = sorted(
    [*(REPO / "examples").rglob("*.yaml"), *(HERE / "data" / "valid").glob("*.yaml")]
)
EXPECT = re.compile(r"^#\s*expect:\s*(.+?)\s*$", re.MULTILINE)
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io"


def crds_in(path: Path) -> list[dict[str, Any]]:
    docs = yaml.safe_load_all(path.read_text())
    return [d for d in docs if d and d.get("kind") == "CustomResourceDefinition"]


def storage_version(crd: dict[str, Any]) -> dict[str, Any]:
    return next(v for v in crd["spec"]["versions"] if v.get("storage"))


@pytest.fixture(scope="module")
def installed_crds(cluster: Cluster) -> list[dict[str, Any]]:
    crds = [crd for path in CRD_FILES for crd in crds_in(path)]
    cluster.apply(*crds)
    ext = client.ApiextensionsV1Api(cluster.api)
    for crd in crds:
        name = crd["metadata"]["name"]
        wait_for(f"CRD {name} Established", lambda name=name: _established(ext, name), 60)
    return crds


def _established(ext: client.ApiextensionsV1Api, name: str) -> bool:
    conditions = ext.read_custom_resource_definition(name).status.conditions or []
    status = {c.type: c.status for c in conditions}
    return status.get("Established") == "True" and status.get("NamesAccepted") == "True"


@pytest.mark.parametrize("path", CRD_FILES, ids=lambda p: p.name)
def test_crd_is_established_and_serves_its_printer_columns(
    cluster: Cluster, installed_crds: list[dict[str, Any]], namespace: str, path: Path
) -> None:
    for crd in crds_in(path):
        version = storage_version(crd)
        expected = [c["name"] for c in version.get("additionalPrinterColumns", [])]
        assert expected == _table_columns(cluster, crd, namespace)[1 : len(expected) + 1]


def _table_columns(cluster: Cluster, crd: dict[str, Any], namespace: str) -> list[str]:
    spec, version = crd["spec"], storage_version(crd)["name"]
    scope = f"/namespaces/{namespace}" if spec["scope"] == "Namespaced" else ""
    url = f"/apis/{spec['group']}/{version}{scope}/{spec['names']['plural']}"
    request = cluster.api.param_serialize(
        "GET", url, header_params={"Accept": TABLE}, auth_settings=["BearerToken"]
    )
    response = cluster.api.call_api(*request[:3])
    response.read()
    data = json.loads(response.data)
    return [c["name"] for c in data["columnDefinitions"]]


@pytest.mark.parametrize("path", VALID_FILES, ids=lambda p: p.name)
def test_kubectl_get_shows_printer_columns(
    cluster: Cluster, installed_crds: list[dict[str, Any]], namespace: str, path: Path
) -> None:
    kinds = {(c["spec"]["group"], c["spec"]["names"]["kind"]): c for c in installed_crds}
    for doc in yaml.safe_load_all(path.read_text()):
        crd = kinds.get((doc["apiVersion"].split("/")[0], doc["kind"]))
        if crd is None:
            continue
        cluster.apply(doc, namespace=namespace)
        resource = f"{crd['spec']['names']['plural']}.{crd['spec']['group']}"
        header = cluster.kubectl("get", resource, f"--namespace={namespace}").stdout.splitlines()[0]
        columns = [
            c["name"].upper() for c in storage_version(crd).get("additionalPrinterColumns", [])
        ]
        assert header.split() == ["NAME", *columns]


@pytest.mark.parametrize("path", INVALID_FILES, ids=lambda p: p.name)
def test_invalid_manifest_is_rejected_with_its_message(
    cluster: Cluster, installed_crds: list[dict[str, Any]], namespace: str, path: Path
) -> None:
    text = path.read_text()
    expected = EXPECT.findall(text)
    assert expected, f"{path} has no '# expect: <message>' line"
    result = cluster.kubectl(
        "create", "--dry-run=server", f"--namespace={namespace}", "-f", str(path), check=False
    )
    assert result.returncode != 0, f"{path.name} was accepted:\n{result.stdout}"
    for message in expected:
        assert message in result.stderr
