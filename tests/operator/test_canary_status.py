"""Model resolution and the rollout state in the status (what a restart reads back)."""

from __future__ import annotations

from typing import Any

import pytest

from mlops_operator.api.common import ModelRef
from mlops_operator.canary import Counters, RolloutState
from mlops_operator.canary.resolve import ServedModel, Waiting, newest, resolve
from mlops_operator.status.conditions import rfc3339
from mlops_operator.status.modeldeployment import (
    epoch,
    snapshot_from_status,
    snapshot_to_status,
    state_from_status,
)

pytestmark = pytest.mark.unit
DIGEST = "sha256:" + "a" * 64


def tj(name: str, phase: str, completed: str = "", digest: str = DIGEST) -> dict[str, Any]:
    status: dict[str, Any] = {"phase": phase}
    if phase == "Succeeded":
        status["model"] = {"uri": f"pvc://m/ns/{name}/1", "digest": digest, "version": "1"}
        status["completionTime"] = completed
    return {
        "metadata": {"name": name, "creationTimestamp": completed or "2026-01-01T00:00:00Z"},
        "status": status,
    }


def test_uri_resolves_to_itself() -> None:
    ref = ModelRef(uri="s3://b/m", digest=DIGEST)
    assert resolve(ref) == ServedModel("s3://b/m", DIGEST, "s3://b/m")


@pytest.mark.parametrize("phase", ["Pending", "Running", "Failed"])
def test_trainingjob_waits_until_succeeded(phase: str) -> None:
    found = resolve(ModelRef(training_job="iris"), tj("iris", phase))
    assert isinstance(found, Waiting)
    assert found.reason == "WaitingForTrainingJob"
    assert phase in found.message


def test_trainingjob_resolves_to_its_model() -> None:
    found = resolve(ModelRef(training_job="iris"), tj("iris", "Succeeded", "2026-01-02T00:00:00Z"))
    assert found == ServedModel("pvc://m/ns/iris/1", DIGEST, "iris")
    missing = resolve(ModelRef(training_job="nope"), None)
    assert isinstance(missing, Waiting)
    assert missing.reason == "TrainingJobNotFound"


def test_selector_follows_the_newest_succeeded() -> None:
    runs = [
        tj("run-1", "Succeeded", "2026-01-01T03:00:00Z", "sha256:" + "1" * 64),
        tj("run-2", "Succeeded", "2026-01-02T03:00:00Z", "sha256:" + "2" * 64),
        tj("run-3", "Failed"),  # its gate failed
        tj("run-4", "Running"),
    ]
    assert newest(runs) is runs[1]
    ref = ModelRef.model_validate({"selector": {"matchLabels": {"app": "iris"}}})
    found = resolve(ref, selected=runs)
    assert isinstance(found, ServedModel)
    assert found.name == "run-2"
    nothing = resolve(ref, selected=runs[2:])
    assert isinstance(nothing, Waiting)
    assert "app=iris" in nothing.message


def test_state_round_trips_through_the_status() -> None:
    since = 1_790_000_000.25
    status = {
        "phase": "Progressing",
        "canaryWeight": 25,
        "canary": {"digest": DIGEST},
        "analysis": {"time": rfc3339(since, precise=True), "step": 1, "failures": 1},
    }
    assert state_from_status(status) == RolloutState(
        phase="Progressing", canary=DIGEST, step=1, weight=25, failures=1, since=since
    )
    assert state_from_status(None) == RolloutState()
    assert state_from_status({"phase": "Degraded"}).phase is None
    assert epoch(None) is None


def test_snapshot_round_trips_through_the_status() -> None:
    snapshot = {
        "canary": {"pod-a": Counters(requests=5, errors=1, buckets={0.1: 4.0, float("inf"): 5.0})}
    }
    status = {"analysis": {"snapshot": snapshot_to_status(snapshot)}}
    assert snapshot_from_status(status) == snapshot
