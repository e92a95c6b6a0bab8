"""Two operator replicas, as the chart runs them: one leads (holds the Lease) and acts, the
other waits; the leader is killed (SIGKILL, as when its node dies) and the standby takes over
within the lease's duration; no action is done twice. With the chart's default timings."""

from __future__ import annotations

import contextlib
import json
import re
import time
from collections.abc import Iterator

import pytest
from kubernetes import client

from mlops_operator import defaults

from .harness import Cluster, wait_for
from .operator_runner import (
    LEADER_ELECTION,
    OPERATOR_ACCOUNT,
    OPERATOR_NAMESPACE,
    OperatorProcess,
    install_crds,
    install_rbac,
    model_store,
    refusals,
)
from .test_trainingjob_controller import jobs, manifest

GROUP, VERSION, PLURAL = "mlops.dev", "v1alpha1", "trainingjobs"
STARTUP = 15.0
"""Seconds a standby that just took the lease may need to start kopf and act (it imports
nothing more, but kopf lists and watches every resource first, on a busy machine)."""


@pytest.fixture
def replicas(cluster: Cluster) -> Iterator[list[OperatorProcess]]:
    install_crds(cluster)
    kubeconfig = install_rbac(cluster)
    coordination = client.CoordinationV1Api(cluster.api)
    with contextlib.suppress(client.ApiException):  # a lease of an earlier test
        coordination.delete_namespaced_lease(OPERATOR_ACCOUNT, OPERATOR_NAMESPACE)
    runners = [
        OperatorProcess(kubeconfig, cluster.workdir, settings=dict(LEADER_ELECTION), name=name)
        for name in ("replica-a", "replica-b")
    ]
    for runner in runners:
        runner.start(wait=False)
    for runner in runners:
        runner.wait_alive()
    yield runners
    for runner in runners:
        runner.stop()
    for runner in runners:
        assert refusals(cluster, runner) == [], "a replica was refused something it needs"


def leading(runner: OperatorProcess) -> bool:
    return runner.process is not None and " leads (lease " in runner.logs()


def holder(cluster: Cluster) -> str | None:
    lease = client.CoordinationV1Api(cluster.api).read_namespaced_lease(
        OPERATOR_ACCOUNT, OPERATOR_NAMESPACE
    )
    return lease.spec.holder_identity


def created(runners: list[OperatorProcess], job: str) -> int:
    """How many times any replica created this Job (its log says so once per creation)."""
    return sum(len(re.findall(rf"created Job {job}\b", r.logs())) for r in runners)


def test_the_standby_takes_over_when_the_leader_dies_and_nothing_is_done_twice(
    cluster: Cluster, replicas: list[OperatorProcess], namespace: str
) -> None:
    model_store(cluster, namespace)
    custom = client.CustomObjectsApi(cluster.api)
    wait_for("a leader", lambda: any(leading(r) for r in replicas), 30)
    leader, standby = sorted(replicas, key=lambda r: not leading(r))
    assert not leading(standby)
    assert json.loads(standby.get("/healthz", standby.liveness_port))["leader"] is False
    assert "mlops_operator_leader 0.0" in standby.get("/metrics", standby.metrics_port)

    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, manifest("first"))
    wait_for("the leader's Job", lambda: jobs(cluster, namespace, "first"), 30)
    time.sleep(2 * defaults.LEASE_RETRY)  # the standby would have acted by now, if it did

    leader.kill()
    killed = time.monotonic()
    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, manifest("second"))
    wait_for("the standby leads", lambda: leading(standby), defaults.LEASE_DURATION + 10)
    took_lease = time.monotonic() - killed
    wait_for("the new leader's Job", lambda: jobs(cluster, namespace, "second"), STARTUP + 30)
    acted = time.monotonic() - killed
    timings = {"lease taken (s)": round(took_lease, 1), "first action (s)": round(acted, 1)}
    (cluster.workdir / "leader-takeover.json").write_text(json.dumps(timings))
    print(f"\nleader takeover after SIGKILL: {timings}")

    # The standby counts the lease's duration from when it saw the last renewal (up to one
    # retry after it), and looks again only every retry: two retries on top, as client-go.
    bound = defaults.LEASE_DURATION + 2 * defaults.LEASE_RETRY + 1
    assert took_lease <= bound
    assert acted <= bound + STARTUP
    assert holder(cluster)
    assert len(jobs(cluster, namespace, "first")) == len(jobs(cluster, namespace, "second")) == 1
    # Each Job created once, by one replica: the standby never acted while it waited.
    assert created(replicas, "first-train") == created(replicas, "second-train") == 1
    assert "created Job first-train" in leader.logs()
    assert "created Job first-train" not in standby.logs()


def test_a_stopped_leader_hands_over_at_once(
    cluster: Cluster, replicas: list[OperatorProcess]
) -> None:
    """SIGTERM (a rolling update, a drain): the leader releases the Lease on its way out."""
    wait_for("a leader", lambda: any(leading(r) for r in replicas), 30)
    leader, standby = sorted(replicas, key=lambda r: not leading(r))
    leader.stop(grace=20)
    stopped = time.monotonic()
    wait_for("the standby leads", lambda: leading(standby), defaults.LEASE_DURATION + 10)
    handover = time.monotonic() - stopped
    assert "released the lease" in leader.logs()
    print(f"\nleader handover after SIGTERM: {handover:.1f}s")
    assert handover <= 2 * defaults.LEASE_RETRY + 1
