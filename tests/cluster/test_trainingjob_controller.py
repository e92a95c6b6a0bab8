"""The TrainingJob controller on a real control plane, as its ServiceAccount under the
chart's RBAC rules: Jobs, results, failures, restarts, schedules, garbage collection."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from mlops_operator.builders.job import build_job
from mlops_operator.settings import OperatorSettings

from .harness import Cluster, wait_for
from .operator_runner import (
    IMAGE,
    OperatorProcess,
    install_crds,
    install_rbac,
    model_store,
    refusals,
)

GROUP, VERSION, PLURAL = "mlops.dev", "v1alpha1", "trainingjobs"
LABEL = "mlops.dev/trainingjob"
RESULT = {
    "phase": "Succeeded",
    "reason": "Trained",
    "exitCode": 0,
    "message": "trained LogisticRegression: accuracy=0.9737",
    "score": "accuracy=0.9737",
    "metrics": {"accuracy": 0.9737, "f1_macro": 0.971, "roc_auc": 0.995},
    "model": {
        "uri": "pvc://mlops-models/ns/cancer/20261122-101500-a1b2",
        "digest": "sha256:" + "5e" * 32,
        "version": "20261122-101500-a1b2",
    },
}
TIMINGS: dict[str, float] = {}


@pytest.fixture(scope="module")
def operator(cluster: Cluster) -> Iterator[OperatorProcess]:
    install_crds(cluster)
    kubeconfig = install_rbac(cluster)
    runner = OperatorProcess(
        kubeconfig, cluster.workdir, settings={"MLOPS_SCHEDULE_INTERVAL_SECONDS": "2"}
    )
    runner.start()
    yield runner
    runner.stop()
    assert refusals(cluster, runner) == [], "the operator was refused something it needs"
    if TIMINGS:
        (cluster.workdir / "trainingjob-timings.json").write_text(json.dumps(TIMINGS, indent=1))


@pytest.fixture
def custom(cluster: Cluster, namespace: str) -> client.CustomObjectsApi:
    """The admin's client for TrainingJobs, in a namespace with a bound model store claim."""
    model_store(cluster, namespace)
    return client.CustomObjectsApi(cluster.api)


def manifest(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "mlops.dev/v1alpha1",
        "kind": "TrainingJob",
        "metadata": {"name": name, "labels": {"app": "cancer"}},
        "spec": {
            "dataset": {"builtin": "breast_cancer"},
            "model": {"estimator": "sklearn.linear_model.LogisticRegression"},
            "backoffLimit": 0,
            **spec,
        },
    }


def create(custom: client.CustomObjectsApi, namespace: str, body: dict[str, Any]) -> Any:
    return custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)


def read(custom: client.CustomObjectsApi, namespace: str, name: str) -> dict[str, Any]:
    found: dict[str, Any] = custom.get_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, name
    )
    return found


def jobs(cluster: Cluster, namespace: str, name: str) -> list[client.V1Job]:
    batch = client.BatchV1Api(cluster.api)
    return list(batch.list_namespaced_job(namespace, label_selector=f"{LABEL}={name}").items)


def the_job(cluster: Cluster, namespace: str, name: str, timeout: float = 30) -> client.V1Job:
    found = wait_for(f"the Job of {name}", lambda: jobs(cluster, namespace, name), timeout)
    assert len(found) == 1
    return found[0]


def the_pod(cluster: Cluster, namespace: str, name: str) -> client.V1Pod:
    def running() -> client.V1Pod | None:
        pods = cluster.core.list_namespaced_pod(namespace, label_selector=f"{LABEL}={name}")
        live = [p for p in pods.items if p.status.phase == "Running"]
        return live[0] if live else None

    return wait_for(f"a running Pod of {name}", running, 60)


def phase_is(custom: client.CustomObjectsApi, namespace: str, name: str, phase: str) -> Any:
    def check() -> dict[str, Any] | None:
        body = read(custom, namespace, name)
        return body if (body.get("status") or {}).get("phase") == phase else None

    return wait_for(f"{name} {phase}", check, 60)


def condition(body: dict[str, Any], type_: str) -> dict[str, Any]:
    return next(c for c in body["status"]["conditions"] if c["type"] == type_)


def events_of(cluster: Cluster, namespace: str, name: str) -> list[str]:
    found = cluster.core.list_namespaced_event(
        namespace, field_selector=f"involvedObject.name={name},involvedObject.kind=TrainingJob"
    )
    return [e.reason for e in found.items]


def test_a_trainingjob_becomes_one_owned_job_with_the_built_pod_spec(
    cluster: Cluster, operator: OperatorProcess, custom: client.CustomObjectsApi, namespace: str
) -> None:
    started = time.monotonic()
    created = create(
        custom,
        namespace,
        manifest(
            "cancer",
            activeDeadlineSeconds=600,
            ttlSecondsAfterFinished=3600,
            resources={"requests": {"cpu": "250m"}, "limits": {"memory": "512Mi"}},
        ),
    )
    job = the_job(cluster, namespace, "cancer")
    TIMINGS["create_to_job_seconds"] = round(time.monotonic() - started, 3)
    assert job.metadata.name == "cancer-train"
    owner = job.metadata.owner_references[0]
    uid = created["metadata"]["uid"]
    assert (owner.kind, owner.name, owner.uid) == ("TrainingJob", "cancer", uid)
    assert owner.controller is True

    expected = build_job(created, OperatorSettings(image=IMAGE))
    served = cluster.api.sanitize_for_serialization(job)
    want_pod, got_pod = expected["spec"]["template"]["spec"], served["spec"]["template"]["spec"]
    want, got = want_pod["containers"][0], got_pod["containers"][0]
    for key in (
        "image",
        "command",
        "args",
        "env",
        "volumeMounts",
        "securityContext",
        "resources",
        "terminationMessagePath",
        "terminationMessagePolicy",
    ):
        assert got[key] == want[key], key
    assert got_pod["securityContext"] == want_pod["securityContext"]
    assert got_pod["volumes"] == [
        {"name": "tmp", "emptyDir": {}},
        {"name": "store-0", "persistentVolumeClaim": {"claimName": "mlops-models"}},
    ]
    for key in ("backoffLimit", "activeDeadlineSeconds", "ttlSecondsAfterFinished"):
        assert served["spec"][key] == expected["spec"][key], key

    pod = the_pod(cluster, namespace, "cancer")
    body = phase_is(custom, namespace, "cancer", "Running")
    TIMINGS["create_to_running_seconds"] = round(time.monotonic() - started, 3)
    assert pod.spec.containers[0].args == want["args"]
    assert body["status"]["startTime"]
    assert body["status"]["attempts"] == 1
    assert condition(body, "Running")["status"] == "True"


def test_the_result_in_the_termination_message_makes_it_succeeded(
    cluster: Cluster, operator: OperatorProcess, custom: client.CustomObjectsApi, namespace: str
) -> None:
    create(custom, namespace, manifest("cancer"))
    pod = the_pod(cluster, namespace, "cancer")
    finished = time.monotonic()
    cluster.set_pod_terminated(pod, 0, json.dumps(RESULT))
    body = phase_is(custom, namespace, "cancer", "Succeeded")
    TIMINGS["pod_terminated_to_succeeded_seconds"] = round(time.monotonic() - finished, 3)
    status = body["status"]
    assert status["model"] == RESULT["model"]
    assert status["metrics"] == RESULT["metrics"]
    assert status["score"] == "accuracy=0.9737"
    assert status["completionTime"]
    assert condition(body, "Succeeded")["status"] == "True"
    assert condition(body, "Succeeded")["observedGeneration"] == 1
    assert condition(body, "Failed")["status"] == "False"
    waited = cluster.kubectl(
        "wait", "-n", namespace, "--for=condition=Succeeded", "tj/cancer", "--timeout=10s"
    )
    assert "condition met" in waited.stdout
    table = cluster.kubectl("get", "tj", "-n", namespace).stdout
    assert "Succeeded" in table
    assert "accuracy=0.9737" in table
    expected_events = {"JobCreated", "Completed"}
    wait_for(
        "the events",
        lambda: expected_events <= set(events_of(cluster, namespace, "cancer")),
        20,
    )


def test_the_spec_is_immutable_once_started(
    cluster: Cluster, operator: OperatorProcess, custom: client.CustomObjectsApi, namespace: str
) -> None:
    create(custom, namespace, manifest("frozen"))
    phase_is(custom, namespace, "frozen", "Running")
    patch = {"spec": {"backoffLimit": 3}}
    with pytest.raises(ApiException) as refused:
        custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "frozen", patch)
    assert refused.value.status == 422
    assert "create a new TrainingJob to retrain" in str(refused.value.body)


GATE = {
    "phase": "Failed",
    "reason": "QualityGateFailed",
    "exitCode": 10,
    "message": "quality gate failed: accuracy 0.81 < min 0.9 (missed by 0.09)",
    "metrics": {"accuracy": 0.81},
}


@dataclass(frozen=True)
class Failure:
    spec: dict[str, Any]
    exit_code: int
    message: str
    kubelet_reason: str | None
    reason: str
    says: str


FAILURES = {
    "gate": Failure({}, 10, json.dumps(GATE), None, "QualityGateFailed", "accuracy 0.81 < min"),
    "oom": Failure(
        {"resources": {"limits": {"memory": "64Mi"}}}, 137, "", "OOMKilled", "OOMKilled", "64Mi"
    ),
    "crash": Failure({}, 1, "Traceback: boom", None, "BackoffLimitExceeded", "boom"),
}


@pytest.mark.parametrize("case", sorted(FAILURES))
def test_a_failed_pod_fails_with_the_reason(
    cluster: Cluster,
    operator: OperatorProcess,
    custom: client.CustomObjectsApi,
    namespace: str,
    case: str,
) -> None:
    failure = FAILURES[case]
    create(custom, namespace, manifest(case, **failure.spec))
    pod = the_pod(cluster, namespace, case)
    cluster.set_pod_terminated(pod, failure.exit_code, failure.message, failure.kubelet_reason)
    body = phase_is(custom, namespace, case, "Failed")
    failed = condition(body, "Failed")
    assert (failed["status"], failed["reason"]) == ("True", failure.reason)
    assert failure.says in failed["message"]
    assert failure.says in body["status"]["message"]
    assert "model" not in body["status"]
    wait_for("a Warning event", lambda: failure.reason in events_of(cluster, namespace, case), 20)


REFUSED = {
    "resource-not-standard": (
        {"resources": {"requests": {"gpu": 1}}},
        ["the API server refused the training Job", "requests[gpu]"],
    ),
    "params-too-large": (
        {
            "model": {
                "estimator": "sklearn.tree.DecisionTreeClassifier",
                "params": {"x": "y" * 40000},
            }
        },
        ["spec.model.params", "39 KiB as JSON"],
    ),
    "params-over-the-annotation-limit": (
        {
            "model": {
                "estimator": "sklearn.tree.DecisionTreeClassifier",
                "params": {"x": "y" * 360 * 1024},
            }
        },
        ["spec.model.params", "360 KiB as JSON"],
    ),
    "schedule-never-due": ({"schedule": "0 0 30 2 *"}, ["spec.schedule '0 0 30 2 *'"]),
}
"""Specs the API server accepts and the operator cannot run: Failed (InvalidSpec) at once."""


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_a_spec_the_server_accepts_but_cannot_run_fails_as_invalid_spec(
    cluster: Cluster,
    operator: OperatorProcess,
    custom: client.CustomObjectsApi,
    namespace: str,
    case: str,
) -> None:
    spec, says = REFUSED[case]
    create(custom, namespace, manifest(case, **spec))
    body = phase_is(custom, namespace, case, "Failed")
    failed = condition(body, "Failed")
    assert (failed["status"], failed["reason"]) == ("True", "InvalidSpec")
    for words in says:
        assert words in failed["message"]
    assert jobs(cluster, namespace, case) == []
    wait_for("an InvalidSpec event", lambda: "InvalidSpec" in events_of(cluster, namespace, case))


def test_a_deadline_fails_it_with_deadline_exceeded(
    cluster: Cluster, operator: OperatorProcess, custom: client.CustomObjectsApi, namespace: str
) -> None:
    create(custom, namespace, manifest("slow", activeDeadlineSeconds=2))
    body = phase_is(custom, namespace, "slow", "Failed")
    assert condition(body, "Failed")["reason"] == "DeadlineExceeded"
    assert "spec.activeDeadlineSeconds (2s)" in body["status"]["message"]


def test_an_image_that_cannot_be_pulled_fails_it_and_stops_the_job(
    cluster: Cluster, operator: OperatorProcess, custom: client.CustomObjectsApi, namespace: str
) -> None:
    create(custom, namespace, manifest("nopull"))
    pod = the_pod(cluster, namespace, "nopull")
    waiting = {
        "name": "trainer",
        "image": IMAGE,
        "imageID": "",
        "ready": False,
        "restartCount": 0,
        "state": {
            "waiting": {
                "reason": "ImagePullBackOff",
                "message": f'Back-off pulling image "{IMAGE}"',
            }
        },
    }
    cluster.core.patch_namespaced_pod_status(
        pod.metadata.name,
        namespace,
        {"status": {"phase": "Pending", "containerStatuses": [waiting]}},
    )
    body = phase_is(custom, namespace, "nopull", "Failed")
    assert condition(body, "Failed")["reason"] == "ImagePullFailed"
    assert "MLOPS_IMAGE" in body["status"]["message"]
    wait_for("the Job deleted", lambda: not jobs(cluster, namespace, "nopull"), 30)


def test_a_restarted_operator_keeps_one_job_per_run_and_a_correct_status(
    cluster: Cluster, operator: OperatorProcess, custom: client.CustomObjectsApi, namespace: str
) -> None:
    create(custom, namespace, manifest("steady"))
    the_job(cluster, namespace, "steady")
    operator.kill()  # mid-run
    operator.start()
    pod = the_pod(cluster, namespace, "steady")
    operator.kill()  # and again, just before the result comes in
    cluster.set_pod_terminated(pod, 0, json.dumps(RESULT))
    started = time.monotonic()
    operator.start()
    body = phase_is(custom, namespace, "steady", "Succeeded")
    TIMINGS["restart_to_succeeded_seconds"] = round(time.monotonic() - started, 3)
    assert body["status"]["model"] == RESULT["model"]
    assert len(jobs(cluster, namespace, "steady")) == 1
    # created while the operator is down: exactly one Job once it is back
    operator.kill()
    create(custom, namespace, manifest("late"))
    operator.start()
    the_job(cluster, namespace, "late")
    time.sleep(2)
    assert len(jobs(cluster, namespace, "late")) == 1
    reasons = events_of(cluster, namespace, "steady")
    assert reasons.count("JobCreated") <= 1  # never two; a SIGKILL may lose the one


def test_deleting_a_trainingjob_deletes_its_job(
    cluster: Cluster, operator: OperatorProcess, custom: client.CustomObjectsApi, namespace: str
) -> None:
    create(custom, namespace, manifest("gone"))
    the_job(cluster, namespace, "gone")
    custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "gone")
    wait_for("the garbage collector", lambda: not jobs(cluster, namespace, "gone"), 60)


def test_a_schedule_creates_runs_and_trims_their_history(
    cluster: Cluster, operator: OperatorProcess, custom: client.CustomObjectsApi, namespace: str
) -> None:
    parent = create(
        custom,
        namespace,
        manifest(
            "nightly",
            schedule="* * * * *",
            successfulRunsHistoryLimit=1,
            failedRunsHistoryLimit=1,
        ),
    )
    # Two earlier runs, made the way the operator makes them, finish before the first tick.
    old = []
    for stamp in ("202601010300", "202601020300"):
        run = json.loads(json.dumps(parent))
        run["metadata"] = {
            "name": f"nightly-{stamp}",
            "labels": {"app": "cancer", "mlops.dev/scheduled-by": "nightly"},
            "annotations": {"mlops.dev/scheduled-time": f"2026-01-0{stamp[7]}T03:00:00Z"},
            "ownerReferences": [
                {
                    "apiVersion": "mlops.dev/v1alpha1",
                    "kind": "TrainingJob",
                    "name": "nightly",
                    "uid": parent["metadata"]["uid"],
                }
            ],
        }
        del run["spec"]["schedule"]
        create(custom, namespace, run)
        old.append(run["metadata"]["name"])
    for name in old:
        cluster.set_pod_terminated(the_pod(cluster, namespace, name), 0, json.dumps(RESULT))
        phase_is(custom, namespace, name, "Succeeded")

    def trimmed() -> bool:
        names = {
            tj["metadata"]["name"]
            for tj in custom.list_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, label_selector="mlops.dev/scheduled-by=nightly"
            )["items"]
        }
        return "nightly-202601010300" not in names and "nightly-202601020300" in names

    wait_for("the older success deleted (successfulRunsHistoryLimit 1)", trimmed, 30)

    def scheduled_run() -> dict[str, Any] | None:
        status = read(custom, namespace, "nightly").get("status") or {}
        return status if status.get("lastScheduleTime") else None

    status = wait_for("a run at the next minute", scheduled_run, 75)
    stamp = status["lastScheduleTime"]
    name = "nightly-" + stamp[:16].replace("-", "").replace("T", "").replace(":", "")
    run = read(custom, namespace, name)
    assert run["metadata"]["labels"] == {"app": "cancer", "mlops.dev/scheduled-by": "nightly"}
    assert run["metadata"]["ownerReferences"][0]["uid"] == parent["metadata"]["uid"]
    assert "schedule" not in run["spec"]
    the_job(cluster, namespace, name)
    assert [r["name"] for r in status["runs"]][:2] == [name, "nightly-202601020300"]
    assert status["model"] == RESULT["model"]
    assert len(jobs(cluster, namespace, "nightly")) == 0  # the parent trains nothing itself

    custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "nightly")

    def runs_gone() -> bool:
        left = custom.list_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, label_selector="mlops.dev/scheduled-by=nightly"
        )["items"]
        return not left

    wait_for("the runs garbage-collected", runs_gone, 60)


def test_metrics_and_liveness_are_served(operator: OperatorProcess) -> None:
    assert operator.get("/healthz", operator.liveness_port).startswith("{")
    text = operator.get("/metrics", operator.metrics_port)
    assert 'mlops_reconcile_total{kind="TrainingJob",result="ok"}' in text
    assert 'mlops_reconcile_duration_seconds_count{kind="TrainingJob"}' in text


def test_the_operator_cannot_touch_what_it_does_not_manage(
    cluster: Cluster, operator: OperatorProcess, namespace: str
) -> None:
    api = cluster.service_account_client("mlops-system", "mlops-operator", create=False)
    core = client.CoreV1Api(api)
    refused = [
        lambda: core.list_namespaced_secret(namespace),
        lambda: core.create_namespaced_pod(
            namespace,
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "intruder"},
                "spec": {"containers": [{"name": "c", "image": IMAGE}]},
            },
        ),
        lambda: core.delete_namespace(namespace),
        lambda: client.RbacAuthorizationV1Api(api).list_cluster_role_binding(),
    ]
    for attempt in refused:
        with pytest.raises(ApiException) as forbidden:
            attempt()
        assert forbidden.value.status == 403
    client.BatchV1Api(api).list_namespaced_job(namespace)  # what it manages, it may read
    api.close()


def test_a_users_job_of_the_training_jobs_name_is_left_untouched(
    cluster: Cluster,
    operator: OperatorProcess,
    custom: client.CustomObjectsApi,
    namespace: str,
) -> None:
    """A Job of the user's named `<name>-train`: the TrainingJob fails as NameClash naming
    it, with an Event; the Job keeps its labels and gets no owner."""
    users = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "clash-train", "namespace": namespace, "labels": {"app": "etl"}},
        "spec": {
            "suspend": True,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "etl", "image": "etl:1"}],
                }
            },
        },
    }
    cluster.apply(users, namespace=namespace)
    create(custom, namespace, manifest("clash"))
    body = phase_is(custom, namespace, "clash", "Failed")
    failed = condition(body, "Failed")
    assert (failed["status"], failed["reason"]) == ("True", "NameClash")
    assert "Job clash-train exists and was not created for this TrainingJob" in failed["message"]
    job = client.BatchV1Api(cluster.api).read_namespaced_job("clash-train", namespace)
    assert job.metadata.labels == {"app": "etl"}
    assert not job.metadata.owner_references
    wait_for("a NameClash event", lambda: "NameClash" in events_of(cluster, namespace, "clash"))
