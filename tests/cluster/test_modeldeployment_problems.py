"""Specs the API server accepts whose children it refuses, on a real control plane: each ends
in Degraded with the reason and the API server's words, and a Warning Event; a running
rollout holds at its weight; fixed, it carries on."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from .harness import Cluster, wait_for
from .operator_runner import OperatorProcess, install_crds, install_rbac, rbac_refusals
from .rollouts import condition

GROUP, VERSION, PLURAL = "mlops.dev", "v1alpha1", "modeldeployments"
HTTPROUTES = "httproutes.gateway.networking.k8s.io"
STABLE = {"uri": "pvc://models/iris/1", "digest": "sha256:" + "1" * 64}
CANARY = {"uri": "pvc://models/iris/2", "digest": "sha256:" + "2" * 64}


@pytest.fixture(scope="module")
def operator(cluster: Cluster) -> Iterator[OperatorProcess]:
    install_crds(cluster, ("TrainingJob", "ModelDeployment"))
    kubeconfig = install_rbac(cluster)
    runner = OperatorProcess(
        kubeconfig,
        cluster.workdir,
        settings={"MLOPS_ANALYSIS_TICK_SECONDS": "0.5", "MLOPS_ROUTER_REPLICAS": "1"},
    )
    runner.start()
    yield runner
    runner.stop()
    assert rbac_refusals(runner.logs()) == [], "the operator was refused something it needs"


@pytest.fixture
def without_httproutes(cluster: Cluster) -> Iterator[None]:
    """No Gateway API HTTPRoute kind for the test (other modules may have installed it)."""
    ext = client.ApiextensionsV1Api(cluster.api)
    try:
        crd = ext.read_custom_resource_definition(HTTPROUTES)
    except ApiException as error:
        if error.status != 404:
            raise
        crd = None
    if crd is not None:
        ext.delete_custom_resource_definition(HTTPROUTES)
        wait_for("HTTPRoute CRD gone", lambda: not _served(ext), 60)
    yield
    if crd is not None:
        saved = cluster.api.sanitize_for_serialization(crd)
        saved["metadata"] = {
            "name": HTTPROUTES,
            "annotations": saved["metadata"].get("annotations"),
        }
        saved.pop("status", None)
        cluster.apply(saved)
        wait_for("HTTPRoute CRD back", lambda: _served(ext), 60)


def _served(ext: client.ApiextensionsV1Api) -> bool:
    try:
        ext.read_custom_resource_definition(HTTPROUTES)
    except ApiException as error:
        if error.status == 404:
            return False
        raise
    return True


def manifest(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ModelDeployment",
        "metadata": {"name": name},
        "spec": {"stable": {"model": STABLE}, **spec},
    }


def status(custom: client.CustomObjectsApi, namespace: str, name: str) -> dict[str, Any]:
    body = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
    return body.get("status") or {}


def degraded_by(
    custom: client.CustomObjectsApi, namespace: str, name: str, reason: str
) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        found = status(custom, namespace, name)
        degraded = condition(found, "Degraded")
        return (
            found if (degraded.get("status"), degraded.get("reason")) == ("True", reason) else None
        )

    return wait_for(f"{name} Degraded ({reason})", check, 60)


def warnings(cluster: Cluster, namespace: str, name: str) -> list[tuple[str, str]]:
    found = cluster.core.list_namespaced_event(
        namespace, field_selector=f"involvedObject.name={name},involvedObject.kind=ModelDeployment"
    )
    return [(e.reason, e.message) for e in found.items if e.type == "Warning"]


CASES = {
    "resource-name": (
        {"stable": {"model": STABLE, "resources": {"requests": {"gpu": 1}}}},
        "ChildRejected",
        [
            "the API server refused a child",
            '"mdep-resource-name-stable" is invalid',
            "requests[gpu]",
        ],
    ),
    "no-gateway-api": (
        {"router": {"provider": "gatewayAPI", "parentRefs": [{"name": "public"}]}},
        "MissingKind",
        ["HTTPRoute is not served by the API server", "install that kind's CRDs"],
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.usefixtures("without_httproutes")
def test_a_child_the_server_refuses_is_degraded_with_its_words(
    cluster: Cluster, operator: OperatorProcess, namespace: str, case: str
) -> None:
    spec, reason, says = CASES[case]
    name = f"mdep-{case}"
    custom = client.CustomObjectsApi(cluster.api)
    custom.create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, manifest(name, **spec)
    )
    found = degraded_by(custom, namespace, name, reason)
    for words in says:
        assert words in condition(found, "Degraded")["message"]
    assert condition(found, "Ready")["status"] == "False"
    events = wait_for("a Warning Event", lambda: warnings(cluster, namespace, name), 20)
    assert events[0][0] == reason
    assert says[-1] in events[0][1]


def test_a_running_rollout_whose_new_spec_is_refused_holds_its_weight(
    cluster: Cluster, operator: OperatorProcess, namespace: str
) -> None:
    custom = client.CustomObjectsApi(cluster.api)
    body = manifest("held", canary={"model": CANARY}, traffic={"canaryWeight": 30})
    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)
    wait_for(
        "the canary at 30%",
        lambda: status(custom, namespace, "held").get("canaryWeight") == 30,
        60,
    )
    broken = {"spec": {"canary": {"model": CANARY, "resources": {"limits": {"gpu": 1}}}}}
    custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "held", broken)
    found = degraded_by(custom, namespace, "held", "ChildRejected")
    assert '"held-canary" is invalid' in condition(found, "Degraded")["message"]
    assert (found["phase"], found["canaryWeight"]) == ("Progressing", 30)
    fixed = {"spec": {"canary": {"model": CANARY, "resources": None}}}
    custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "held", fixed)
    wait_for(
        "Degraded cleared",
        lambda: condition(status(custom, namespace, "held"), "Degraded").get("status") == "False",
        60,
    )
    assert status(custom, namespace, "held")["canaryWeight"] == 30
    assert len(warnings(cluster, namespace, "held")) == 1


def test_a_prometheus_nobody_answers_at_holds_the_rollout_degraded(
    cluster: Cluster, operator: OperatorProcess, namespace: str
) -> None:
    custom = client.CustomObjectsApi(cluster.api)
    body = manifest(
        "blind",
        canary={"model": CANARY},
        traffic={"canaryWeight": 30, "interval": "1s"},
        analysis={"metrics": {"source": "prometheus", "prometheusUrl": "http://127.0.0.1:9"}},
    )
    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)
    found = degraded_by(custom, namespace, "blind", "MetricsUnavailable")
    message = condition(found, "Degraded")["message"]
    assert (
        "analysis.metrics.prometheusUrl: cannot query Prometheus at http://127.0.0.1:9" in message
    )
    assert (found["phase"], found["canaryWeight"]) == ("Progressing", 30)
    events = wait_for("a Warning Event", lambda: warnings(cluster, namespace, "blind"), 20)
    assert [reason for reason, _ in events] == ["MetricsUnavailable"]
