"""The chart on the real node, installed and driven by hack/quickstart.sh's steps (the script
hack/kind-up.sh and hack/kind-quickstart.sh run on kind), with the images built here.

`Release` runs steps against one release (its operator namespace and the namespace it
watches); tests/node/test_quickstart.py tests the steps themselves, and the `chart` fixture
(tests/node/conftest.py) installs one release for the tests that need a running operator.
"""

from __future__ import annotations

import base64
import contextlib
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import pytest
from kubernetes import client

from mlops_operator.objects import FEEDBACK_TOKEN_KEY, feedback_secret_name
from tests.cluster.harness import REPO, Cluster
from tests.packaging.tools import helm_env

from .realnode import RealNode, pod_logs, project_images

STEPS = REPO / "hack" / "quickstart.sh"


@dataclass
class Release:
    cluster: Cluster
    node: RealNode
    release: str
    namespace: str  # the operator's
    watch: str  # the one it watches: the examples', the tests' resources
    image: str
    router_image: str
    log: str = "quickstart.log"  # in the node's directory: every step's output
    values: tuple[str, ...] = ()  # more helm flags for install and upgrade ($VALUES)
    failed: list[str] = field(default_factory=list)
    logs: dict[str, str] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

    @classmethod
    def create(
        cls,
        cluster: Cluster,
        node: RealNode,
        release: str,
        watch: str,
        log: str = "",
        *,
        values: tuple[str, ...] = (),
    ) -> Self:
        """A release to install (namespaces unique to this session); the CRDs adopted by it,
        the watched namespace created."""
        images = project_images()
        suffix = uuid.uuid4().hex[:6]
        found = cls(
            cluster,
            node,
            release,
            f"{release}-{suffix}",
            f"{watch}-{suffix}",
            images.project,
            images.router,
            log=log or f"{release}.log",
            values=values,
        )
        cluster.adopt_crds(release, found.namespace)
        cluster.kubectl("create", "namespace", found.watch)
        return found

    @property
    def fullname(self) -> str:
        return f"{self.release}-mlops-operator"

    def run(self, *steps: str, timeout: float = 500) -> str:
        """Runs steps of hack/quickstart.sh; the output goes to the node directory's log."""
        if self.failed:
            pytest.skip(f"an earlier step failed: {self.failed[0]}")
        kubectl = f"{self.cluster.binary('kubectl')} --kubeconfig={self.cluster.kubeconfig}"
        helm = f"{self.cluster.binary('helm')} --kubeconfig={self.cluster.kubeconfig}"
        env = {
            **helm_env(self.cluster.kubeconfig),
            "KUBECTL": kubectl,
            "HELM": helm,
            "NAMESPACE": self.namespace,
            "WATCH": self.watch,
            "RELEASE": self.release,
            "IMAGE": self.image,
            "ROUTER_IMAGE": self.router_image,
            "PULL_POLICY": "Never",
            "TIMEOUT": "7m",
            "VALUES": "\n".join(self.values),
        }
        started = time.monotonic()
        log_path = self.node.root / self.log
        with log_path.open("a") as log:
            offset = log.tell()
            try:
                code = subprocess.run(
                    ["bash", str(STEPS), *steps],
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    timeout=timeout,
                    check=False,
                ).returncode
            except subprocess.TimeoutExpired:
                code = -1
        output = log_path.read_text()[offset:]
        self.timings[" ".join(steps)] = round(time.monotonic() - started, 1)
        if code != 0:
            self.failed.append(" ".join(steps))
            self.collect_logs()
            raise AssertionError(
                f"hack/quickstart.sh {' '.join(steps)} failed:\n{output[-5000:]}\n{self.describe()}"
            )
        return output

    def collect_logs(self) -> None:
        for namespace in (self.namespace, self.watch):
            self.logs.update(pod_logs(self.cluster.core, namespace))

    def operator_logs(self) -> str:
        """Every operator Pod's log, the one that acts and the standby."""
        self.collect_logs()
        return "\n".join(
            log for name, log in self.logs.items() if name.startswith(f"{self.namespace}/")
        )

    def describe(self) -> str:
        """What a user would look at when a step fails: the Pods and the watched objects."""
        pods = self.cluster.kubectl("get", "pods", "-A", "-o", "wide", check=False).stdout
        mlops = self.cluster.kubectl("get", "mlops", "-n", self.watch, "-o", "yaml", check=False)
        events = self.cluster.kubectl("get", "events", "-n", self.watch, check=False).stdout
        unready = [
            p.metadata.name
            for p in self.pods(self.watch)
            if p.status.phase not in ("Succeeded", "Failed") and not ready(p)
        ]
        described = (
            self.cluster.kubectl("describe", "pod", "-n", self.watch, *unready, check=False).stdout
            if unready
            else ""
        )
        return f"{pods}\n{mlops.stdout[-4000:]}\n{events[-3000:]}\n{described[-6000:]}"

    def pods(self, namespace: str, selector: str = "") -> list[client.V1Pod]:
        found = self.cluster.core.list_namespaced_pod(namespace, label_selector=selector)
        return list(found.items)

    def status(self, name: str) -> dict[str, Any]:
        """A watched ModelDeployment's status ({} while it has none, or is not there)."""
        custom = client.CustomObjectsApi(self.cluster.api)
        with contextlib.suppress(client.ApiException):
            found = custom.get_namespaced_custom_object(
                "mlops.dev", "v1alpha1", self.watch, "modeldeployments", name
            )
            return dict(found.get("status") or {})
        return {}

    def model_store(self) -> Path:
        """The watched namespace's model store on the node: the local path of the volume its
        claim (the chart's) is bound to, once a Pod mounted it (WaitForFirstConsumer)."""
        claims = self.cluster.core.list_namespaced_persistent_volume_claim(
            self.watch, label_selector="app.kubernetes.io/component=model-store"
        ).items
        assert len(claims) == 1, [c.metadata.name for c in claims]
        assert claims[0].status.phase == "Bound", claims[0].status
        volume = self.cluster.core.read_persistent_volume(claims[0].spec.volume_name)
        return Path(volume.spec.local.path)

    def feedback_token(self, name: str) -> str:
        """What a client presents with its feedback: the `<name>-feedback` Secret's token."""
        secret = self.cluster.core.read_namespaced_secret(feedback_secret_name(name), self.watch)
        return base64.b64decode(secret.data[FEEDBACK_TOKEN_KEY]).decode()

    def service_address(self, name: str) -> tuple[str, int]:
        """A Service's ClusterIP and first port: the node's host reaches it (kube-proxy)."""
        service = self.cluster.core.read_namespaced_service(name, self.watch)
        return service.spec.cluster_ip, service.spec.ports[0].port


def ready(pod: client.V1Pod) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])
