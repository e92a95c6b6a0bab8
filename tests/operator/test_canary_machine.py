"""The rollout state machine, table-driven, with a fake clock."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import pytest

from mlops_operator.api.modeldeployment import ModelDeploymentSpec
from mlops_operator.canary import Plan, RolloutState, Thresholds, VariantMetrics, decide, evaluate
from mlops_operator.canary.machine import seconds

pytestmark = pytest.mark.unit

HEALTHY = VariantMetrics(requests=100, error_rate=0.0, latency_p99_ms=20.0)
ERRORS = VariantMetrics(requests=100, error_rate=0.3, latency_p99_ms=20.0)
SLOW = VariantMetrics(requests=100, error_rate=0.0, latency_p99_ms=900.0)
INACCURATE = VariantMetrics(requests=100, error_rate=0.0, latency_p99_ms=20.0, accuracy=0.5)
QUIET = VariantMetrics(requests=3, error_rate=0.0)
STRICT = Thresholds(
    max_error_rate=0.05, max_latency_p99_ms=250, min_accuracy=0.8, min_requests=20, failure_limit=2
)
CANARY = Plan(steps=(10, 50), interval=30, thresholds=STRICT)


@dataclass
class FakeClock:
    now: float = 1_000.0

    def tick(self, by: float) -> float:
        self.now += by
        return self.now


@dataclass
class Case:
    """A rollout driven interval by interval: one observation per tick."""

    plan: Plan
    observations: list[VariantMetrics | None]
    actions: list[str]
    weights: list[int]
    phase: str
    canary: str | None = "sha256:new"
    extra: dict[str, object] = field(default_factory=dict)


CASES = {
    "healthy canary walks the steps and is promoted": Case(
        CANARY, [HEALTHY, HEALTHY], ["start", "advance", "promote"], [10, 50, 0], "Promoted"
    ),
    "error rate over the limit rolls back after failureLimit": Case(
        CANARY, [ERRORS, ERRORS], ["start", "hold", "rollback"], [10, 10, 0], "RolledBack"
    ),
    "slow p99 rolls back": Case(
        CANARY, [SLOW, SLOW], ["start", "hold", "rollback"], [10, 10, 0], "RolledBack"
    ),
    "low online accuracy rolls back": Case(
        CANARY,
        [INACCURATE, INACCURATE],
        ["start", "hold", "rollback"],
        [10, 10, 0],
        "RolledBack",
    ),
    "a passing analysis resets the failures": Case(
        CANARY,
        [ERRORS, HEALTHY, ERRORS, HEALTHY],
        ["start", "hold", "advance", "hold", "promote"],
        [10, 10, 50, 50, 0],
        "Promoted",
    ),
    "too few requests hold the step without failing": Case(
        CANARY,
        [QUIET, QUIET, QUIET],
        ["start", "hold", "hold", "hold"],
        [10, 10, 10, 10],
        "Progressing",
    ),
    "no metrics hold the step": Case(
        CANARY, [None, HEALTHY], ["start", "hold", "advance"], [10, 10, 50], "Progressing"
    ),
    "manual split holds its weight and is never promoted": Case(
        replace(CANARY, canary_weight=30),
        [HEALTHY, HEALTHY, HEALTHY],
        ["start", "hold", "hold", "hold"],
        [30, 30, 30, 30],
        "Progressing",
    ),
    "manual split still rolls back a failing canary": Case(
        replace(CANARY, canary_weight=30),
        [ERRORS, ERRORS],
        ["start", "hold", "rollback"],
        [30, 30, 0],
        "RolledBack",
    ),
    "abTest keeps its split and does not roll back": Case(
        replace(CANARY, strategy="abTest", ab_percent=30),
        [HEALTHY, ERRORS, ERRORS, ERRORS],
        ["start", "hold", "hold", "hold", "hold"],
        [30, 30, 30, 30, 30],
        "Progressing",
    ),
    "abTest promotes when the spec says so": Case(
        replace(CANARY, strategy="abTest", ab_percent=30, ab_promote=True),
        [None],
        ["start", "promote"],
        [30, 0],
        "Promoted",
    ),
    "shadow gets no live traffic and is never promoted": Case(
        replace(CANARY, strategy="shadow"),
        [HEALTHY, HEALTHY, HEALTHY],
        ["start", "hold", "hold", "hold"],
        [0, 0, 0, 0],
        "Progressing",
    ),
    "failing shadow is rolled back": Case(
        replace(CANARY, strategy="shadow"),
        [ERRORS, ERRORS],
        ["start", "hold", "rollback"],
        [0, 0, 0],
        "RolledBack",
    ),
    "pause holds the rollout": Case(
        replace(CANARY, pause=True),
        [HEALTHY, HEALTHY],
        ["start", "wait", "wait"],
        [10, 10, 10],
        "Paused",
    ),
    "no canary is stable": Case(CANARY, [None], ["done", "done"], [0, 0], "Stable", canary=None),
    "blue-green judges the preview, switches at once, promotes after the delay": Case(
        replace(CANARY, strategy="blueGreen", scale_down_delay=10),
        [HEALTHY, None],
        ["start", "advance", "promote"],
        [0, 100, 0],
        "Promoted",
    ),
    "a failing blue-green preview is rolled back before any live traffic": Case(
        replace(CANARY, strategy="blueGreen"),
        [ERRORS, ERRORS],
        ["start", "hold", "rollback"],
        [0, 0, 0],
        "RolledBack",
    ),
    "blue-green without autoPromote waits for a person": Case(
        replace(CANARY, strategy="blueGreen", auto_promote=False),
        [HEALTHY, HEALTHY],
        ["start", "hold", "hold"],
        [0, 0, 0],
        "Progressing",
    ),
    "blue-green without analysis switches after one interval": Case(
        replace(CANARY, strategy="blueGreen", preview_analysis=False),
        [ERRORS, ERRORS],
        ["start", "advance", "promote"],
        [0, 100, 0],
        "Promoted",
    ),
    "single failure limit rolls back at once": Case(
        replace(CANARY, thresholds=replace(STRICT, failure_limit=1)),
        [ERRORS],
        ["start", "rollback"],
        [10, 0],
        "RolledBack",
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_rollout(case: Case) -> None:
    clock = FakeClock()
    state = RolloutState()
    actions, weights = [], []
    decision = decide(case.plan, state, case.canary, clock.now)
    actions.append(decision.action)
    weights.append(decision.state.weight)
    state = decision.state
    for observed in case.observations:
        decision = decide(case.plan, state, case.canary, clock.tick(case.plan.interval), observed)
        actions.append(decision.action)
        weights.append(decision.state.weight)
        state = decision.state
    assert actions == case.actions
    assert weights == case.weights
    assert state.phase == case.phase


def test_waits_for_the_interval_and_says_how_long() -> None:
    clock = FakeClock()
    state = decide(CANARY, RolloutState(), "sha256:new", clock.now).state
    early = decide(CANARY, state, "sha256:new", clock.tick(10), HEALTHY)
    assert early.action == "wait"
    assert early.requeue == pytest.approx(20)
    assert early.state == state
    due = decide(CANARY, state, "sha256:new", clock.tick(20), HEALTHY)
    assert due.action == "advance"
    assert due.new_window
    assert due.state.since == clock.now


def test_rollback_message_carries_the_numbers() -> None:
    clock = FakeClock()
    plan = replace(CANARY, thresholds=replace(STRICT, failure_limit=1))
    state = decide(plan, RolloutState(), "sha256:new", clock.now).state
    decision = decide(plan, state, "sha256:new", clock.tick(30), ERRORS)
    assert decision.reason == "AnalysisFailed"
    assert "error rate 0.3000 > maxErrorRate 0.05" in decision.message
    assert "requests=100" in decision.message


def test_a_new_canary_digest_restarts_the_rollout() -> None:
    clock = FakeClock()
    over = RolloutState(phase="RolledBack", canary="sha256:old", weight=0, failures=2)
    assert decide(CANARY, over, "sha256:old", clock.now).action == "done"
    restarted = decide(CANARY, over, "sha256:new", clock.now)
    assert restarted.action == "start"
    assert restarted.state == RolloutState(
        phase="Progressing", canary="sha256:new", weight=10, since=clock.now
    )


def test_resume_after_pause_starts_a_fresh_window() -> None:
    clock = FakeClock()
    paused = RolloutState(phase="Paused", canary="c", step=1, weight=50, since=clock.now)
    decision = decide(CANARY, paused, "c", clock.tick(500), HEALTHY)
    assert decision.action == "resume"
    assert decision.state.since == clock.now
    assert decision.state.weight == 50


def test_restart_resumes_from_the_status_state() -> None:
    """A state read back from the status carries on exactly where it stopped."""
    clock = FakeClock()
    midway = RolloutState(
        phase="Progressing", canary="c", step=0, weight=10, failures=1, since=clock.now
    )
    decision = decide(CANARY, midway, "c", clock.tick(30), ERRORS)
    assert decision.action == "rollback"


def test_edited_steps_are_followed() -> None:
    state = RolloutState(phase="Progressing", canary="c", step=2, weight=75, since=0)
    decision = decide(replace(CANARY, steps=(20, 40)), state, "c", 1.0)
    assert decision.action == "reweight"
    assert (decision.state.step, decision.state.weight) == (1, 40)


def test_canary_removed_goes_back_to_stable() -> None:
    state = RolloutState(phase="Progressing", canary="c", weight=10, since=0)
    decision = decide(CANARY, state, None, 1.0)
    assert decision.action == "stable"
    assert decision.transition
    assert decision.state == RolloutState(phase="Stable")


@pytest.mark.parametrize(
    ("metrics", "verdict"),
    [
        (VariantMetrics(requests=20, error_rate=0.05), "Passed"),
        (VariantMetrics(requests=20, error_rate=0.0501), "Failed"),
        (VariantMetrics(requests=19, error_rate=1.0), "Inconclusive"),
        (VariantMetrics(requests=50, error_rate=None, latency_p99_ms=None), "Passed"),
        (VariantMetrics(requests=50, error_rate=0, latency_p99_ms=250.0), "Passed"),
        (VariantMetrics(requests=50, error_rate=0, latency_p99_ms=250.1), "Failed"),
        (VariantMetrics(requests=50, error_rate=0, accuracy=0.8), "Passed"),
        (VariantMetrics(requests=50, error_rate=0, accuracy=0.79), "Failed"),
    ],
)
def test_evaluate_thresholds(metrics: VariantMetrics, verdict: str) -> None:
    assert evaluate(STRICT, metrics)[0] == verdict


RELATIVE = Thresholds(
    max_error_rate=1.0,
    max_error_rate_increase=0.01,
    max_latency_p99_increase_ms=50,
    max_accuracy_drop=0.02,
    min_requests=20,
)
STABLE = VariantMetrics(requests=400, error_rate=0.01, latency_p99_ms=100.0, accuracy=0.97)


@pytest.mark.parametrize(
    ("canary", "verdict", "why"),
    [
        (
            VariantMetrics(requests=100, error_rate=0.02, latency_p99_ms=150.0, accuracy=0.95),
            "Passed",
            "within",
        ),
        (
            VariantMetrics(requests=100, error_rate=0.03),
            "Failed",
            "error rate 0.0300 > stable's 0.0100 + maxErrorRateIncrease 0.01",
        ),
        (
            VariantMetrics(requests=100, error_rate=0.0, latency_p99_ms=151.0),
            "Failed",
            "p99 latency 151.0ms > stable's 100.0ms + maxLatencyP99IncreaseMs 50",
        ),
        (
            VariantMetrics(requests=100, error_rate=0.0, accuracy=0.94),
            "Failed",
            "online accuracy 0.9400 < stable's 0.9700 - maxAccuracyDrop 0.02",
        ),
    ],
)
def test_a_canary_worse_than_stable_by_more_than_the_margin_fails(
    canary: VariantMetrics, verdict: str, why: str
) -> None:
    got, message = evaluate(RELATIVE, canary, STABLE)
    assert got == verdict
    assert why in message


def test_relative_thresholds_need_the_stable_numbers() -> None:
    worse = VariantMetrics(requests=100, error_rate=0.5, accuracy=0.1)
    assert evaluate(RELATIVE, worse, None)[0] == "Passed"  # nothing to compare with
    assert evaluate(RELATIVE, worse, VariantMetrics(requests=100))[0] == "Passed"


def test_a_canary_that_lost_a_server_mid_interval_may_fail_but_never_pass() -> None:
    healthy = VariantMetrics(requests=100, error_rate=0.0, lost=("iris-canary-7d9-x2",))
    verdict, message = evaluate(STRICT, healthy)
    assert verdict == "Inconclusive"
    assert "canary server(s) iris-canary-7d9-x2 left or restarted during the interval" in message
    failing = replace(healthy, error_rate=0.5)
    assert evaluate(STRICT, failing)[0] == "Failed"
    thinned_stable = replace(STABLE, lost=("iris-stable-1",))
    assert evaluate(RELATIVE, replace(healthy, lost=()), thinned_stable)[0] == "Passed"


def test_decide_compares_the_canary_with_the_stable_variant() -> None:
    plan = Plan(steps=(10, 50), interval=30, thresholds=replace(RELATIVE, failure_limit=1))
    started = decide(plan, RolloutState(), "sha256:c", 0.0).state
    worse = VariantMetrics(requests=100, error_rate=0.05)
    decision = decide(plan, started, "sha256:c", 31.0, worse, baseline=STABLE)
    assert decision.action == "rollback"
    assert "maxErrorRateIncrease" in decision.message


def test_plan_from_spec() -> None:
    spec = ModelDeploymentSpec.model_validate(
        {
            "stable": {"model": {"trainingJob": "a"}},
            "canary": {"model": {"trainingJob": "b"}},
            "traffic": {"steps": [20, 50], "interval": "15s"},
            "analysis": {"maxErrorRate": 0.01, "maxLatencyP99Ms": 250, "failureLimit": 3},
        }
    )
    plan = Plan.from_spec(spec)
    assert plan.steps == (20, 50)
    assert plan.interval == 15
    assert plan.thresholds == Thresholds(0.01, 250, None, 20, 3)
    assert Plan.from_spec(
        spec.model_copy(update={"traffic": spec.traffic.model_copy(update={"steps": None})})
    ).steps == (10, 25, 50)


@pytest.mark.parametrize(
    ("text", "value"), [("500ms", 0.5), ("30s", 30), ("2m", 120), ("1h", 3600)]
)
def test_seconds(text: str, value: float) -> None:
    assert seconds(text) == value


def test_blue_green_waits_for_the_preview_servers_and_aborts_instantly() -> None:
    plan = replace(CANARY, strategy="blueGreen", scale_down_delay=60)
    started = decide(plan, RolloutState(), "sha256:new", 1_000).state
    held = decide(plan, started, "sha256:new", 1_031, HEALTHY, ready=False)
    assert (held.action, held.reason, held.state.weight) == ("hold", "PreviewNotReady", 0)
    assert held.state.since == started.since  # checked again at the next tick
    switched = decide(plan, held.state, "sha256:new", 1_032, HEALTHY)
    assert (switched.action, switched.reason, switched.state.weight) == ("advance", "Switched", 100)
    assert switched.requeue == 60
    waiting = decide(plan, switched.state, "sha256:new", 1_062)
    assert waiting.action == "wait"  # the scale-down delay, not the interval
    from mlops_operator.canary.commands import parse

    aborted = decide(plan, switched.state, "sha256:new", 1_040, command=parse("abort/1"))
    assert (aborted.action, aborted.state.weight, aborted.reason) == ("rollback", 0, "Aborted")
    by_hand = decide(plan, started, "sha256:new", 1_001, command=parse("promote/1"))
    assert (by_hand.reason, by_hand.state.weight) == ("Switched", 100)


def test_webhook_gates_hold_and_open() -> None:
    """confirm-rollout holds at 0% until it answers 2xx; pre-rollout then runs; a failing
    rollout hook is a failed analysis; confirm-promotion holds the last step's weight."""
    from mlops_operator.canary.hooks import Outcome
    from mlops_operator.canary.machine import hooks_due

    yes, no = Outcome(True, "ok"), Outcome(False, "gate: HTTP 403")
    plan = replace(
        CANARY,
        hooks=frozenset({"confirm-rollout", "pre-rollout", "rollout", "confirm-promotion"}),
    )
    new = "sha256:new"
    started = decide(plan, RolloutState(), new, 1_000)
    assert (started.state.gate, started.state.weight) == ("confirm-rollout", 0)
    assert hooks_due(plan, started.state, new, 1_001) == ("confirm-rollout",)
    held = decide(plan, started.state, new, 1_001, hooks={"confirm-rollout": no})
    assert (held.action, held.reason, held.state.weight) == ("hold", "WaitingForConfirmRollout", 0)
    assert "HTTP 403" in held.message
    later = decide(plan, held.state, new, 1_002, hooks={"confirm-rollout": yes})
    assert (later.state.gate, later.reason) == ("pre-rollout", "WaitingForPreRollout")
    assert hooks_due(plan, later.state, new, 1_003) == ("pre-rollout",)
    opened = decide(plan, later.state, new, 1_003, hooks={"pre-rollout": yes})
    assert (opened.action, opened.state.weight, opened.state.gate) == ("advance", 10, None)
    assert hooks_due(plan, opened.state, new, 1_034) == ("rollout",)
    failed = decide(plan, opened.state, new, 1_034, HEALTHY, hooks={"rollout": no})
    assert (failed.verdict, failed.state.failures) == ("Failed", 1)
    assert "rollout webhook failed: gate: HTTP 403" in failed.message
    step = decide(plan, failed.state, new, 1_065, HEALTHY, hooks={"rollout": yes})
    assert step.state.weight == 50
    waiting = decide(plan, step.state, new, 1_096, HEALTHY, hooks={"rollout": yes})
    assert (waiting.reason, waiting.state.gate, waiting.state.weight) == (
        "WaitingForConfirmPromotion",
        "confirm-promotion",
        50,
    )
    assert hooks_due(plan, waiting.state, new, 1_097) == ("confirm-promotion",)  # every tick
    still = decide(plan, waiting.state, new, 1_097, hooks={"confirm-promotion": no})
    assert (still.action, still.state.weight) == ("hold", 50)
    done = decide(plan, still.state, new, 1_098, hooks={"confirm-promotion": yes})
    assert (done.action, done.state.phase) == ("promote", "Promoted")


def test_a_failing_pre_rollout_hook_counts_as_a_failed_analysis_and_rolls_back() -> None:
    from mlops_operator.canary.hooks import Outcome

    plan = replace(CANARY, hooks=frozenset({"pre-rollout"}))
    state = decide(plan, RolloutState(), "sha256:new", 1_000).state
    for now in (1_001, 1_032):
        decision = decide(
            plan, state, "sha256:new", now, hooks={"pre-rollout": Outcome(False, "x")}
        )
        state = decision.state
    assert (decision.action, decision.reason) == ("rollback", "PreRolloutFailed")


def test_a_rollback_hook_answering_2xx_rolls_back() -> None:
    from mlops_operator.canary.hooks import Outcome

    plan = replace(CANARY, hooks=frozenset({"rollback"}))
    state = decide(plan, RolloutState(), "sha256:new", 1_000).state
    decision = decide(
        plan, state, "sha256:new", 1_031, HEALTHY, hooks={"rollback": Outcome(True, "stop")}
    )
    assert (decision.action, decision.reason, decision.state.weight) == (
        "rollback",
        "RollbackWebhook",
        0,
    )


def test_a_model_stable_within_the_rollback_window_is_promoted_at_once() -> None:
    from mlops_operator.canary.machine import recently_stable

    plan = replace(CANARY, rollback_window=2)
    # v1 -> v2 -> v3 -> v4: the last two promotions had v2, v3 and v4 stable
    history = (("sha256:v2", "sha256:v1"), ("sha256:v3", "sha256:v2"), ("sha256:v4", "sha256:v3"))
    state = RolloutState(phase="Promoted", canary="sha256:v4", promotions=history)
    assert recently_stable(plan, state) == {"sha256:v2", "sha256:v3", "sha256:v4"}
    back = decide(plan, state, "sha256:v3", 1_000)
    assert (back.action, back.reason, back.state.phase) == ("promote", "RollbackWindow", "Promoted")
    assert back.state.weight == 0
    too_old = decide(plan, state, "sha256:v1", 1_000)
    assert (too_old.action, too_old.state.weight) == ("start", 10)
    assert decide(CANARY, state, "sha256:v3", 1_000).action == "start"  # no window: steps
