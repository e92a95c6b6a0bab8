"""A canary model server that goes away in the middle of an analysis interval (a deleted Pod,
dropped from the scrape targets), on a real control plane: its counts since the interval began
are unknown, so the interval may not pass on the servers that remain; it is held and measured
again, and the rollout carries on once the servers it judges were there all along.

The lost server is the one failing a quarter of its requests: without the rule its errors
would vanish from the interval and the canary would step up on the healthy server's numbers."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from tests.component.servers import Server, iris_artifacts, model_server, send

from .harness import Cluster, wait_for
from .operator_runner import OperatorProcess, loopback_operator

GROUP, VERSION = "mlops.dev", "v1alpha1"
NAMESPACE = "server-lost"


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    artifacts = iris_artifacts(tmp_path_factory.mktemp("server-lost"))
    with (
        model_server(*artifacts["good"], "stable") as stable,
        model_server(*artifacts["good"], "canary") as healthy,
        model_server(*artifacts["faulty"], "canary") as failing,
    ):
        yield {"stable": stable, "healthy": healthy, "failing": failing, **artifacts}


@pytest.fixture(scope="module")
def operator(cluster: Cluster, servers: dict[str, Any]) -> Iterator[OperatorProcess]:
    targets = {
        f"{NAMESPACE}/iris": {
            "stable": [servers["stable"].metrics_url],
            "canary": [servers["healthy"].metrics_url, servers["failing"].metrics_url],
        }
    }
    with loopback_operator(cluster, NAMESPACE, targets) as runner:
        yield runner


def manifest(servers: dict[str, Any]) -> dict[str, Any]:
    def model(name: str) -> dict[str, str]:
        uri, digest = servers[name]
        return {"uri": "file://" + uri, "digest": digest}

    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ModelDeployment",
        "metadata": {"name": "iris", "namespace": NAMESPACE},
        "spec": {
            "stable": {"model": model("good")},
            "canary": {"model": model("faulty")},
            "traffic": {"steps": [10, 50], "interval": "8s"},
            "analysis": {"minRequests": 20, "maxErrorRate": 0.05, "failureLimit": 2},
        },
    }


def traffic(targets: list[tuple[Server, int]], stop: threading.Event) -> None:
    """Requests to each (server, bad_every) while ``stop`` is unset; a stopped server is skipped."""
    while not stop.wait(0.1):
        for server, bad_every in targets:
            if server.process.poll() is None:
                with contextlib.suppress(OSError):
                    send(server.port, 4, bad_every)


def judged(status: dict[str, Any]) -> str | None:
    """When the latest interval was judged."""
    return (status.get("analysis") or {}).get("judged")


def test_a_canary_server_lost_mid_interval_holds_the_step(
    cluster: Cluster, operator: OperatorProcess, servers: dict[str, Any]
) -> None:
    custom = client.CustomObjectsApi(cluster.api)
    custom.create_namespaced_custom_object(
        GROUP, VERSION, NAMESPACE, "modeldeployments", manifest(servers)
    )

    def status() -> dict[str, Any]:
        found = custom.get_namespaced_custom_object(
            GROUP, VERSION, NAMESPACE, "modeldeployments", "iris"
        )
        return found.get("status") or {}

    wait_for("the canary at 10%", lambda: status().get("canary", {}).get("weight") == 10, 60)
    failing: Server = servers["failing"]
    stop = threading.Event()
    loads = [(servers["stable"], 0), (servers["healthy"], 0), (failing, 4)]
    loader = threading.Thread(target=traffic, args=(loads, stop), daemon=True)
    loader.start()
    try:
        first = wait_for("a first interval judged", lambda: judged(status()), 30)
        time.sleep(3)  # into the next interval, with the failing server's errors counted
        failing.process.kill()  # a deleted Pod leaves the targets at once (not Ready)
        failing.process.wait(10)
        held = wait_for(
            "the interval judged",
            lambda: judged(s := status()) not in (None, first) and s,
            30,
        )
        analysis = held["analysis"]
        print(f"\nafter the lost server: {analysis['verdict']}: {analysis['message']}")
        assert analysis["verdict"] == "Inconclusive", analysis
        assert f"canary server(s) {failing.metrics_url} left or restarted" in analysis["message"]
        assert held["canary"]["weight"] == 10  # held, not stepped up on half the numbers
        # The next interval judges only servers there from its start to its end: it passes.
        stepped = wait_for(
            "the next step", lambda: (s := status())["canary"].get("weight") == 50 and s, 30
        )
        assert stepped["analysis"]["verdict"] == "Passed"
    finally:
        stop.set()
        loader.join(10)
