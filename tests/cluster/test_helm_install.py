"""The Helm chart installed with helm on the real control plane: accepted, upgraded, uninstalled.

The operator Pod runs on kwok's simulated node (its image is never pulled); what is tested
is the chart: every object created and accepted by the API server, the CRDs established,
the ServiceAccount's rights exactly the rules file's, `helm test`, upgrades and a clean
uninstall that keeps the CRDs and the model store.
"""

from __future__ import annotations

import subprocess
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import yaml
from kubernetes import client

from tests.corpus import ROOT
from tests.packaging.tools import CHART, helm_env

from .harness import CRD_NAMES, Cluster, wait_for
from .operator_runner import OperatorProcess

RELEASE = "helm-test"
FULLNAME = f"{RELEASE}-mlops-operator"


@dataclass
class Release:
    cluster: Cluster
    namespace: str

    def helm(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(self.cluster.binary("helm")), *args, f"--namespace={self.namespace}"],
            check=False,
            capture_output=True,
            text=True,
            env=helm_env(self.cluster.kubeconfig),
            timeout=timeout,
        )
        if result.returncode != 0:
            raise AssertionError(f"helm {' '.join(args)} failed:\n{result.stderr}{result.stdout}")
        return result

    def objects(self) -> list[dict[str, Any]]:
        manifest = self.helm("get", "manifest", RELEASE).stdout
        return [doc for doc in yaml.safe_load_all(manifest) if doc]


CLUSTER_SCOPED = {
    "CustomResourceDefinition",
    "ClusterRole",
    "ClusterRoleBinding",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding",
}


@pytest.fixture(scope="module")
def release(cluster: Cluster) -> Iterator[Release]:
    namespace = f"helm-{uuid.uuid4().hex[:8]}"
    cluster.core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
    cluster.adopt_crds(RELEASE, namespace)
    installed = Release(cluster, namespace)
    installed.helm("install", RELEASE, str(CHART), "--set=image.tag=test")
    yield installed
    cluster.core.delete_namespace(namespace)


def deployment_available(cluster: Cluster, namespace: str) -> bool:
    apps = client.AppsV1Api(cluster.api)
    found = apps.read_namespaced_deployment(FULLNAME, namespace)
    return bool(found.status.available_replicas == found.spec.replicas)


def test_install_creates_every_object(release: Release) -> None:
    cluster, namespace = release.cluster, release.namespace
    kinds = sorted(obj["kind"] for obj in release.objects())
    assert kinds == sorted(
        [
            "ClusterRole",
            "ClusterRoleBinding",
            "ConfigMap",
            "CustomResourceDefinition",
            "CustomResourceDefinition",
            "Deployment",
            "NetworkPolicy",
            "PersistentVolumeClaim",
            "PodDisruptionBudget",
            "Role",
            "RoleBinding",
            "Service",
            "ServiceAccount",
            "ValidatingAdmissionPolicy",
            "ValidatingAdmissionPolicyBinding",
        ]
    )
    for obj in release.objects():
        where = [obj["kind"].lower(), obj["metadata"]["name"]]
        if obj["kind"] not in CLUSTER_SCOPED:
            where.append(f"--namespace={namespace}")
        cluster.kubectl("get", *where)  # raises when the API server does not have it
    wait_for("the operator Deployment available", lambda: deployment_available(cluster, namespace))


def test_crds_are_established(release: Release) -> None:
    ext = client.ApiextensionsV1Api(release.cluster.api)

    def established(name: str) -> bool:
        conditions = ext.read_custom_resource_definition(name).status.conditions or []
        return any(c.type == "Established" and c.status == "True" for c in conditions)

    for name in CRD_NAMES:
        wait_for(f"CRD {name} established", lambda name=name: established(name))
        crd = ext.read_custom_resource_definition(name)
        assert crd.metadata.annotations["helm.sh/resource-policy"] == "keep"


def test_service_account_has_exactly_the_rules(release: Release) -> None:
    namespace = release.namespace
    authz = client.AuthorizationV1Api(release.cluster.api)

    def can(verb: str, group: str, resource: str, where: str = "default") -> bool:
        plural, _, subresource = resource.partition("/")
        review = client.V1SubjectAccessReview(
            spec=client.V1SubjectAccessReviewSpec(
                user=f"system:serviceaccount:{namespace}:{FULLNAME}",
                groups=["system:serviceaccounts", f"system:serviceaccounts:{namespace}"],
                resource_attributes=client.V1ResourceAttributes(
                    verb=verb,
                    group=group,
                    resource=plural,
                    subresource=subresource or None,
                    namespace=where,
                ),
            )
        )
        return bool(authz.create_subject_access_review(review).status.allowed)

    rules = yaml.safe_load((CHART / "files" / "rbac-rules.yaml").read_text())
    for rule in rules:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                for verb in rule["verbs"]:
                    assert can(verb, group, resource), f"{verb} {resource}.{group}"
    assert not can("get", "", "secrets")
    assert not can("create", "", "namespaces", "")
    assert not can("delete", "mlops.dev", "trainingjobs/status")
    assert not can("create", "rbac.authorization.k8s.io", "clusterroles", "")


def test_helm_test_checks_the_operator(release: Release) -> None:
    """`helm test` runs its Pod; kwok runs no container, so the test plays its kubelet."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["result"] = release.helm("test", RELEASE, "--timeout=120s")
        except AssertionError as error:
            outcome["error"] = error

    thread = threading.Thread(target=run)
    thread.start()
    name = f"{FULLNAME}-test-health"
    pods = release.cluster.core

    def created() -> bool:
        found = pods.list_namespaced_pod(release.namespace, field_selector=f"metadata.name={name}")
        return bool(found.items)

    wait_for(f"the helm test Pod {name}", created)
    release.cluster.set_pod_terminated(
        {"metadata": {"name": name, "namespace": release.namespace}}, 0
    )
    thread.join(150)
    assert "error" not in outcome, outcome["error"]
    assert "Phase:          Succeeded" in outcome["result"].stdout


def test_upgrade_to_watched_namespaces_rebinds_the_role(release: Release) -> None:
    cluster, namespace = release.cluster, release.namespace
    release.helm(
        "upgrade",
        RELEASE,
        str(CHART),
        "--reuse-values",
        f"--set=operator.watchNamespaces={{{namespace}}}",
    )
    kinds = {obj["kind"] for obj in release.objects()}
    assert "ClusterRoleBinding" not in kinds
    assert "ClusterRole" not in kinds
    assert "RoleBinding" in kinds
    rbac = client.RbacAuthorizationV1Api(cluster.api)
    binding = rbac.read_namespaced_role_binding(FULLNAME, namespace)
    assert (binding.role_ref.kind, binding.role_ref.name) == ("Role", FULLNAME)
    rules = yaml.safe_load((CHART / "files" / "rbac-rules.yaml").read_text())
    role = rbac.read_namespaced_role(FULLNAME, namespace)
    assert len(role.rules) == len(rules)
    env = client.AppsV1Api(cluster.api).read_namespaced_deployment(FULLNAME, namespace)
    values = {e.name: e.value for e in env.spec.template.spec.containers[0].env}
    assert values["MLOPS_NAMESPACES"] == namespace
    assert release.helm("history", RELEASE).stdout.count("\n") >= 3


def test_the_operator_runs_as_the_charts_service_account_with_its_settings(
    release: Release,
) -> None:
    """`mlops operator` with the Deployment's env, as its ServiceAccount (after the upgrade
    above: a RoleBinding in the watched namespace only) trains a TrainingJob there."""
    cluster, namespace = release.cluster, release.namespace
    deployment = client.AppsV1Api(cluster.api).read_namespaced_deployment(FULLNAME, namespace)
    ports = {"MLOPS_LIVENESS_PORT", "MLOPS_METRICS_PORT"}  # the process picks free ones
    env = {
        e.name: e.value
        for e in deployment.spec.template.spec.containers[0].env
        if e.value is not None and e.name not in ports
    }
    kubeconfig = cluster.service_account_kubeconfig(namespace, FULLNAME, create=False)
    operator = OperatorProcess(kubeconfig, cluster.workdir, settings=env)
    operator.start()
    try:
        example = yaml.safe_load((ROOT / "examples/quickstart/01-trainingjob-v1.yaml").read_text())
        custom = client.CustomObjectsApi(cluster.api)
        custom.create_namespaced_custom_object(
            "mlops.dev", "v1alpha1", namespace, "trainingjobs", example
        )
        batch = client.BatchV1Api(cluster.api)
        wait_for(
            "the training Job",
            lambda: batch.list_namespaced_job(namespace).items,
            60,
        )

        def phase() -> str | None:
            body = custom.get_namespaced_custom_object(
                "mlops.dev", "v1alpha1", namespace, "trainingjobs", example["metadata"]["name"]
            )
            return body.get("status", {}).get("phase")

        assert wait_for("the TrainingJob's phase", phase, 60) in {"Pending", "Running"}
        (job,) = batch.list_namespaced_job(namespace).items
        volumes = job.spec.template.spec.volumes or []
        claims = [
            v.persistent_volume_claim.claim_name for v in volumes if v.persistent_volume_claim
        ]
        assert claims == [f"{FULLNAME}-models"]
        assert "mlops_reconcile_total" in operator.get("/metrics", operator.metrics_port)
        assert "forbidden" not in operator.logs().lower()
    finally:
        operator.stop()


def test_uninstall_keeps_the_crds_and_the_model_store(release: Release) -> None:
    cluster, namespace = release.cluster, release.namespace
    release.helm("uninstall", RELEASE, "--wait", "--timeout=120s")
    ext = client.ApiextensionsV1Api(cluster.api)
    for name in CRD_NAMES:
        assert ext.read_custom_resource_definition(name).metadata.name == name
    claims = cluster.core.list_namespaced_persistent_volume_claim(namespace).items
    assert [c.metadata.name for c in claims] == [f"{FULLNAME}-models"]
    apps = client.AppsV1Api(cluster.api)
    assert apps.list_namespaced_deployment(namespace).items == []
    rbac = client.RbacAuthorizationV1Api(cluster.api)
    names = [r.metadata.name for r in rbac.list_cluster_role().items]
    assert FULLNAME not in names
