"""The control plane runs workloads: controllers, scheduler and kwok (or a real kubelet)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes import client

from .controlplane import AUTO_COMPLETE_LABEL
from .harness import BUILD_SCRIPT, FAKE_NODE, Cluster, wait_for

IMAGE = "busybox:1.37"


def deployment(name: str, replicas: int) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [{"name": "main", "image": IMAGE, "command": ["sleep", "3600"]}]
                },
            },
        },
    }


def job(name: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "metadata": {"labels": labels or {}},
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "main", "image": IMAGE, "command": ["true"]}],
                },
            },
        },
    }


def job_condition(cluster: Cluster, namespace: str, name: str, kind: str) -> bool:
    status = client.BatchV1Api(cluster.api).read_namespaced_job_status(name, namespace).status
    return any(c.type == kind and c.status == "True" for c in status.conditions or [])


def job_pod(cluster: Cluster, namespace: str, name: str) -> client.V1Pod | None:
    pods = cluster.core.list_namespaced_pod(namespace, label_selector=f"job-name={name}").items
    return pods[0] if pods else None


def test_server_reports_the_pinned_version(cluster: Cluster) -> None:
    version = cluster.server_version()
    assert version.startswith("v1.")
    if cluster.simulated:
        assert f"k8s.io/kubernetes {version}" in (BUILD_SCRIPT.parent / "go.mod").read_text()


def test_deployment_becomes_available(cluster: Cluster, namespace: str) -> None:
    cluster.apply(deployment("web", replicas=2), namespace=namespace)
    apps = client.AppsV1Api(cluster.api)

    def available() -> bool:
        status = apps.read_namespaced_deployment_status("web", namespace).status
        return status.available_replicas == 2

    wait_for("Deployment web available", available, 90)
    pods = cluster.core.list_namespaced_pod(namespace, label_selector="app=web").items
    assert all(p.status.phase == "Running" for p in pods)
    if cluster.simulated:
        assert {p.spec.node_name for p in pods} == {FAKE_NODE}


def test_job_completes(cluster: Cluster, namespace: str) -> None:
    cluster.apply(job("done", {AUTO_COMPLETE_LABEL: "true"}), namespace=namespace)
    wait_for("Job done Complete", lambda: job_condition(cluster, namespace, "done", "Complete"), 90)


@pytest.fixture
def simulated(cluster: Cluster) -> Cluster:
    if not cluster.simulated:
        pytest.skip("plays the kubelet: only on the simulated cluster")
    return cluster


def test_set_pod_terminated_completes_a_job_with_a_termination_message(
    simulated: Cluster, namespace: str
) -> None:
    simulated.apply(job("train"), namespace=namespace)
    pod = wait_for("Job train's pod", lambda: job_pod(simulated, namespace, "train"), 60)
    result = json.dumps({"accuracy": 0.97})
    simulated.set_pod_terminated(pod, 0, result)
    wait_for(
        "Job train Complete", lambda: job_condition(simulated, namespace, "train", "Complete"), 60
    )
    done = simulated.core.read_namespaced_pod(pod.metadata.name, namespace)
    terminated = done.status.container_statuses[0].state.terminated
    assert (done.status.phase, terminated.exit_code, terminated.message) == ("Succeeded", 0, result)


def test_set_pod_terminated_fails_a_job(simulated: Cluster, namespace: str) -> None:
    simulated.apply(job("broken"), namespace=namespace)
    pod = wait_for("Job broken's pod", lambda: job_pod(simulated, namespace, "broken"), 60)
    simulated.set_pod_terminated(pod, 3, "quality gate failed", "QualityGate")
    wait_for(
        "Job broken Failed", lambda: job_condition(simulated, namespace, "broken", "Failed"), 60
    )
    terminated = (
        simulated.core.read_namespaced_pod(pod.metadata.name, namespace)
        .status.container_statuses[0]
        .state.terminated
    )
    assert (terminated.exit_code, terminated.reason, terminated.message) == (
        3,
        "QualityGate",
        "quality gate failed",
    )


def test_service_account_is_bound_by_rbac(cluster: Cluster, namespace: str) -> None:
    sa = client.CoreV1Api(cluster.service_account_client(namespace, "reader"))
    with pytest.raises(client.ApiException) as denied:
        sa.list_namespaced_pod(namespace)
    assert denied.value.status == 403
    cluster.apply(*pod_reader_rbac(namespace, "reader"), namespace=namespace)
    wait_for("RBAC grant", lambda: can_list_pods(sa, namespace), 30)


def can_list_pods(core: client.CoreV1Api, namespace: str) -> bool:
    try:
        core.list_namespaced_pod(namespace)
    except client.ApiException as exc:
        if exc.status == 403:
            return False
        raise
    return True


def pod_reader_rbac(namespace: str, account: str) -> list[dict[str, Any]]:
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": "pod-reader"},
        "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}],
    }
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": "pod-reader"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "pod-reader"},
        "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": namespace}],
    }
    return [role, binding]
