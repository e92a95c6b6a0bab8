"""Scheduled TrainingJobs: due runs, concurrency, bounded history, the parent's status."""

from __future__ import annotations

import datetime
from typing import Any

from mlops_operator.api.trainingjob import TrainingJobStatus
from mlops_operator.schedule import build_run, due_time, plan, trim
from tests.operator.trainingjob_fixtures import RESULT, UID, trainingjob

UTC = datetime.UTC


def at(hour: int, minute: int, second: int = 0) -> datetime.datetime:
    return datetime.datetime(2026, 11, 22, hour, minute, second, tzinfo=UTC)


def parent(**status: Any) -> dict[str, Any]:
    body = trainingjob("trainingjob-scheduled.yaml", schedule="*/5 * * * *")
    body["metadata"]["creationTimestamp"] = "2026-11-22T10:00:30Z"
    if status:
        body["status"] = status
    return body


def run(name: str, phase: str | None, scheduled: str, **status: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "metadata": {
            "name": name,
            "ownerReferences": [{"uid": UID}],
            "annotations": {"mlops.dev/scheduled-time": scheduled},
        },
    }
    if phase:
        body["status"] = {"phase": phase, **status}
    return body


def test_due_time_is_the_latest_cron_time_after_the_last_run() -> None:
    assert due_time("*/5 * * * *", at(10, 0, 30), at(10, 4, 59)) is None
    assert due_time("*/5 * * * *", at(10, 0, 30), at(10, 5)) == at(10, 5)
    assert due_time("*/5 * * * *", at(10, 0, 30), at(10, 17)) == at(10, 15)
    assert due_time("*/5 * * * *", at(10, 15), at(10, 17)) is None


def test_nothing_is_due_right_after_creation() -> None:
    step = plan(parent(), [], at(10, 2))
    assert step.create is None
    assert step.status["message"] == "next run at 2026-11-22T10:05:00Z"
    assert "lastScheduleTime" not in step.status
    TrainingJobStatus.model_validate(step.status)


def test_a_due_run_is_a_child_named_after_its_cron_time() -> None:
    step = plan(parent(), [], at(10, 5, 10))
    assert step.create is not None
    meta = step.create["metadata"]
    assert meta["name"] == "diabetes-nightly-202611221005"
    assert meta["labels"] == {"app": "diabetes", "mlops.dev/scheduled-by": "diabetes-nightly"}
    assert meta["ownerReferences"][0]["uid"] == UID
    assert "schedule" not in step.create["spec"]
    assert step.create["spec"]["model"] == parent()["spec"]["model"]
    assert step.status["lastScheduleTime"] == "2026-11-22T10:05:00Z"
    assert step.status["runs"] == [{"name": meta["name"], "phase": "Pending"}]
    TrainingJobStatus.model_validate(step.status)


def test_planning_again_after_a_restart_names_the_same_run() -> None:
    first = plan(parent(), [], at(10, 5, 10))
    again = plan(parent(), [], at(10, 5, 40))
    assert first.create is not None
    assert again.create is not None
    assert again.create["metadata"]["name"] == first.create["metadata"]["name"]


def test_forbid_waits_while_a_run_is_active() -> None:
    body = parent(lastScheduleTime="2026-11-22T10:05:00Z")
    active = run("diabetes-nightly-202611221005", "Running", "2026-11-22T10:05:00Z")
    step = plan(body, [active], at(10, 10, 5))
    assert step.create is None
    assert step.skipped is not None
    assert "concurrencyPolicy Forbid" in step.skipped


def test_allow_starts_a_run_while_another_is_active() -> None:
    body = parent(lastScheduleTime="2026-11-22T10:05:00Z")
    body["spec"]["concurrencyPolicy"] = "Allow"
    active = run("diabetes-nightly-202611221005", "Running", "2026-11-22T10:05:00Z")
    step = plan(body, [active], at(10, 10, 5))
    assert step.create is not None
    assert [r["name"] for r in step.status["runs"]] == [
        "diabetes-nightly-202611221010",
        "diabetes-nightly-202611221005",
    ]


def test_history_is_trimmed_per_outcome_oldest_first() -> None:
    runs = [
        run(f"r{i}", phase, f"2026-11-22T0{i}:00:00Z")
        for i, phase in enumerate(
            ["Succeeded", "Failed", "Succeeded", "Failed", "Succeeded", "Succeeded", "Running"]
        )
    ]
    kept, delete = trim(sorted(runs, key=lambda r: r["metadata"]["name"], reverse=True), 2, 1)
    assert [r["metadata"]["name"] for r in kept] == ["r6", "r5", "r4", "r3"]
    assert delete == ["r0", "r1", "r2"]


def test_parent_shows_the_newest_run_and_the_newest_model() -> None:
    body = parent(lastScheduleTime="2026-11-22T10:10:00Z")
    runs = [
        run("b", "Failed", "2026-11-22T10:10:00Z"),
        run("a", "Succeeded", "2026-11-22T10:05:00Z", startTime="2026-11-22T10:05:01Z", **RESULT),
        run("stranger", "Succeeded", "2026-11-22T10:15:00Z"),
    ]
    runs[2]["metadata"]["ownerReferences"] = [{"uid": "someone-else"}]
    step = plan(body, runs, at(10, 12))
    assert step.status["phase"] == "Failed"
    assert step.status["runs"] == [
        {"name": "b", "phase": "Failed"},
        {"name": "a", "phase": "Succeeded", "startTime": "2026-11-22T10:05:01Z"},
    ]
    assert step.status["model"] == RESULT["model"]
    assert step.delete == []
    TrainingJobStatus.model_validate(step.status)


def test_build_run_keeps_no_schedule_fields() -> None:
    child = build_run(parent(), at(3, 0))
    for key in ("schedule", "concurrencyPolicy", "successfulRunsHistoryLimit"):
        assert key not in child["spec"]
    assert child["metadata"]["annotations"] == {"mlops.dev/scheduled-time": "2026-11-22T03:00:00Z"}
