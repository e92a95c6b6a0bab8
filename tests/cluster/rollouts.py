"""ModelDeployments as the rollout tests read and steer them, on the simulated node
(tests/cluster) and on the real one (tests/node): the status polled until a condition, every
(phase, weight) seen on the way, and `kubectl mlops` found on PATH by kubectl itself."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes import client

from .harness import Cluster

GROUP, VERSION, PLURAL = "mlops.dev", "v1alpha1", "modeldeployments"
BIN = Path(sys.executable).parent
Seen = list[tuple[float, str | None, int | None]]


@dataclass(frozen=True)
class Rollouts:
    """The ModelDeployments of one namespace."""

    custom: client.CustomObjectsApi
    namespace: str

    def create(self, body: dict[str, Any]) -> None:
        self.custom.create_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, body)

    def read(self, name: str) -> dict[str, Any]:
        found: dict[str, Any] = self.custom.get_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, name
        )
        return found

    def status_is(self, name: str, phase: str, weight: int) -> bool:
        status = self.read(name).get("status") or {}
        return status.get("phase") == phase and status.get("canaryWeight") == weight

    def watch(
        self, name: str, until: Callable[[dict[str, Any]], bool], timeout: float
    ) -> tuple[dict[str, Any], Seen]:
        """Polls the status until ``until``; every (seconds, phase, canaryWeight) change seen."""
        started = time.monotonic()
        seen: Seen = []
        while True:
            status = self.read(name).get("status") or {}
            point = (status.get("phase"), status.get("canaryWeight"))
            if not seen or seen[-1][1:] != point:
                seen.append((round(time.monotonic() - started, 2), *point))
            if until(status):
                return status, seen
            if time.monotonic() - started > timeout:
                raise TimeoutError(f"{name}: status {status}; seen {seen}")
            time.sleep(0.1)


def promoted(status: dict[str, Any]) -> bool:
    """Promoted, and the promotion's hand-off over (the stable servers serve the model, the
    canary's are gone)."""
    return status.get("phase") == "Promoted" and not status.get("handoff")


def condition(status: dict[str, Any], kind: str) -> dict[str, Any]:
    """The status condition of that type ({} when there is none)."""
    return next((c for c in status.get("conditions") or [] if c["type"] == kind), {})


def plugin_env(cluster: Cluster) -> dict[str, str]:
    """kubectl finds `kubectl-mlops` on PATH, as a user's kubectl would."""
    path = f"{BIN}:{cluster.binary('kubectl').parent}:{os.environ.get('PATH', '')}"
    return {**os.environ, "PATH": path, "KUBECONFIG": str(cluster.kubeconfig)}


def kubectl_mlops(cluster: Cluster, namespace: str, *args: str) -> str:
    result = subprocess.run(
        ["kubectl", "mlops", *args, "-n", namespace],
        env=plugin_env(cluster),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, f"kubectl mlops {' '.join(args)}: {result.stderr}"
    return result.stdout


def exists(read: Callable[[], Any]) -> bool:
    """Whether a read finds its object (a 404 is no)."""
    try:
        read()
    except client.exceptions.ApiException as error:
        if error.status == 404:
            return False
        raise
    return True
