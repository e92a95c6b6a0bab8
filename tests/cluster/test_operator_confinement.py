"""What a stolen operator token can do: the escalations of issue #18, replayed with the
operator's own ServiceAccount token against the real API server, under the chart's RBAC rules
and ValidatingAdmissionPolicy. Each is refused; the same objects made the operator's way
(labelled, owned, hardened) are accepted, so each refusal is about the escalation."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from mlops_operator.objects import (
    container_security_context,
    labels,
    pod_security_context,
)

from .harness import Cluster
from .operator_runner import (
    IMAGE,
    OPERATOR_ACCOUNT,
    OPERATOR_NAMESPACE,
    admission_policy,
    install_crds,
    install_rbac,
)

SYSTEM = "kube-system"


@pytest.fixture(scope="module")
def token(cluster: Cluster) -> Iterator[client.ApiClient]:
    """An API client that presents the operator's ServiceAccount token."""
    install_crds(cluster, ("TrainingJob", "ModelDeployment"))
    install_rbac(cluster)
    api = cluster.service_account_client(OPERATOR_NAMESPACE, OPERATOR_ACCOUNT, create=False)
    yield api
    api.close()


@pytest.fixture(scope="module")
def victims(cluster: Cluster) -> dict[str, str]:
    """What the cluster's admin has: a kube-system Deployment and aws-auth, and, in another
    namespace, a ServiceAccount bound to cluster-admin."""
    other = f"other-{uuid.uuid4().hex[:6]}"
    cluster.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": other}})
    system_deployment = deployment(SYSTEM, "coredns", owned=False)
    system_deployment["metadata"]["labels"] = {"k8s-app": "kube-dns"}
    cluster.apply(
        system_deployment,
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "aws-auth", "namespace": SYSTEM},
            "data": {"mapRoles": "[]"},
        },
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": "root", "namespace": other},
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": f"{other}-root"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "cluster-admin",
            },
            "subjects": [{"kind": "ServiceAccount", "name": "root", "namespace": other}],
        },
    )
    return {"other": other}


def deployment(namespace: str, name: str, *, owned: bool = True) -> dict[str, Any]:
    """A Deployment as the operator makes them: labelled, controlled by a ModelDeployment,
    hardened Pods (objects.py's security contexts), no token."""
    meta: dict[str, Any] = {"name": name, "namespace": namespace}
    if owned:
        meta["labels"] = labels(name, "model-server", "stable")
        meta["ownerReferences"] = [
            {
                "apiVersion": "mlops.dev/v1alpha1",
                "kind": "ModelDeployment",
                "name": name,
                "uid": str(uuid.uuid4()),
                "controller": True,
            }
        ]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta,
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "automountServiceAccountToken": False,
                    "securityContext": pod_security_context(10001),
                    "containers": [
                        {
                            "name": "main",
                            "image": IMAGE,
                            "securityContext": container_security_context(),
                        }
                    ],
                    "volumes": [{"name": "tmp", "emptyDir": {}}],
                },
            },
        },
    }


def job(namespace: str, name: str) -> dict[str, Any]:
    """A Job as the operator makes them (the training Job's shape)."""
    template = deployment(namespace, name)
    template["spec"]["template"]["spec"]["restartPolicy"] = "Never"
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": template["metadata"],
        "spec": {"template": template["spec"]["template"]},
    }


def service(namespace: str, name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": deployment(namespace, name)["metadata"],
        "spec": {"type": "ClusterIP", "selector": {"app": name}, "ports": [{"port": 80}]},
    }


def refused(attempt: Callable[[], object], why: str = "") -> str:
    """Runs the request; asserts the API server answered 403; returns its message."""
    with pytest.raises(ApiException) as error:
        attempt()
    assert error.value.status == 403, error.value.body
    body = str(error.value.body)
    assert why in body, body
    return body


def test_the_operators_own_shapes_are_accepted(
    cluster: Cluster, token: client.ApiClient, victims: dict[str, str], namespace: str
) -> None:
    """The control: labelled, owned, hardened objects pass RBAC and the policy."""
    apps, batch, core = client.AppsV1Api(token), client.BatchV1Api(token), client.CoreV1Api(token)
    apps.create_namespaced_deployment(namespace, deployment(namespace, "ok"), dry_run="All")
    batch.create_namespaced_job(namespace, job(namespace, "ok"), dry_run="All")
    core.create_namespaced_service(namespace, service(namespace, "ok"), dry_run="All")


def test_it_cannot_delete_or_scale_a_deployment_it_does_not_own(
    cluster: Cluster, token: client.ApiClient, victims: dict[str, str], namespace: str
) -> None:
    apps = client.AppsV1Api(token)
    refused(lambda: apps.delete_namespaced_deployment("coredns", SYSTEM), "labelled")
    refused(
        lambda: apps.patch_namespaced_deployment("coredns", SYSTEM, {"spec": {"replicas": 0}}),
        "labelled",
    )
    refused(
        lambda: apps.patch_namespaced_deployment_scale("coredns", SYSTEM, {"spec": {"replicas": 0}})
    )
    # Not only kube-system: a user's Deployment anywhere, and no relabelling it to make it ours.
    cluster.apply(deployment(namespace, "users", owned=False))
    refused(lambda: apps.delete_namespaced_deployment("users", namespace), "never relabel")
    relabel = {"metadata": {"labels": labels("users", "model-server", "stable")}}
    refused(lambda: apps.patch_namespaced_deployment("users", namespace, relabel), "relabel")
    found = client.AppsV1Api(cluster.api).read_namespaced_deployment("coredns", SYSTEM)
    assert found.spec.replicas == 1
    assert found.metadata.deletion_timestamp is None


def test_it_cannot_list_every_configmap_nor_patch_aws_auth(
    cluster: Cluster, token: client.ApiClient, victims: dict[str, str]
) -> None:
    core = client.CoreV1Api(token)
    refused(core.list_config_map_for_all_namespaces)
    refused(lambda: core.list_namespaced_config_map(SYSTEM))
    role = "- rolearn: arn:aws:iam::1:role/x\n  username: x\n  groups: [system:masters]"
    masters = {"data": {"mapRoles": role}}
    refused(lambda: core.patch_namespaced_config_map("aws-auth", SYSTEM, masters), "labelled")
    # Carrying the label does not make it the operator's either.
    ours = {**masters, "metadata": {"labels": labels("aws-auth", "router")}}
    refused(lambda: core.patch_namespaced_config_map("aws-auth", SYSTEM, ours), "relabel")
    refused(lambda: core.delete_namespaced_config_map("aws-auth", SYSTEM))
    data = client.CoreV1Api(cluster.api).read_namespaced_config_map("aws-auth", SYSTEM).data
    assert data == {"mapRoles": "[]"}


def with_pod(obj: dict[str, Any], change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    out = copy.deepcopy(obj)
    change(out["spec"]["template"]["spec"])
    return out


def _privileged(spec: dict[str, Any]) -> None:
    spec["containers"][0]["securityContext"]["privileged"] = True
    spec["containers"][0]["securityContext"]["allowPrivilegeEscalation"] = True


def _host_root(spec: dict[str, Any]) -> None:
    spec["volumes"].append({"name": "host", "hostPath": {"path": "/"}})
    spec["containers"][0]["volumeMounts"] = [{"name": "host", "mountPath": "/host"}]


def _cluster_admin(spec: dict[str, Any]) -> None:
    spec["serviceAccountName"] = "root"


def _token(spec: dict[str, Any]) -> None:
    spec["automountServiceAccountToken"] = True


def _host_network(spec: dict[str, Any]) -> None:
    spec["hostNetwork"] = True


def _host_pid(spec: dict[str, Any]) -> None:
    spec["hostPID"] = True


def _root_user(spec: dict[str, Any]) -> None:
    spec["securityContext"] = {"runAsUser": 0}
    del spec["containers"][0]["securityContext"]["runAsNonRoot"]


def _capability(spec: dict[str, Any]) -> None:
    spec["containers"][0]["securityContext"]["capabilities"] = {"add": ["SYS_ADMIN"]}


def _writable_root(spec: dict[str, Any]) -> None:
    spec["containers"][0]["securityContext"]["readOnlyRootFilesystem"] = False


def _privileged_init(spec: dict[str, Any]) -> None:
    spec["initContainers"] = [
        {"name": "init", "image": IMAGE, "securityContext": {"privileged": True}}
    ]


ESCALATIONS = {
    "privileged": (_privileged, "unprivileged"),
    "hostPath /": (_host_root, "hostPath"),
    "cluster-admin ServiceAccount": (_cluster_admin, "ServiceAccounts"),
    "token mounted": (_token, "mount no token"),
    "hostNetwork": (_host_network, "host namespace"),
    "hostPID": (_host_pid, "host namespace"),
    "root": (_root_user, "non-root"),
    "SYS_ADMIN": (_capability, "capability"),
    "writable root filesystem": (_writable_root, "read-only root"),
    "privileged init container": (_privileged_init, "unprivileged"),
}


@pytest.mark.parametrize("escalation", ESCALATIONS)
def test_it_cannot_start_a_pod_that_escapes(
    token: client.ApiClient, victims: dict[str, str], escalation: str
) -> None:
    """A Deployment that passes every other check, but for one thing; in the namespace of a
    ServiceAccount bound to cluster-admin (the issue's: privileged, hostPath /, as that
    account); so a Job."""
    change, why = ESCALATIONS[escalation]
    other = victims["other"]
    apps, batch = client.AppsV1Api(token), client.BatchV1Api(token)
    bad = with_pod(deployment(other, "evil"), change)
    refused(lambda: apps.create_namespaced_deployment(other, bad), why)
    refused(lambda: batch.create_namespaced_job(other, with_pod(job(other, "evil"), change)), why)


def test_the_issues_privileged_cluster_admin_deployment_is_refused(
    cluster: Cluster, token: client.ApiClient, victims: dict[str, str]
) -> None:
    """All three at once, as the attacker sent it, with and without our label."""
    other = victims["other"]
    apps = client.AppsV1Api(token)
    evil = deployment(other, "evil")
    for change in (_privileged, _host_root, _cluster_admin):
        evil = with_pod(evil, change)
    refused(lambda: apps.create_namespaced_deployment(other, evil))
    evil["metadata"] = {"name": "evil", "namespace": other}
    refused(lambda: apps.create_namespaced_deployment(other, evil))
    names = [
        d.metadata.name
        for d in client.AppsV1Api(cluster.api).list_namespaced_deployment(other).items
    ]
    assert "evil" not in names


def test_it_cannot_run_a_job_in_kube_system_as_a_controllers_account(
    token: client.ApiClient, victims: dict[str, str], namespace: str
) -> None:
    batch = client.BatchV1Api(token)
    controller = with_pod(
        job(SYSTEM, "evil"), lambda spec: spec.update(serviceAccountName="deployment-controller")
    )
    refused(lambda: batch.create_namespaced_job(SYSTEM, controller), "never writes in")
    # A hardened Job with our label is still refused there: kube-system is not ours.
    refused(lambda: batch.create_namespaced_job(SYSTEM, job(SYSTEM, "evil")), "never writes in")
    elsewhere = with_pod(
        job(namespace, "evil"), lambda spec: spec.update(serviceAccountName="deployment-controller")
    )
    refused(lambda: batch.create_namespaced_job(namespace, elsewhere), "ServiceAccounts")


def test_it_cannot_create_a_service_with_external_ips(
    token: client.ApiClient, victims: dict[str, str], namespace: str
) -> None:
    core = client.CoreV1Api(token)
    external = service(namespace, "evil")
    external["spec"]["externalIPs"] = ["203.0.113.10"]
    refused(lambda: core.create_namespaced_service(namespace, external), "externalIPs")
    node_port = service(namespace, "evil")
    node_port["spec"]["type"] = "NodePort"
    refused(lambda: core.create_namespaced_service(namespace, node_port), "ClusterIP")


def test_it_cannot_write_an_unlabelled_configmap(
    token: client.ApiClient, victims: dict[str, str], namespace: str
) -> None:
    """ConfigMaps it did not create: neither a new unlabelled one nor one without an owner."""
    core = client.CoreV1Api(token)
    plain = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "evil"}}
    refused(lambda: core.create_namespaced_config_map(namespace, plain), "labelled")
    labelled = {**plain, "metadata": {"name": "evil", "labels": labels("evil", "router")}}
    refused(lambda: core.create_namespaced_config_map(namespace, labelled), "ownerReference")


def test_the_policy_names_the_charts_service_accounts(cluster: Cluster) -> None:
    """operator.trainingServiceAccount and admissionPolicy.serviceAccounts join the default."""
    (policy, _binding) = admission_policy(
        cluster, "operator.trainingServiceAccount=trainer", "admissionPolicy.serviceAccounts={a,b}"
    )
    accounts = {v["name"]: v["expression"] for v in policy["spec"]["variables"]}["accounts"]
    assert accounts == '["default","a","b","trainer"]'
