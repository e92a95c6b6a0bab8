"""Faults of the control plane under a running canary: kube-apiserver restarted, etcd
restarted, the analysis's Prometheus unreachable. The rollout carries on from where it was
(never from its first step again), and never promotes on missing data."""

from __future__ import annotations

import time
from typing import Any

import pytest
from kubernetes import client

from .harness import Cluster
from .operator_runner import OperatorProcess
from .processes import free_port
from .rollouts import promoted
from .test_modeldeployment_controller import (  # noqa: F401 (fixtures)
    create,
    custom,
    load,
    manifest,
    operator,
    progression,
    read,
    servers,
    watch_weights,
)

pytestmark = pytest.mark.usefixtures("operator")


RESTARTS = {"kube-apiserver": "apiserver-restart", "etcd": "etcd-restart"}


@pytest.mark.parametrize("component", RESTARTS)
def test_a_restarted_control_plane_mid_rollout_carries_on(
    cluster: Cluster,
    operator: OperatorProcess,  # noqa: F811
    custom: client.CustomObjectsApi,  # noqa: F811
    servers: dict[str, Any],  # noqa: F811
    component: str,
) -> None:
    name = RESTARTS[component]
    if cluster.plane is None:
        pytest.skip("restarts need the simulated control plane")
    artifacts = servers["artifacts"]
    body = manifest(
        name,
        artifacts["good"],
        artifacts["good-v2"],
        traffic={"steps": [10, 20, 30, 40], "interval": "3s"},
        analysis={"maxErrorRate": 0.02, "minRequests": 10},
    )
    with load((servers["stable"], 0), (servers["good"], 0)):
        create(custom, body)
        _, seen = watch_weights(custom, name, lambda s: s.get("canaryWeight") == 20, 60)
        cluster.plane.restart(component, down=5)
        status, more = watch_weights(custom, name, promoted, 120)
    seen += more
    weights = progression(seen)
    assert weights == sorted(weights), seen
    assert 10 not in weights[weights.index(20) :], f"started over after the restart: {seen}"
    assert status["stable"]["digest"] == artifacts["good-v2"][1]
    assert operator.process is not None
    assert operator.process.alive(), "the operator died with the control plane"


def test_an_unreachable_prometheus_holds_the_canary_and_never_promotes(
    custom: client.CustomObjectsApi,  # noqa: F811
    servers: dict[str, Any],  # noqa: F811
) -> None:
    artifacts = servers["artifacts"]
    body = manifest(
        "prometheus-down",
        artifacts["good"],
        artifacts["good-v2"],
        traffic={"steps": [10, 50], "interval": "2s"},
        analysis={
            "maxErrorRate": 0.02,
            "minRequests": 1,
            "metrics": {"source": "prometheus", "prometheusUrl": f"http://127.0.0.1:{free_port()}"},
        },
    )
    create(custom, body)
    status, _ = watch_weights(
        custom,
        "prometheus-down",
        lambda s: (s.get("analysis") or {}).get("verdict") == "Inconclusive",
        60,
    )
    time.sleep(8)  # four more intervals with nothing to read
    status = read(custom, "prometheus-down")["status"]
    assert status["phase"] == "Progressing", status
    assert status["canaryWeight"] == 10, status
    assert status["analysis"]["verdict"] == "Inconclusive", status
    assert status.get("promoted") is None, status
