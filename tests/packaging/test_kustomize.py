"""The kustomize base (deploy/kustomize): generated from the chart, built by kubectl, valid."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import kubernetes_validate
import pytest
import yaml

from .tools import KUBE_VERSION, NAMESPACE, REPO, render, tool

# helm and kubectl are real processes (built by hack/k8s/build.sh): the component layer.
pytestmark = pytest.mark.component


BASE = REPO / "deploy" / "kustomize"
GENERATOR = REPO / "hack" / "gen-kustomize.py"


@pytest.fixture(scope="module")
def built() -> list[dict[str, Any]]:
    result = subprocess.run(
        [str(tool("kubectl")), "kustomize", str(BASE)],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def test_base_is_generated_from_the_chart() -> None:
    check = subprocess.run(
        [
            sys.executable,
            str(REPO / "hack" / "gen-kustomize.py"),
            "--check",
            f"--helm={tool('helm')}",
        ],
        check=False,
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stdout + check.stderr


def test_kubectl_kustomize_builds_valid_objects(built: list[dict[str, Any]]) -> None:
    for obj in built:
        kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)


def test_base_has_the_charts_objects_in_its_namespace(built: list[dict[str, Any]]) -> None:
    def key(obj: dict[str, Any]) -> tuple[str, str]:
        return obj["kind"], obj["metadata"]["name"]

    chart = {key(obj) for obj in render() if obj["kind"] != "Pod"}  # no helm test
    assert {key(obj) for obj in built} == chart | {("Namespace", NAMESPACE)}
    for obj in built:
        labels = obj["metadata"].get("labels", {})
        assert labels.get("app.kubernetes.io/managed-by") == "kustomize", key(obj)
        assert "helm.sh/chart" not in labels, key(obj)
        if obj["kind"] in {"Deployment", "Service", "ServiceAccount", "ConfigMap"}:
            assert obj["metadata"]["namespace"] == NAMESPACE, key(obj)


def test_base_rbac_is_the_rules_file(built: list[dict[str, Any]]) -> None:
    rules = yaml.safe_load((REPO / "charts/mlops-operator/files/rbac-rules.yaml").read_text())
    (role,) = (obj for obj in built if obj["kind"] == "ClusterRole")
    assert role["rules"] == rules
    (binding,) = (obj for obj in built if obj["kind"] == "ClusterRoleBinding")
    assert binding["subjects"][0]["namespace"] == NAMESPACE


def test_selectors_are_not_relabelled(built: list[dict[str, Any]]) -> None:
    (deployment,) = (obj for obj in built if obj["kind"] == "Deployment")
    assert "app.kubernetes.io/managed-by" not in deployment["spec"]["selector"]["matchLabels"]


def test_the_image_overlay_moves_the_workload_image_too() -> None:
    """The documented overlay: `images:` sets the operator's image, and training and
    model-server Pods (MLOPS_IMAGE) follow it; nothing else is rewritten."""
    result = subprocess.run(
        [str(tool("kubectl")), "kustomize", str(REPO / "examples" / "kustomize-overlay")],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    objects = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    deployment = next(o for o in objects if o["kind"] == "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    env = {item["name"]: item.get("value") for item in container["env"]}
    assert container["image"] == "registry.example/mlops-operator:0.1.0"
    assert env["MLOPS_IMAGE"] == container["image"]
    assert env["MLOPS_IMAGE_PULL_POLICY"] == "IfNotPresent"
