"""Which rollout decisions notify, and the bodies the sinks get."""

from __future__ import annotations

import pytest

from mlops_operator.canary import RolloutState
from mlops_operator.canary.machine import Decision
from mlops_operator.canary.notifications import event_of, generic, slack

pytestmark = pytest.mark.unit
STATE = RolloutState(phase="Progressing", canary="sha256:2", weight=50)


@pytest.mark.parametrize(
    ("action", "verdict", "event"),
    [
        ("start", None, "started"),
        ("advance", "Passed", "step"),
        ("resume", None, "step"),
        ("pause", None, "paused"),
        ("promote", "Passed", "promoted"),
        ("rollback", "Failed", "rolledBack"),
        ("hold", "Failed", "failed"),
        ("hold", "Passed", None),
        ("hold", "Inconclusive", None),
        ("wait", None, None),
        ("done", None, None),
    ],
)
def test_each_decision_notifies_at_most_one_event(
    action: str, verdict: str | None, event: str | None
) -> None:
    decision = Decision(action, STATE, "Why", "what", verdict=verdict)  # type: ignore[arg-type]
    assert event_of(decision) == event


def test_the_generic_and_the_slack_bodies() -> None:
    decision = Decision("advance", STATE, "StepAdvanced", "canary at 50%: previous step ok")
    status = {
        "canary": {"model": "iris-v2", "digest": "sha256:2", "weight": 50},
        "stable": {"model": "iris-v1", "digest": "sha256:1"},
    }
    body = generic("iris", "ml", "step", decision, status=status, time="2026-12-02T03:00:00Z")
    assert body == {
        "event": "step",
        "name": "iris",
        "namespace": "ml",
        "phase": "Progressing",
        "weight": 50,
        "reason": "StepAdvanced",
        "message": "canary at 50%: previous step ok",
        "canary": {"model": "iris-v2", "digest": "sha256:2"},
        "stable": {"model": "iris-v1", "digest": "sha256:1"},
        "time": "2026-12-02T03:00:00Z",
    }
    assert slack(body) == {
        "text": ":arrow_up: *ml/iris* step (canary iris-v2, weight 50%): "
        "canary at 50%: previous step ok",
        "username": "mlops-operator",
    }
