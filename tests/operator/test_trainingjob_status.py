"""TrainingJob status from its Job and Pods: phases, reasons a person can act on, results."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from mlops_operator.api.trainingjob import TrainingJobStatus
from mlops_operator.status.conditions import find
from mlops_operator.status.trainingjob import (
    compute,
    observe,
    parse_result,
    rejected,
    score_of,
)
from tests.operator.trainingjob_fixtures import (
    RESULT,
    job,
    pod,
    result,
    terminated,
    trainingjob,
    true,
)

NOW = datetime.datetime(2026, 11, 22, 10, 6, tzinfo=datetime.UTC)


def condition(status: dict[str, Any], type_: str) -> dict[str, Any]:
    found = find(status["conditions"], type_)
    assert found is not None
    return dict(found)


def test_before_the_job_exists_it_is_pending() -> None:
    status, event = compute(trainingjob(), None, [], NOW)
    assert status["phase"] == "Pending"
    assert "startTime" not in status
    assert event is not None
    assert event.type == "Normal"


def test_job_created_sets_start_time_which_freezes_the_spec() -> None:
    status, _ = compute(trainingjob(), job(), [], NOW)
    assert status["phase"] == "Pending"
    assert status["startTime"] == "2026-11-22T10:00:01Z"
    assert condition(status, "Running")["reason"] == "JobCreated"


def test_running_pod_makes_it_running() -> None:
    status, event = compute(trainingjob(), job(active=1), [pod()], NOW)
    assert status["phase"] == "Running"
    assert status["attempts"] == 1
    running = condition(status, "Running")
    assert running["status"] == "True"
    assert running["observedGeneration"] == 1
    assert condition(status, "Succeeded")["status"] == "False"
    assert condition(status, "Failed")["status"] == "False"
    assert event is not None
    assert event.reason == "Training"


def test_success_takes_metrics_score_and_model_from_the_termination_message() -> None:
    pods = [pod(phase="Succeeded", state=terminated(0, result()))]
    finished = job([true("Complete")], succeeded=1, completionTime="2026-11-22T10:05:00Z")
    status, event = compute(trainingjob(), finished, pods, NOW)
    assert status["phase"] == "Succeeded"
    assert status["metrics"] == RESULT["metrics"]
    assert status["model"] == RESULT["model"]
    assert status["score"] == "accuracy=0.965"
    assert status["completionTime"] == "2026-11-22T10:05:00Z"
    assert condition(status, "Succeeded")["status"] == "True"
    assert condition(status, "Running")["status"] == "False"
    assert event is not None
    assert event.reason == "Completed"
    assert "20261122-100500" in event.message


def test_finished_is_final() -> None:
    body = trainingjob()
    body["status"] = {"phase": "Succeeded", "model": RESULT["model"]}
    status, event = compute(body, None, [], NOW)
    assert status == body["status"]
    assert event is None


def test_unchanged_observation_keeps_transition_times_and_posts_nothing() -> None:
    body = trainingjob()
    first, _ = compute(body, job(active=1), [pod()], NOW)
    body["status"] = first
    later = NOW + datetime.timedelta(minutes=3)
    second, event = compute(body, job(active=1), [pod()], later)
    assert second == first
    assert event is None


def test_quality_gate_failure_carries_the_numbers() -> None:
    message = result(
        reason="QualityGateFailed",
        message="quality gate failed: accuracy 0.81 < min 0.9",
        metrics={"accuracy": 0.81},
        model=None,
    )
    pods = [pod(phase="Failed", state=terminated(10, message))]
    failed = job([true("Failed", "PodFailurePolicy", "Container trainer exited with 10")])
    status, event = compute(trainingjob(), failed, pods, NOW)
    assert status["phase"] == "Failed"
    assert condition(status, "Failed")["reason"] == "QualityGateFailed"
    assert "accuracy 0.81 < min 0.9" in status["message"]
    assert status["metrics"] == {"accuracy": 0.81}
    assert "model" not in status
    assert event is not None
    assert event.type == "Warning"


def test_oom_killed_says_to_raise_the_memory_limit() -> None:
    pods = [pod(phase="Failed", state=terminated(137, reason="OOMKilled"), memory="256Mi")]
    failed = job([true("Failed", "BackoffLimitExceeded")])
    outcome = observe(failed, pods)
    assert outcome.reason == "OOMKilled"
    assert "256Mi" in outcome.message
    assert "spec.resources.limits.memory" in outcome.message


def test_deadline_exceeded_names_the_deadline() -> None:
    failed = job([true("Failed", "DeadlineExceeded", "Job was active longer than deadline")])
    outcome = observe(failed, [])
    assert outcome.reason == "DeadlineExceeded"
    assert "600s" in outcome.message


def test_backoff_exhausted_counts_attempts_and_quotes_the_last_error() -> None:
    pods = [
        pod("p1", "Failed", created="2026-11-22T10:00:02Z", state=terminated(1, "Traceback a")),
        pod("p2", "Failed", created="2026-11-22T10:01:02Z", state=terminated(1, "boom: disk")),
    ]
    failed = job([true("Failed", "BackoffLimitExceeded")], failed=2)
    status, _ = compute(trainingjob(), failed, pods, NOW)
    assert condition(status, "Failed")["reason"] == "BackoffLimitExceeded"
    assert "failed 2 times" in status["message"]
    assert "boom: disk" in status["message"]
    assert status["attempts"] == 2


def test_a_model_store_fault_stays_the_reason_after_the_retries() -> None:
    message = (
        '{"phase": "Failed", "reason": "ModelStoreFull", "exitCode": 17, "message": '
        '"model store pvc://mlops-models is full (OSError: No space left on device)"}'
    )
    pods = [
        pod("p1", "Failed", created="2026-11-22T10:00:02Z", state=terminated(17, message)),
        pod("p2", "Failed", created="2026-11-22T10:01:02Z", state=terminated(17, message)),
    ]
    status, _ = compute(
        trainingjob(), job([true("Failed", "BackoffLimitExceeded")], failed=2), pods, NOW
    )
    failed = condition(status, "Failed")
    assert failed["reason"] == "ModelStoreFull"
    assert "model store pvc://mlops-models is full" in failed["message"]
    assert "failed 2 times" in failed["message"]
    assert "model" not in status


def test_trainer_reason_is_kept_for_non_retryable_errors() -> None:
    message = '{"reason": "EstimatorNotAllowed", "message": "os.system is not allowed"}'
    pods = [pod(phase="Failed", state=terminated(7, message))]
    outcome = observe(job([true("Failed", "PodFailurePolicy")]), pods)
    assert outcome.reason == "EstimatorNotAllowed"
    assert "os.system is not allowed" in outcome.message


@pytest.mark.parametrize("reason", ["ErrImagePull", "ImagePullBackOff", "InvalidImageName"])
def test_image_pull_errors_fail_with_what_to_check(reason: str) -> None:
    waiting = {"waiting": {"reason": reason, "message": "manifest unknown"}}
    pods = [pod(phase="Pending", state=waiting)]
    outcome = observe(job(active=1), pods)
    assert outcome.phase == "Failed"
    assert outcome.reason == "ImagePullFailed"
    assert "MLOPS_IMAGE" in outcome.message
    assert "manifest unknown" in outcome.message


def test_missing_secret_fails_with_what_to_check() -> None:
    waiting = {
        "waiting": {"reason": "CreateContainerConfigError", "message": 'secret "s3" not found'}
    }
    outcome = observe(job(active=1), [pod(phase="Pending", state=waiting)])
    assert outcome.reason == "ContainerConfigError"
    assert "spec.output.secretRef" in outcome.message


def test_container_creating_is_pending_not_failed() -> None:
    waiting = {"waiting": {"reason": "ContainerCreating"}}
    outcome = observe(job(active=1), [pod(phase="Pending", state=waiting)])
    assert (outcome.phase, outcome.reason) == ("Pending", "ContainerCreating")


def test_unschedulable_pod_stays_pending_with_the_scheduler_message() -> None:
    stuck = pod(phase="Pending")
    stuck["status"]["conditions"] = [
        {
            "type": "PodScheduled",
            "status": "False",
            "reason": "Unschedulable",
            "message": "0/1 nodes are available: 1 Insufficient memory.",
        }
    ]
    outcome = observe(job(active=1), [stuck])
    assert outcome.phase == "Pending"
    assert "Insufficient memory" in outcome.message


def test_a_missing_model_store_claim_says_where_and_what_to_do() -> None:
    stuck = pod(phase="Pending")
    stuck["status"]["conditions"] = [
        {
            "type": "PodScheduled",
            "status": "False",
            "reason": "Unschedulable",
            "message": 'persistentvolumeclaim "mlops-models" not found. not found',
        }
    ]
    outcome = observe(job(active=1), [stuck])
    assert (outcome.phase, outcome.reason) == ("Pending", "ModelStoreClaimMissing")
    assert "the claim mlops-models does not exist in namespace team-a" in outcome.message
    assert "operator.watchNamespaces" in outcome.message
    assert "spec.output.uri" in outcome.message


def test_completed_without_result_is_a_failure_that_says_so() -> None:
    pods = [pod(phase="Succeeded", state=terminated(0, "not json"))]
    outcome = observe(job([true("Complete")]), pods)
    assert (outcome.phase, outcome.reason) == ("Failed", "ResultMissing")


def test_job_deleted_mid_run_fails() -> None:
    body = trainingjob()
    body["status"] = {"phase": "Running", "startTime": "2026-11-22T10:00:01Z"}
    status, _ = compute(body, None, [], NOW)
    assert condition(status, "Failed")["reason"] == "JobDeleted"
    assert status["startTime"] == "2026-11-22T10:00:01Z"


def test_success_reports_the_compiled_model_check() -> None:
    from mlops_operator.api.trainingjob import TrainingJobStatus

    onnx = {"verified": True, "rows": 30, "labelsEqual": True, "maxAbsDiff": 1.2e-7}
    pods = [pod(phase="Succeeded", state=terminated(0, result(onnx=onnx)))]
    finished = job([true("Complete")], succeeded=1, completionTime="2026-11-22T10:05:00Z")
    status, _ = compute(trainingjob(), finished, pods, NOW)
    assert status["onnx"] == onnx
    TrainingJobStatus.model_validate(status)
    unconvertible = {"verified": False, "reason": "skl2onnx cannot convert it"}
    pods = [pod(phase="Succeeded", state=terminated(0, result(onnx=unconvertible)))]
    status, _ = compute(trainingjob(), finished, pods, NOW)
    assert status["onnx"] == unconvertible
    assert (
        "onnx"
        not in compute(
            trainingjob(), finished, [pod(phase="Succeeded", state=terminated(0, result()))], NOW
        )[0]
    )


def test_parse_result_and_score() -> None:
    assert parse_result("") is None
    assert parse_result("[1]") is None
    assert parse_result('{"a": 1}') == {"a": 1}
    assert score_of({"metrics": {"r2": 0.51234}}) == "r2=0.5123"
    assert score_of({"score": "f1_macro=0.9"}) == "f1_macro=0.9"
    assert score_of({}) is None


@pytest.mark.parametrize(
    ("job_body", "pods"),
    [
        (None, []),
        (job(active=1), [pod()]),
        (job([true("Complete")]), [pod(phase="Succeeded", state=terminated(0, result()))]),
        (job([true("Failed", "DeadlineExceeded")]), []),
    ],
)
def test_every_status_fits_the_api_model(
    job_body: dict[str, Any] | None, pods: list[dict[str, Any]]
) -> None:
    status, _ = compute(trainingjob(), job_body, pods, NOW)
    TrainingJobStatus.model_validate(status)


def test_a_rejected_spec_is_failed_with_the_reason() -> None:
    status = rejected(trainingjob(), "InvalidSpec", "the spec cannot be trained: x", NOW)
    TrainingJobStatus.model_validate(status)
    assert status["phase"] == "Failed"
    failed = next(c for c in status["conditions"] if c["type"] == "Failed")
    assert (failed["status"], failed["reason"]) == ("True", "InvalidSpec")
    assert "startTime" not in status


def indexed_job(**status: Any) -> dict[str, Any]:
    found = job(**status)
    found["spec"].update(completionMode="Indexed", completions=3, parallelism=3)
    return found


def search_result(completed: int, *, model: bool) -> str:
    search = {
        "strategy": "bayesian",
        "progress": f"{completed}/30",
        "planned": 30,
        "completed": completed,
        "pruned": 2,
        "failed": 1,
        "workers": 3,
        "bestScore": 0.97,
        "bestParams": {"C": 3.2},
        "secondsPerTrial": 1.5,
    }
    if model:
        return result(search=search)
    return result(search=search, model=None, reason="Searched")


def search_body() -> dict[str, Any]:
    return trainingjob("trainingjob-search-bayesian.yaml")


def test_a_parallel_search_shows_its_planned_trials_and_running_workers() -> None:
    pods = [pod(f"w{i}", created=f"2026-11-22T10:00:0{i}Z") for i in range(2)]
    status, _ = compute(search_body(), indexed_job(active=2), pods, NOW)
    assert status["phase"] == "Running"
    assert status["message"] == "search: 2 worker Pods running, 0 of 3 finished"
    assert status["search"]["progress"] == "0/30"
    assert status["search"]["workers"] == 3


def test_a_finished_worker_reports_the_study_so_far() -> None:
    pods = [
        pod("w0"),
        pod("w1", "Succeeded", state=terminated(0, search_result(12, model=False))),
        pod("w2", "Succeeded", state=terminated(0, search_result(17, model=False))),
    ]
    status, _ = compute(search_body(), indexed_job(active=1, succeeded=2), pods, NOW)
    assert status["phase"] == "Running"
    assert status["search"]["progress"] == "17/30"
    assert "model" not in status


def test_the_search_succeeds_with_the_publishing_workers_result() -> None:
    pods = [
        pod(
            "w0",
            "Succeeded",
            created="2026-11-22T10:00:01Z",
            state=terminated(0, search_result(30, model=True)),
        ),
        pod(
            "w1",
            "Succeeded",
            created="2026-11-22T10:00:05Z",
            state=terminated(0, search_result(12, model=False)),
        ),
    ]
    complete = indexed_job(conditions=[true("Complete")], succeeded=3)
    status, _ = compute(search_body(), complete, pods, NOW)
    assert status["phase"] == "Succeeded", status["message"]
    assert status["model"] == RESULT["model"]
    assert status["search"]["progress"] == "30/30"
    assert (status["search"]["pruned"], status["search"]["failed"]) == (2, 1)
    TrainingJobStatus.model_validate(status)
