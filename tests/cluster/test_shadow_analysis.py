"""A shadow judged against stable on a real control plane: the operator gives the shadow's
Deployment the stable model as its reference, reads the agreement its model servers (real
`mlops serve` on loopback, started with that reference) count on the mirrored rows, rolls back
a shadow that disagrees with stable and keeps judging, never promoting, one that agrees."""

from __future__ import annotations

import http.client
import random
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from tests.component.servers import Server, infer, model_server
from tests.component.shadow_models import (
    MIN_AGREEMENT,
    SHADOWS,
    Models,
    fit_shadow_models,
    reference_env,
    shadow_deployment,
)

from .harness import Cluster, wait_for
from .operator_runner import OperatorProcess, loopback_operator

GROUP, VERSION = "mlops.dev", "v1alpha1"
NAMESPACE = "shadow-e2e"


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Models:
    return fit_shadow_models(tmp_path_factory.mktemp("shadow-models"))


@pytest.fixture(scope="module")
def servers(models: Models) -> Iterator[dict[str, Server]]:
    reference = reference_env(models)
    with (
        model_server(*models.artifacts["stable"], "stable") as stable,
        model_server(*models.artifacts["agreeing"], "canary", extra_env=reference) as agreeing,
        model_server(*models.artifacts["shuffled"], "canary", extra_env=reference) as shuffled,
    ):
        yield {"stable": stable, "agreeing": agreeing, "shuffled": shuffled}


@pytest.fixture(scope="module")
def operator(cluster: Cluster, servers: dict[str, Server]) -> Iterator[OperatorProcess]:
    targets = {
        f"{NAMESPACE}/{shadow}": {
            "stable": [servers["stable"].metrics_url],
            "canary": [servers[shadow].metrics_url],
        }
        for shadow in SHADOWS
    }
    with loopback_operator(cluster, NAMESPACE, targets) as runner:
        yield runner


def manifest(name: str, models: Models) -> dict[str, Any]:
    def model(which: str) -> dict[str, str]:
        uri, digest = models.artifacts[which]
        return {"uri": "file://" + uri, "digest": digest}

    found = shadow_deployment(name, model)
    found["metadata"]["namespace"] = NAMESPACE
    return found


def mirrored(servers: dict[str, Server], models: Models, stop: threading.Event) -> None:
    """What the router does under shadow: every row to stable, and a copy to each shadow."""
    pick = random.Random(5)
    values = models.frame.to_numpy().tolist()
    conns = {
        name: http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        for name, server in servers.items()
    }
    try:
        while not stop.wait(0.01):
            row = [round(v + pick.gauss(0, 0.3), 2) for v in pick.choice(values)]
            for name, server in servers.items():
                infer(server.port, row, conn=conns[name])
    finally:
        for conn in conns.values():
            conn.close()


def md_status(custom: client.CustomObjectsApi, name: str) -> dict[str, Any]:
    found = custom.get_namespaced_custom_object(GROUP, VERSION, NAMESPACE, "modeldeployments", name)
    return found.get("status") or {}


def container_env(cluster: Cluster, deployment: str) -> dict[str, str]:
    apps = client.AppsV1Api(cluster.api)
    found = wait_for(
        f"Deployment {deployment}",
        lambda: (
            apps.list_namespaced_deployment(
                NAMESPACE, field_selector=f"metadata.name={deployment}"
            ).items
        ),
        30,
    )
    (container,) = found[0].spec.template.spec.containers
    return {e.name: e.value for e in container.env or []}


def test_a_shadow_is_judged_on_its_agreement_with_stable(
    cluster: Cluster, operator: OperatorProcess, servers: dict[str, Server], models: Models
) -> None:
    custom = client.CustomObjectsApi(cluster.api)
    for shadow in SHADOWS:
        custom.create_namespaced_custom_object(
            GROUP, VERSION, NAMESPACE, "modeldeployments", manifest(shadow, models)
        )
    stable_digest = models.artifacts["stable"][1]
    for shadow in SHADOWS:
        env = container_env(cluster, f"{shadow}-canary")
        assert env["MLOPS_REFERENCE_MODEL_DIGEST"] == stable_digest
        assert env["MLOPS_REFERENCE_MODEL_URI"].endswith("/stable")
        assert "MLOPS_REFERENCE_MODEL_URI" not in container_env(cluster, f"{shadow}-stable")

    stop = threading.Event()
    load = threading.Thread(target=mirrored, args=(servers, models, stop), daemon=True)
    load.start()
    try:
        rolled_back = wait_for(
            "the disagreeing shadow rolled back",
            lambda: (s := md_status(custom, "shuffled")).get("phase") == "RolledBack" and s,
            90,
        )
        agreeing = wait_for(
            "an analysed interval of the agreeing shadow",
            lambda: (
                ((s := md_status(custom, "agreeing")).get("analysis") or {}).get("canary") and s
            ),
            30,
        )
    finally:
        stop.set()
        load.join(10)

    analysis = rolled_back["analysis"]
    print(f"\nshuffled: {rolled_back['message']}\nagreeing: {agreeing['analysis']['message']}")
    assert analysis["canary"]["agreement"] < MIN_AGREEMENT
    assert f"< minAgreement {MIN_AGREEMENT:g}" in rolled_back["message"]
    assert rolled_back["history"][-1]["outcome"] == "RolledBack"

    assert agreeing["phase"] == "Progressing", agreeing
    judged = agreeing["analysis"]
    assert judged["canary"]["agreement"] >= MIN_AGREEMENT
    assert judged["canary"]["compared"] >= 20
    assert "latencyP99Ratio" in judged["comparison"]
    assert judged["stable"]["requests"] >= 20
    assert [h.get("outcome") for h in agreeing["history"]] == [None], "a shadow is never promoted"
