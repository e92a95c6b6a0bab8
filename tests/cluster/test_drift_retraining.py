"""Drift-triggered retraining on a real control plane, the whole loop with no person in it:
drift injected into the stable model's traffic (a real model server on loopback) starts
exactly one run of the TrainingJob behind it; the run's model (the kubelet played with its
result) passes its gate, the canary that follows the TrainingJob's label rolls it out, and it
is promoted by itself."""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from mlops_operator.objects import LABEL_SCHEDULED_BY, LABEL_TRAININGJOB
from tests.component.servers import infer, iris_artifacts, model_server, send

from .harness import Cluster, wait_for
from .operator_runner import OperatorProcess, loopback_operator

GROUP, VERSION = "mlops.dev", "v1alpha1"
NAMESPACE = "drift-e2e"
DRIFTED_ROW = [7.9, 4.4, 6.9, 2.5]  # every feature at the edge of iris: far from training


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("drift-models")
    artifacts = iris_artifacts(root)
    from model_server.testing import iris_artifact

    v2 = root / "retrained"
    artifacts["retrained"] = (str(v2), iris_artifact(v2, version="2"))
    drift = {"MLOPS_DRIFT_MIN_ROWS": "50"}
    with (
        model_server(*artifacts["good"], "stable", extra_env=drift) as stable,
        model_server(*artifacts["retrained"], "canary") as canary,
    ):
        yield {"artifacts": artifacts, "stable": stable, "canary": canary}


@pytest.fixture(scope="module")
def operator(cluster: Cluster, servers: dict[str, Any]) -> Iterator[OperatorProcess]:
    targets = {
        f"{NAMESPACE}/iris": {
            "stable": [servers["stable"].metrics_url],
            "canary": [servers["canary"].metrics_url],
        }
    }
    with loopback_operator(cluster, NAMESPACE, targets) as runner:
        yield runner


def drifted(port: int, stop: threading.Event) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        while not stop.is_set():
            infer(port, DRIFTED_ROW, conn=conn)
            time.sleep(0.02)
    finally:
        conn.close()


def result(model: tuple[str, str]) -> dict[str, Any]:
    return {
        "phase": "Succeeded",
        "reason": "Trained",
        "exitCode": 0,
        "message": "trained DecisionTreeClassifier: accuracy=0.9667",
        "score": "accuracy=0.9667",
        "metrics": {"accuracy": 0.9667},
        "model": {"uri": "file://" + model[0], "digest": model[1], "version": "2"},
    }


def trainingjob_manifest() -> dict[str, Any]:
    """The TrainingJob behind the stable model; its runs carry its label app=iris-drift."""
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "TrainingJob",
        "metadata": {"name": "iris-train", "namespace": NAMESPACE, "labels": {"app": "iris-drift"}},
        "spec": {
            "dataset": {"builtin": "iris"},
            "model": {"estimator": "sklearn.tree.DecisionTreeClassifier"},
            "qualityGate": {"min": {"accuracy": 0.9}},
        },
    }


def deployment_manifest(artifacts: dict[str, tuple[str, str]]) -> dict[str, Any]:
    good = artifacts["good"]
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ModelDeployment",
        "metadata": {"name": "iris", "namespace": NAMESPACE},
        "spec": {
            "stable": {"model": {"uri": "file://" + good[0], "digest": good[1]}},
            # continuous delivery: the newest Succeeded run of the retrained TrainingJob
            "canary": {"model": {"selector": {"matchLabels": {LABEL_SCHEDULED_BY: "iris-train"}}}},
            "traffic": {"steps": [50], "interval": "2s"},
            "analysis": {"minRequests": 10, "maxErrorRate": 0.05},
            "retraining": {
                "trainingJob": "iris-train",
                "maxPsi": 0.25,
                "intervals": 3,
                "interval": "1s",
                "cooldown": "1h",
            },
        },
    }


def finish_training(cluster: Cluster, name: str, model: tuple[str, str]) -> None:
    """Plays the kubelet for the run's Pod: its result names the retrained artifact."""

    def pod() -> client.V1Pod | None:
        pods = cluster.core.list_namespaced_pod(
            NAMESPACE, label_selector=f"{LABEL_TRAININGJOB}={name}"
        )
        live = [p for p in pods.items if p.status.phase == "Running"]
        return live[0] if live else None

    cluster.set_pod_terminated(wait_for("the run's Pod", pod, 60), 0, json.dumps(result(model)))


def until_promoted(
    custom: client.CustomObjectsApi, servers: dict[str, Any], digest: str
) -> tuple[dict[str, Any], list[str]]:
    """Traffic on both variants until the model of ``digest`` is promoted; the phases seen."""
    stop = threading.Event()

    def load() -> None:
        while not stop.is_set():
            send(servers["stable"].port, 4)
            send(servers["canary"].port, 4)
            time.sleep(0.1)

    loader = threading.Thread(target=load, daemon=True)
    loader.start()
    phases: list[str] = []

    def promoted() -> dict[str, Any] | None:
        status = md_status(custom)
        if status.get("phase") and (not phases or phases[-1] != status["phase"]):
            phases.append(status["phase"])
        done = status.get("phase") == "Promoted" and status["stable"]["digest"] == digest
        return status if done else None

    try:
        return wait_for("the retrained model promoted", promoted, 90), phases
    finally:
        stop.set()
        loader.join(10)


def md_status(custom: client.CustomObjectsApi) -> dict[str, Any]:
    found = custom.get_namespaced_custom_object(
        GROUP, VERSION, NAMESPACE, "modeldeployments", "iris"
    )
    return found.get("status") or {}


def test_drift_retrains_once_and_the_new_model_canaries_and_is_promoted_by_itself(
    cluster: Cluster, operator: OperatorProcess, servers: dict[str, Any]
) -> None:
    custom = client.CustomObjectsApi(cluster.api)
    artifacts = servers["artifacts"]
    custom.create_namespaced_custom_object(
        GROUP, VERSION, NAMESPACE, "trainingjobs", trainingjob_manifest()
    )
    custom.create_namespaced_custom_object(
        GROUP, VERSION, NAMESPACE, "modeldeployments", deployment_manifest(artifacts)
    )

    def runs() -> list[dict[str, Any]]:
        found = custom.list_namespaced_custom_object(
            GROUP,
            VERSION,
            NAMESPACE,
            "trainingjobs",
            label_selector=f"{LABEL_SCHEDULED_BY}=iris-train",
        )
        return list(found["items"])

    time.sleep(3)
    assert runs() == []  # no traffic yet: no drift reported, nothing retrains
    stop = threading.Event()
    injector = threading.Thread(target=drifted, args=(servers["stable"].port, stop), daemon=True)
    injector.start()
    started = time.monotonic()
    try:
        run = wait_for("a retraining run", lambda: runs() and runs()[0], 60)
        to_run = round(time.monotonic() - started, 2)
        # the drift goes on: counted again to the limit, then held by the cooldown
        held = wait_for(
            "the cooldown holding",
            lambda: "cooldown" in (md_status(custom).get("retraining") or {}).get("message", ""),
            60,
        )
        assert held
        assert len(runs()) == 1, [r["metadata"]["name"] for r in runs()]
    finally:
        stop.set()
        injector.join(10)
    name = run["metadata"]["name"]
    status = md_status(custom)
    assert status["retraining"]["runs"] == 1
    assert status["retraining"]["run"] == name
    assert "> maxPsi 0.25" in status["retraining"]["message"]
    reason = run["metadata"]["annotations"]["mlops.dev/retraining-reason"]
    assert "maxPsi 0.25 for 3 interval(s) in a row" in reason
    assert run["metadata"]["annotations"]["mlops.dev/retrained-for"] == "iris"
    events = cluster.core.list_namespaced_event(
        NAMESPACE, field_selector="involvedObject.name=iris,reason=RetrainingStarted"
    )
    assert events.items[0].message.startswith(f"started run {name} of iris-train")

    finish_training(cluster, name, artifacts["retrained"])
    status, phases = until_promoted(custom, servers, artifacts["retrained"][1])
    assert "Progressing" in phases, phases  # it canaried before the promotion
    assert status["history"][-1]["outcome"] == "Promoted"
    assert status["history"][-1]["model"] == name
    print(f"\ndrift -> retraining run after {to_run}s; phases {phases}")
