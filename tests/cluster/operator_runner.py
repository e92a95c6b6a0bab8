"""The operator as it runs in a cluster: a ServiceAccount bound to the chart's RBAC rules,
and `mlops operator` as a real subprocess that authenticates as that account.

The rules come from charts/mlops-operator/files/rbac-rules.yaml, the file the Helm chart's
ClusterRole includes, so the tests prove exactly the permissions users install.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client

from tests.corpus import ROOT, crd_documents

from .harness import Cluster, wait_for
from .processes import Process, free_port, wait_until

RBAC_RULES = ROOT / "charts" / "mlops-operator" / "files" / "rbac-rules.yaml"
OPERATOR_NAMESPACE = "mlops-system"
OPERATOR_ACCOUNT = "mlops-operator"
MLOPS = Path(sys.executable).parent / "mlops"
IMAGE = "mlops-operator:test"


def install_crds(cluster: Cluster, kinds: tuple[str, ...] = ("TrainingJob",)) -> None:
    crds = [crd_documents()[kind] for kind in kinds]
    cluster.apply(*crds)
    ext = client.ApiextensionsV1Api(cluster.api)

    def established(name: str) -> bool:
        conditions = ext.read_custom_resource_definition(name).status.conditions or []
        return {c.type: c.status for c in conditions}.get("Established") == "True"

    for crd in crds:
        name = crd["metadata"]["name"]
        wait_for(f"CRD {name}", lambda name=name: established(name), 60)


def install_rbac(cluster: Cluster) -> Path:
    """The operator's ServiceAccount, ClusterRole (the rules file) and binding; its kubeconfig."""
    rules = yaml.safe_load(RBAC_RULES.read_text())
    namespace: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": OPERATOR_NAMESPACE},
    }
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": OPERATOR_ACCOUNT},
        "rules": rules,
    }
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": OPERATOR_ACCOUNT},
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": OPERATOR_ACCOUNT,
        },
        "subjects": [
            {"kind": "ServiceAccount", "name": OPERATOR_ACCOUNT, "namespace": OPERATOR_NAMESPACE}
        ],
    }
    cluster.apply(namespace)
    cluster.apply(role, binding)
    return cluster.service_account_kubeconfig(OPERATOR_NAMESPACE, OPERATOR_ACCOUNT)


@dataclass
class OperatorProcess:
    """`mlops operator` as the ServiceAccount; restartable; its logs in the cluster workdir."""

    kubeconfig: Path
    log_dir: Path
    settings: dict[str, str] = field(default_factory=dict)
    metrics_port: int = 0
    liveness_port: int = 0
    process: Process | None = None
    starts: int = 0

    def start(self) -> None:
        self.metrics_port, self.liveness_port = free_port(), free_port()
        self.starts += 1
        env = {
            "KUBECONFIG": str(self.kubeconfig),
            "MLOPS_IMAGE": IMAGE,
            "MLOPS_METRICS_PORT": str(self.metrics_port),
            "MLOPS_LIVENESS_PORT": str(self.liveness_port),
            **self.settings,
        }
        argv = ["env", *(f"{k}={v}" for k, v in env.items()), str(MLOPS), "operator"]
        self.process = Process(f"operator-{self.starts}", argv, self.log_dir)
        wait_until(
            "the operator's liveness probe",
            lambda: self.get("/healthz", self.liveness_port).startswith("{"),
            60,
            watch=[self.process],
        )

    def stop(self, grace: float = 5.0) -> None:
        if self.process is not None:
            self.process.stop(grace)
            self.process = None

    def kill(self) -> None:
        """SIGKILL: no cleanup at all, as when a node dies."""
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.popen.pid, signal.SIGKILL)
            self.process.popen.wait(10)
        self.stop()

    def get(self, path: str, port: int) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return str(response.read().decode())

    def logs(self) -> str:
        return "\n".join(
            (self.log_dir / f"operator-{n}.log").read_text(errors="replace")
            for n in range(1, self.starts + 1)
        )


def rbac_refusals(logs: str) -> list[str]:
    """The log lines where RBAC refused the operator something (not, say, a namespace
    being deleted)."""
    return [line for line in logs.splitlines() if "is forbidden: User" in line]


def model_store(cluster: Cluster, namespace: str, claim: str = "mlops-models") -> None:
    """The default model store's claim in ``namespace``, bound to a hostPath volume of its own
    (as the chart's claim would be bound by a provisioner), so training Pods can be scheduled."""
    volume = f"{namespace}-{claim}"
    cluster.apply(
        {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {"name": volume},
            "spec": {
                "capacity": {"storage": "1Gi"},
                "accessModes": ["ReadWriteOnce"],
                "storageClassName": "",
                "hostPath": {"path": f"/tmp/{volume}"},
                "claimRef": {"namespace": namespace, "name": claim},
            },
        },
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": claim, "namespace": namespace},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "storageClassName": "",
                "volumeName": volume,
                "resources": {"requests": {"storage": "1Gi"}},
            },
        },
    )

    def bound() -> bool:
        found = cluster.core.read_namespaced_persistent_volume_claim(claim, namespace)
        return bool(found.status.phase == "Bound")

    wait_for(f"claim {claim} bound", bound, 60)
