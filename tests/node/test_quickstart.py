"""The quickstart end to end on the real node, as a platform team and a user run it: the
chart installed with helm and the image built here, the examples applied with kubectl, real
training and model-server Pods, a load Pod, the canary promoted, a bad canary rolled back,
helm upgrade and uninstall. Each test is one or more steps of hack/quickstart.sh, the script
hack/kind-up.sh and hack/kind-quickstart.sh run on kind, plus what the test checks.

The tests run in order and share one installation; a failed step skips the later ones.
"""

from __future__ import annotations

import re
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from kubernetes import client

from tests.cluster.harness import CRD_NAMES, REPO, Cluster
from tests.packaging.tools import helm_env

from .realnode import RealNode, pod_logs, project_images

STEPS = REPO / "hack" / "quickstart.sh"
RELEASE = "node-e2e"
FULLNAME = f"{RELEASE}-mlops-operator"
TRACEBACK = re.compile(r"^Traceback \(most recent call last\)", re.MULTILINE)


@dataclass
class Quickstart:
    cluster: Cluster
    node: RealNode
    namespace: str  # the operator's
    watch: str  # the examples'
    image: str
    router_image: str
    failed: list[str] = field(default_factory=list)
    logs: dict[str, str] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    applied_at: float = 0.0

    def run(self, *steps: str, timeout: float = 500) -> str:
        """Runs steps of hack/quickstart.sh; the output goes to the workdir's quickstart.log."""
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
            "RELEASE": RELEASE,
            "IMAGE": self.image,
            "ROUTER_IMAGE": self.router_image,
            "PULL_POLICY": "Never",
            "TIMEOUT": "7m",
        }
        started = time.monotonic()
        log_path = self.node.root / "quickstart.log"
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

    def describe(self) -> str:
        """What a user would look at when a step fails: the Pods and the examples' status."""
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


@pytest.fixture(scope="module")
def quickstart(cluster: Cluster, node: RealNode) -> Iterator[Quickstart]:
    images = project_images()
    suffix = uuid.uuid4().hex[:6]
    found = Quickstart(
        cluster, node, f"mlops-e2e-{suffix}", f"quickstart-{suffix}", images.project, images.router
    )
    cluster.adopt_crds(RELEASE, found.namespace)
    cluster.kubectl("create", "namespace", found.watch)
    yield found
    found.collect_logs()
    node.e2e_timings.update(found.timings)
    (node.root / "quickstart-timings.txt").write_text(
        "\n".join(f"{s}: {t}s" for s, t in found.timings.items()) + "\n"
    )
    cluster.kubectl("delete", "namespace", found.watch, "--wait=false", check=False)


def ready(pod: client.V1Pod) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])


def test_helm_install_runs_the_operator_in_its_pod(quickstart: Quickstart) -> None:
    quickstart.run("install")
    pods = quickstart.pods(quickstart.namespace, "app.kubernetes.io/component=operator")
    running = [p for p in pods if p.status.phase == "Running"]
    assert len(running) == 1, [p.metadata.name for p in pods]
    pod = running[0]
    assert ready(pod)
    assert pod.spec.service_account_name == FULLNAME
    assert pod.spec.node_name == "real-node-0"
    container = pod.spec.containers[0]
    assert container.image == quickstart.image
    assert container.security_context.read_only_root_filesystem is True
    status = pod.status.container_statuses[0]
    assert status.restart_count == 0
    assert status.image_id, "the kubelet ran the image from containerd"


def test_training_pods_run_mlops_train_and_write_the_model_store(
    quickstart: Quickstart,
) -> None:
    quickstart.applied_at = time.monotonic()
    quickstart.run("apply", "trained")
    quickstart.collect_logs()
    pods = [p for p in quickstart.pods(quickstart.watch) if p.metadata.labels.get("job-name")]
    succeeded = [p for p in pods if p.status.phase == "Succeeded"]
    assert len(succeeded) >= 2, [(p.metadata.name, p.status.phase) for p in pods]
    for pod in succeeded:
        command = [*(pod.spec.containers[0].command or []), *(pod.spec.containers[0].args or [])]
        assert "train" in command, command
        assert pod.spec.node_name == "real-node-0"
    claim = next(
        c
        for c in quickstart.cluster.core.list_namespaced_persistent_volume_claim(
            quickstart.watch
        ).items
        if c.metadata.labels.get("app.kubernetes.io/component") == "model-store"
    )
    assert claim.status.phase == "Bound"
    volume = quickstart.cluster.core.read_persistent_volume(claim.spec.volume_name)
    files = [p for p in Path(volume.spec.local.path).rglob("*") if p.is_file()]
    for job in ("cancer-v1", "cancer-v2"):
        assert any(job in str(p) for p in files), f"no artifact of {job} in {files}"


def test_model_servers_and_the_router_become_ready(quickstart: Quickstart) -> None:
    quickstart.run("serving")
    pods = [p for p in quickstart.pods(quickstart.watch) if p.status.phase == "Running"]
    components = {p.metadata.labels.get("app.kubernetes.io/component") for p in pods if ready(p)}
    if not {"model-server", "router"} <= components:
        quickstart.collect_logs()
        logs = "\n".join(f"--- {n}\n{log[-2000:]}" for n, log in quickstart.logs.items())
        raise AssertionError(f"not Ready: {components}\n{quickstart.describe()}\n{logs}")


def test_the_canary_is_promoted_under_load(quickstart: Quickstart) -> None:
    quickstart.run("load", "promoted")
    if quickstart.applied_at:
        quickstart.timings["kubectl apply -> Promoted"] = round(
            time.monotonic() - quickstart.applied_at, 1
        )
    mdep = quickstart.cluster.kubectl(
        "get", "mdep", "cancer", "-n", quickstart.watch, "-o", "jsonpath={.status.phase}"
    ).stdout
    assert mdep == "Promoted"
    load = quickstart.cluster.core.read_namespaced_pod_log("cancer-load", quickstart.watch)
    assert "request failed" not in load


def test_a_bad_canary_is_rolled_back_with_the_analysis_numbers(quickstart: Quickstart) -> None:
    out = quickstart.run("rollback")
    degraded = next(line for line in out.splitlines() if line.startswith("Degraded=True"))
    assert re.search(r"\d\.\d", degraded), degraded


def test_no_pod_logged_a_traceback(quickstart: Quickstart) -> None:
    quickstart.collect_logs()
    assert quickstart.logs
    broken = {name: log for name, log in quickstart.logs.items() if TRACEBACK.search(log)}
    assert not broken, "\n\n".join(f"--- {n}\n{log[-3000:]}" for n, log in broken.items())


def test_helm_upgrade_then_uninstall_keeps_crds_and_claims(quickstart: Quickstart) -> None:
    quickstart.run("unload", "upgrade")
    quickstart.collect_logs()
    quickstart.run("uninstall")
    ext = client.ApiextensionsV1Api(quickstart.cluster.api)
    for name in CRD_NAMES:
        ext.read_custom_resource_definition(name)  # still there
    claims = quickstart.cluster.core.list_namespaced_persistent_volume_claim(
        quickstart.watch, label_selector="app.kubernetes.io/component=model-store"
    ).items
    assert claims, "the model store's claim was deleted"
    apps = client.AppsV1Api(quickstart.cluster.api)
    assert not apps.list_namespaced_deployment(quickstart.namespace).items
