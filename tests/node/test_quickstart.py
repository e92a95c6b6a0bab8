"""The quickstart end to end on the real node, as a platform team and a user run it: the
chart installed with helm and the image built here, the examples applied with kubectl, real
training and model-server Pods, a load Pod, the canary promoted, a bad canary rolled back,
helm upgrade and uninstall. Each test is one or more steps of hack/quickstart.sh, the script
hack/kind-up.sh and hack/kind-quickstart.sh run on kind, plus what the test checks.

The tests run in order and share one installation; a failed step skips the later ones.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from kubernetes import client

from tests.cluster.harness import CRD_NAMES, Cluster

from .chart import Release, ready
from .realnode import RealNode

RELEASE = "node-e2e"
TRACEBACK = re.compile(r"^Traceback \(most recent call last\)", re.MULTILINE)


@dataclass
class Quickstart(Release):
    applied_at: float = 0.0


@pytest.fixture(scope="module")
def quickstart(cluster: Cluster, node: RealNode) -> Iterator[Quickstart]:
    found = Quickstart.create(cluster, node, RELEASE, "quickstart", log="quickstart.log")
    yield found
    found.collect_logs()
    node.e2e_timings.update(found.timings)
    (node.root / "quickstart-timings.txt").write_text(
        "\n".join(f"{s}: {t}s" for s, t in found.timings.items()) + "\n"
    )
    found.cluster.kubectl("delete", "namespace", found.watch, "--wait=false", check=False)


def test_helm_install_runs_the_operator_in_its_pod(quickstart: Quickstart) -> None:
    quickstart.run("install")
    pods = quickstart.pods(quickstart.namespace, "app.kubernetes.io/component=operator")
    running = [p for p in pods if p.status.phase == "Running"]
    assert len(running) == 2, [p.metadata.name for p in pods]  # operator.replicas: one acts
    for pod in running:
        assert ready(pod)  # the standby answers /healthz too
        assert pod.spec.service_account_name == quickstart.fullname
        assert pod.spec.node_name == "real-node-0"
        container = pod.spec.containers[0]
        assert container.image == quickstart.image
        assert container.security_context.read_only_root_filesystem is True
        status = pod.status.container_statuses[0]
        assert status.restart_count == 0
        assert status.image_id, "the kubelet ran the image from containerd"
    lease = client.CoordinationV1Api(quickstart.cluster.api).read_namespaced_lease(
        quickstart.fullname, quickstart.namespace
    )
    holder = lease.spec.holder_identity.rsplit("_", 1)[0]  # <Pod name>_<nonce>
    assert holder in {p.metadata.name for p in running}


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
    files = [p for p in quickstart.model_store().rglob("*") if p.is_file()]
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
