"""The operator as it runs in a cluster: a ServiceAccount bound to the chart's RBAC rules,
and `mlops operator` as a real subprocess that authenticates as that account.

The rules come from charts/mlops-operator/files/rbac-rules.yaml, the file the Helm chart's
ClusterRole includes, so the tests prove exactly the permissions users install.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client, config

from tests.corpus import ROOT, crd_documents

from .harness import Cluster, cluster_role, wait_for
from .processes import Process, free_port, wait_until

CHART = ROOT / "charts" / "mlops-operator"
RBAC_RULES = CHART / "files" / "rbac-rules.yaml"
POLICY_TEMPLATES = (
    "templates/operator-validatingadmissionpolicy.yaml",
    "templates/operator-validatingadmissionpolicybinding.yaml",
)
LEADER_TEMPLATES = (
    "templates/operator-leaderelection-role.yaml",
    "templates/operator-leaderelection-rolebinding.yaml",
)
OPERATOR_NAMESPACE = "mlops-system"
OPERATOR_ACCOUNT = "mlops-operator"
OPERATOR_USER = f"system:serviceaccount:{OPERATOR_NAMESPACE}:{OPERATOR_ACCOUNT}"
LEADER_ELECTION = {
    "MLOPS_LEADER_ELECTION": "true",
    "MLOPS_LEADER_ELECTION_NAMESPACE": OPERATOR_NAMESPACE,
    "MLOPS_LEADER_ELECTION_LEASE": OPERATOR_ACCOUNT,
}
"""The settings the chart gives each replica (the lease is the release's full name)."""
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
    account = {"kind": "ServiceAccount", "name": OPERATOR_ACCOUNT, "namespace": OPERATOR_NAMESPACE}
    cluster.apply(namespace)
    cluster.apply(*cluster_role(OPERATOR_ACCOUNT, rules, account))
    kubeconfig = cluster.service_account_kubeconfig(OPERATOR_NAMESPACE, OPERATOR_ACCOUNT)
    cluster.apply(*chart_objects(cluster, LEADER_TEMPLATES))
    install_admission_policy(cluster, kubeconfig)
    return kubeconfig


def admission_policy(cluster: Cluster, *values: str) -> list[dict[str, Any]]:
    """The chart's ValidatingAdmissionPolicy and binding for the operator's account."""
    return chart_objects(cluster, POLICY_TEMPLATES, *values)


def chart_objects(
    cluster: Cluster, templates: tuple[str, ...], *values: str
) -> list[dict[str, Any]]:
    """The chart's templates rendered for the tests' release (the operator's account)."""
    rendered = subprocess.run(
        [
            str(cluster.binary("helm")),
            "template",
            "mlops",
            str(CHART),
            f"--namespace={OPERATOR_NAMESPACE}",
            f"--set=fullnameOverride={OPERATOR_ACCOUNT}",
            *(f"--set={value}" for value in values),
            *(f"--show-only={template}" for template in templates),
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    return [doc for doc in yaml.safe_load_all(rendered) if doc]


def install_admission_policy(cluster: Cluster, kubeconfig: Path) -> None:
    """Applies the policy and waits until the API server enforces it (it loads policies in
    the background): until an unlabelled ConfigMap, sent as a dry run, is refused."""
    cluster.apply(*admission_policy(cluster))
    api = config.new_client_from_config(config_file=str(kubeconfig))
    probe = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "policy-probe"}}

    def refused() -> bool:
        try:
            client.CoreV1Api(api).create_namespaced_config_map(
                OPERATOR_NAMESPACE, probe, dry_run="All"
            )
        except client.ApiException as error:
            return error.status == 403 and "ValidatingAdmissionPolicy" in str(error.body)
        return False

    try:
        wait_for("the admission policy enforced", refused, 60)
    finally:
        api.close()


def loopback_settings(targets: dict[str, Any], **extra: str) -> dict[str, str]:
    """An operator analysing model servers on loopback: ``targets`` (namespace/name to each
    variant's metrics URLs) as its builtin source's, a fast tick, one router replica."""
    return {
        "MLOPS_ANALYSIS_TICK_SECONDS": "0.5",
        "MLOPS_ROUTER_REPLICAS": "1",
        "MLOPS_METRICS_TARGETS": json.dumps(targets),
        **extra,
    }


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
    first_start: float = 0.0
    name: str = "operator"

    def start(self, *, wait: bool = True) -> None:
        self.metrics_port, self.liveness_port = free_port(), free_port()
        self.starts += 1
        self.first_start = self.first_start or time.time()
        env = {
            "KUBECONFIG": str(self.kubeconfig),
            "MLOPS_IMAGE": IMAGE,
            "MLOPS_METRICS_PORT": str(self.metrics_port),
            "MLOPS_LIVENESS_PORT": str(self.liveness_port),
            **self.settings,
        }
        argv = ["env", *(f"{k}={v}" for k, v in env.items()), str(MLOPS), "operator"]
        if os.environ.get("MLOPS_TEST_OPERATOR_VERBOSE") == "1":  # kopf's debug log, to debug
            argv.append("--verbose")
        self.process = Process(f"{self.name}-{self.starts}", argv, self.log_dir)
        if wait:
            self.wait_alive()

    def wait_alive(self) -> None:
        assert self.process is not None
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
            (self.log_dir / f"{self.name}-{n}.log").read_text(errors="replace")
            for n in range(1, self.starts + 1)
        )


def rbac_refusals(logs: str) -> list[str]:
    """The log lines where RBAC refused the operator something (not, say, a namespace
    being deleted)."""
    return [line for line in logs.splitlines() if "is forbidden: User" in line]


OPERATOR_AGENTS = ("kopf/", "mlops-operator/")


def refusals(cluster: Cluster, runner: OperatorProcess) -> list[str]:
    """Every request of the operator's processes that the API server refused (403: RBAC or
    the admission policy), from its audit log, else from the operator's log. Requests the
    tests send with the operator's token on purpose (the escalations) have another agent."""
    refused = cluster.audit_refusals(OPERATOR_USER, runner.first_start, OPERATOR_AGENTS)
    return rbac_refusals(runner.logs()) if refused is None else refused


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


@contextlib.contextmanager
def loopback_operator(
    cluster: Cluster, namespace: str, targets: dict[str, Any], **extra: str
) -> Iterator[OperatorProcess]:
    """The operator with the CRDs, the chart's RBAC and ``namespace`` with its model store,
    analysing model servers on loopback (:func:`loopback_settings`); it was refused nothing."""
    install_crds(cluster, ("TrainingJob", "ModelDeployment"))
    kubeconfig = install_rbac(cluster)
    cluster.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    model_store(cluster, namespace)
    runner = OperatorProcess(
        kubeconfig, cluster.workdir, settings=loopback_settings(targets, **extra)
    )
    runner.start()
    try:
        yield runner
    finally:
        runner.stop()
    assert rbac_refusals(runner.logs()) == []
