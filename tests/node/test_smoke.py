"""The real node works as a node: Ready, Pods run, Services and DNS work, claims bind."""

from __future__ import annotations

from typing import Any

from kubernetes import client

from tests.cluster.harness import Cluster, wait_for

from .host import CLUSTER_DNS, NODE_ADDRESS, NODE_NAME
from .realnode import STORAGE_CLASS, RealNode, probe_image

POD_TIMEOUT = 120


def probe_pod(name: str, *args: str, **spec: Any) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": "probe",
        "image": probe_image(),
        "imagePullPolicy": "Never",
        "args": list(args),
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "resources": {"limits": {"cpu": "100m", "memory": "32Mi"}},
    }
    container.update(spec.pop("container", {}))
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "restartPolicy": "Never",
            "automountServiceAccountToken": False,
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": 10001,
                "runAsGroup": 10001,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [container],
            **spec,
        },
    }


def phase(cluster: Cluster, namespace: str, name: str) -> str:
    return str(cluster.core.read_namespaced_pod(name, namespace).status.phase)


def wait_succeeded(cluster: Cluster, namespace: str, name: str) -> str:
    def done() -> str | None:
        current = phase(cluster, namespace, name)
        if current == "Failed":
            log = cluster.core.read_namespaced_pod_log(name, namespace)
            raise AssertionError(f"pod {name} failed:\n{log}")
        return current if current == "Succeeded" else None

    wait_for(f"pod {name} Succeeded", done, POD_TIMEOUT)
    return str(cluster.core.read_namespaced_pod_log(name, namespace))


def test_the_node_is_ready_with_containerd_2(cluster: Cluster, node: RealNode) -> None:
    found = cluster.core.read_node(NODE_NAME)
    info = found.status.node_info
    assert info.container_runtime_version.startswith("containerd://2.")
    assert info.kubelet_version == cluster.server_version()
    addresses = {a.type: a.address for a in found.status.addresses}
    assert addresses["InternalIP"] == NODE_ADDRESS
    assert any(c.type == "Ready" and c.status == "True" for c in found.status.conditions)


def test_a_pod_runs_and_logs(cluster: Cluster, node: RealNode, namespace: str) -> None:
    cluster.apply(probe_pod("hello", "resolve", "localhost"), namespace=namespace)
    log = wait_succeeded(cluster, namespace, "hello")
    assert "localhost" in log
    pod = cluster.core.read_namespaced_pod("hello", namespace)
    assert pod.spec.node_name == NODE_NAME
    assert pod.status.pod_ip.startswith("10.244.128.")


def test_dns_and_a_cluster_ip_service(cluster: Cluster, node: RealNode, namespace: str) -> None:
    server = probe_pod(
        "web",
        "serve",
        ":8080",
        container={
            "ports": [{"containerPort": 8080}],
            "readinessProbe": {"httpGet": {"path": "/", "port": 8080}, "periodSeconds": 1},
        },
    )
    server["spec"]["restartPolicy"] = "Always"
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]},
    }
    cluster.apply(server, service, namespace=namespace)
    wait_for("web Ready", lambda: _ready(cluster.core, namespace, "web"), POD_TIMEOUT)
    fqdn = f"web.{namespace}.svc.cluster.local"
    client_pod = probe_pod("client", "resolve", "kubernetes.default.svc.cluster.local", fqdn)
    cluster.apply(client_pod, namespace=namespace)
    log = wait_succeeded(cluster, namespace, "client")
    cluster_ip = cluster.core.read_namespaced_service("web", namespace).spec.cluster_ip
    assert f"{fqdn} [{cluster_ip}]" in log
    assert "kubernetes.default.svc.cluster.local [10.96.0.1]" in log
    pod = cluster.core.read_namespaced_pod("client", namespace)
    assert pod.spec.dns_policy == "ClusterFirst"
    cluster.apply(probe_pod("get", "get", "http://web"), namespace=namespace)
    assert wait_succeeded(cluster, namespace, "get") == "200 web\n"
    # The kubernetes Service reaches the API server (a 401/403 answer is an answer).
    cluster.apply(probe_pod("api", "get", "https://kubernetes.default"), namespace=namespace)
    wait_for("api pod done", lambda: phase(cluster, namespace, "api") in ("Succeeded", "Failed"))
    assert "certificate" in cluster.core.read_namespaced_pod_log("api", namespace)
    assert CLUSTER_DNS


def test_a_claim_binds_and_a_non_root_pod_writes_to_it(
    cluster: Cluster, node: RealNode, namespace: str
) -> None:
    claim = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    }
    writer = probe_pod(
        "writer",
        "write",
        "/data/hello.txt",
        "written on the real node",
        container={"volumeMounts": [{"name": "data", "mountPath": "/data"}]},
        volumes=[{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}],
    )
    cluster.apply(claim, writer, namespace=namespace)
    assert wait_succeeded(cluster, namespace, "writer") == "written by uid 10001\n"
    bound = cluster.core.read_namespaced_persistent_volume_claim("data", namespace)
    assert bound.spec.storage_class_name == STORAGE_CLASS
    volume = cluster.core.read_persistent_volume(bound.spec.volume_name)
    path = volume.spec.local.path
    assert (node.root / "volumes").as_posix() in path
    from pathlib import Path

    assert Path(path, "hello.txt").read_text() == "written on the real node"


def _ready(core: client.CoreV1Api, namespace: str, name: str) -> bool:
    pod = core.read_namespaced_pod(name, namespace)
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])
