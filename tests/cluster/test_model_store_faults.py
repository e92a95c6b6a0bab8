"""The model store full or unreachable while a training publishes, on a real control plane.

kwok runs the training Pods on its simulated node; the test plays their containers with a real
`mlops train` (tests/cluster/trainer_pods.py). The claim's directory is a tiny tmpfs that is
full; the s3:// store is a real S3 server (moto) that is down, then up. Each attempt fails with
the store's reason and exit code and leaves nothing in the store; the Job's retry publishes
once the store is back. (The unreachable s3:// store is tested in tests/trainer/.)
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from .harness import Cluster, wait_for
from .operator_runner import OperatorProcess, model_store
from .trainer_pods import Container, operator_for_played_pods

GROUP, VERSION, PLURAL = "mlops.dev", "v1alpha1", "trainingjobs"
LABEL = "mlops.dev/trainingjob"
CLAIM = "mlops-models"
FREE_BYTES = 16 * 1024
"""What the full claim has left: less than one artifact."""
pytestmark = pytest.mark.usefixtures("operator")
S3_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}
"""What the kubelet would take from spec.output.secretRef (the endpoint is added per test)."""


@pytest.fixture(scope="module")
def operator(cluster: Cluster) -> Iterator[OperatorProcess]:
    if os.geteuid() != 0:
        pytest.skip("mounts a tmpfs: needs root")
    with operator_for_played_pods(cluster) as runner:
        yield runner


@pytest.fixture
def custom(cluster: Cluster) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(cluster.api)


@pytest.fixture
def full_claim(tmp_path: Path) -> Iterator[Path]:
    """The claim's directory on a 2 MiB tmpfs with FREE_BYTES left."""
    claim = tmp_path / "pvc" / CLAIM
    claim.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(claim)], check=True)
    stats = os.statvfs(claim)
    (claim / "filler").write_bytes(b"\0" * (stats.f_bavail * stats.f_frsize - FREE_BYTES))
    yield claim
    subprocess.run(["umount", "--lazy", str(claim)], check=True)


def trainingjob(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "TrainingJob",
        "metadata": {"name": name},
        "spec": {
            "dataset": {"builtin": "iris"},
            "model": {"estimator": "sklearn.svm.SVC"},
            **spec,
        },
    }


def status_of(custom: client.CustomObjectsApi, namespace: str, name: str) -> dict[str, Any]:
    body = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
    return dict(body.get("status") or {})


def phase(custom: client.CustomObjectsApi, namespace: str, name: str, wanted: str) -> Any:
    def check() -> dict[str, Any] | None:
        status = status_of(custom, namespace, name)
        return status if status.get("phase") == wanted else None

    return wait_for(f"{name} {wanted}", check, 60)


def next_pod(cluster: Cluster, namespace: str, name: str, after: set[str]) -> client.V1Pod:
    def running() -> client.V1Pod | None:
        found = cluster.core.list_namespaced_pod(namespace, label_selector=f"{LABEL}={name}")
        live = [
            p for p in found.items if p.status.phase == "Running" and p.metadata.name not in after
        ]
        return live[0] if live else None

    return wait_for(f"a new running Pod of {name}", running, 90)


def failed_condition(status: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in status["conditions"] if c["type"] == "Failed")


def test_a_full_claim_fails_the_attempt_and_the_jobs_retry_publishes_once_space_is_freed(
    cluster: Cluster,
    custom: client.CustomObjectsApi,
    namespace: str,
    full_claim: Path,
    tmp_path: Path,
) -> None:
    model_store(cluster, namespace)
    custom.create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, trainingjob("full", backoffLimit=1)
    )
    pvc_root = full_claim.parent
    first = next_pod(cluster, namespace, "full", set())
    started = time.monotonic()
    attempt = Container(first, pvc_root, tmp_path)
    assert attempt.finish(cluster) == 17
    assert "ModelStoreFull" in attempt.result.read_text()
    assert sorted(p.name for p in full_claim.rglob("*")) == ["filler"], "half-written"

    (full_claim / "filler").unlink()  # space freed while the Job backs off
    second = next_pod(cluster, namespace, "full", {first.metadata.name})
    assert Container(second, pvc_root, tmp_path).finish(cluster) == 0
    status = phase(custom, namespace, "full", "Succeeded")
    print(f"\nfull claim: first attempt to Succeeded {time.monotonic() - started:.1f}s")
    assert status["attempts"] == 2
    version = status["model"]["version"]
    published = full_claim / namespace / "full"
    assert sorted(p.name for p in published.iterdir()) == [version]  # no staging left
