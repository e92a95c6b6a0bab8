"""Manual control: each command on each rollout state, through the pure state machine."""

from __future__ import annotations

from dataclasses import replace

import pytest

from mlops_operator.canary import Plan, RolloutState, Thresholds, VariantMetrics, decide
from mlops_operator.canary.commands import ANNOTATION, CommandError, parse, pending

pytestmark = pytest.mark.unit

PLAN = Plan(steps=(10, 30, 60), interval=30, thresholds=Thresholds(min_requests=1))
NEW = "sha256:new"
T = 1_000.0
AT_10 = RolloutState(phase="Progressing", canary=NEW, step=0, weight=10, since=T)
AT_60 = replace(AT_10, step=2, weight=60)
BACK = RolloutState(phase="RolledBack", canary=NEW, weight=0, since=T)
HEALTHY = VariantMetrics(requests=100, error_rate=0.0)


def run(state: RolloutState, verb: str, plan: Plan = PLAN, now: float = T + 1):
    return decide(plan, state, NEW, now, command=parse(f"{verb}/1"))


@pytest.mark.parametrize(
    ("state", "verb", "action", "phase", "weight", "reason"),
    [
        (AT_10, "promote", "advance", "Progressing", 30, "StepAdvanced"),
        (AT_60, "promote", "promote", "Promoted", 0, "Promoted"),
        (AT_10, "promote-full", "promote", "Promoted", 0, "Promoted"),
        (AT_10, "abort", "rollback", "RolledBack", 0, "Aborted"),
        (AT_10, "pause", "pause", "Paused", 10, "Paused"),
        (BACK, "retry", "start", "Progressing", 10, "RolloutRetried"),
    ],
)
def test_a_command_acts_at_once_without_waiting_for_the_interval(  # noqa: PLR0917
    state: RolloutState, verb: str, action: str, phase: str, weight: int, reason: str
) -> None:
    decision = run(state, verb)
    assert (decision.action, decision.state.phase, decision.state.weight) == (
        action,
        phase,
        weight,
    )
    assert decision.reason == reason
    assert decision.ignored is None


def test_paused_by_hand_stays_paused_until_resumed() -> None:
    paused = run(AT_10, "pause").state
    assert paused.held
    later = decide(PLAN, paused, NEW, T + 100, HEALTHY)
    assert (later.action, later.state.phase, later.state.weight) == ("wait", "Paused", 10)
    assert "by hand" in later.message
    resumed = run(later.state, "resume", now=T + 101)
    assert (resumed.action, resumed.state.phase, resumed.state.held) == (
        "resume",
        "Progressing",
        False,
    )
    assert resumed.new_window
    assert resumed.state.since == T + 101


def test_promote_by_hand_resumes_a_rollout_paused_by_hand() -> None:
    paused = run(AT_10, "pause").state
    moved = run(paused, "promote")
    assert (moved.state.phase, moved.state.weight, moved.state.held) == ("Progressing", 30, False)


def test_resume_does_not_override_spec_pause() -> None:
    plan = replace(PLAN, pause=True)
    held = replace(AT_10, phase="Paused", held=True)
    resumed = run(held, "resume", plan)
    assert resumed.state.phase == "Paused"
    assert "spec.traffic.pause" in resumed.message


@pytest.mark.parametrize(
    ("state", "verb", "why"),
    [
        (AT_10, "retry", "still under way"),
        (AT_10, "resume", "not paused by hand"),
        (BACK, "promote", "RolledBack (retry starts it again)"),
        (replace(AT_10, phase="Promoted"), "abort", "over: Promoted"),
        (RolloutState(phase="Stable"), "promote", "no rollout is under way"),
    ],
)
def test_a_command_that_cannot_act_says_why_and_changes_nothing(
    state: RolloutState, verb: str, why: str
) -> None:
    decision = run(state, verb)
    without = decide(PLAN, state, NEW, T + 1)
    assert decision.ignored is not None
    assert why in decision.ignored
    assert replace(decision, ignored=None) == without


def test_a_manual_split_or_abtest_is_promoted_in_full_by_promote() -> None:
    manual = replace(PLAN, canary_weight=40)
    state = replace(AT_10, weight=40)
    assert run(state, "promote", manual).action == "promote"


def test_the_annotation_is_pending_until_its_value_is_handled() -> None:
    annotations = {ANNOTATION: "abort/17", "other": "x"}
    assert pending(annotations, None) == parse("abort/17")
    assert pending(annotations, "abort/17") is None
    assert pending({}, "abort/17") is None
    with pytest.raises(CommandError, match="'rollback' is not one of promote"):
        pending({ANNOTATION: "rollback"}, None)
