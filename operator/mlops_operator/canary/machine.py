"""The rollout state machine: (plan, state, canary identity, observations, clock) -> decision.

Pure: the caller reads the status into a :class:`RolloutState`, measures the variants over the
interval, calls :func:`decide`, then acts on the :class:`Decision` (weights, children, status,
Events). Everything a rollout needs to carry on after a restart is in the state.

Canary strategy with steps: each interval the canary's metrics are judged against the
thresholds. Passed: the next step, or a promotion after the last one. Failed: one more failure;
``failureLimit`` failures in a row roll back. Fewer than ``minRequests`` requests: the step is
held (Inconclusive) and the failures stay as they are. A fixed ``canaryWeight`` is a manual
split: judged and rolled back on failures, never promoted by itself. abTest: a fixed sticky
split, judged and reported, promoted only when ``abTest.promote`` says so. shadow: the canary
gets a mirrored copy of the traffic; judged, rolled back (mirroring stops) on failures, never
promoted by itself.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Literal

from mlops_operator.api.modeldeployment import ModelDeploymentSpec
from mlops_operator.canary.checks import ABSOLUTE, CHECKS
from mlops_operator.canary.commands import Command
from mlops_operator.canary.hooks import (
    CONFIRM,
    GATE_REASONS,
    Gate,
    Outcome,
    Outcomes,
    first_gate,
    next_gate,
)
from mlops_operator.canary.hooks import Kind as HookKind
from mlops_operator.canary.metrics import VariantMetrics

DEFAULT_STEPS = (10, 25, 50)
"""The steps of a canary rollout whose spec gives neither steps nor canaryWeight."""

Phase = Literal["Progressing", "Paused", "Promoted", "RolledBack", "Stable"]
Verdict = Literal["Passed", "Failed", "Inconclusive"]
Action = Literal[
    "stable",
    "start",
    "wait",
    "pause",
    "resume",
    "hold",
    "advance",
    "promote",
    "rollback",
    "reweight",
    "done",
]
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def seconds(duration: str) -> float:
    """A duration such as 500ms, 30s, 2m, 1h in seconds."""
    match = re.fullmatch(r"([0-9]+)(ms|s|m|h)", duration)
    if match is None:
        raise ValueError(f"duration {duration!r} is not a number followed by ms, s, m or h")
    return int(match.group(1)) * _UNITS[match.group(2)]


@dataclass(frozen=True)
class Thresholds:
    max_error_rate: float = 0.05
    max_latency_p99_ms: float | None = None
    min_accuracy: float | None = None
    min_requests: int = 20
    failure_limit: int = 2
    max_error_rate_increase: float | None = None
    max_latency_p99_increase_ms: float | None = None
    max_accuracy_drop: float | None = None
    max_latency_p99_ratio: float | None = None
    """The relative thresholds: margins around (or a factor of) the stable variant's values."""
    min_agreement: float | None = None
    """shadow: the agreement of the shadow's predictions with the stable model's."""


@dataclass(frozen=True)
class Plan:
    """What the spec asks for, reduced to what the state machine needs."""

    strategy: Literal["canary", "blueGreen", "abTest", "shadow"] = "canary"
    steps: tuple[int, ...] = DEFAULT_STEPS
    canary_weight: int | None = None
    interval: float = 60.0
    pause: bool = False
    thresholds: Thresholds = Thresholds()
    ab_percent: int = 50
    ab_promote: bool = False
    preview_analysis: bool = True
    auto_promote: bool = True
    scale_down_delay: float = 30.0
    hooks: frozenset[HookKind] = frozenset()
    """The webhook kinds the spec names."""
    rollback_window: int = 0
    """Promotions within which a model that was stable is promoted again at once."""

    @classmethod
    def from_spec(cls, spec: ModelDeploymentSpec) -> Plan:
        analysis = spec.analysis
        traffic = spec.traffic
        return cls(
            strategy=spec.strategy,
            steps=tuple(traffic.steps) if traffic.steps else DEFAULT_STEPS,
            canary_weight=traffic.canary_weight,
            interval=seconds(traffic.interval),
            pause=traffic.pause,
            thresholds=Thresholds(
                **{check.threshold: getattr(analysis, check.threshold) for check in CHECKS},
                min_requests=analysis.min_requests,
                failure_limit=analysis.failure_limit,
            ),
            ab_percent=spec.ab_test.canary_percent if spec.ab_test else 50,
            ab_promote=spec.ab_test.promote if spec.ab_test else False,
            hooks=frozenset(hook.type for hook in spec.webhooks or ()),
            rollback_window=spec.rollback_window.promotions if spec.rollback_window else 0,
            **_blue_green(spec),
        )

    def initial_weight(self) -> int:
        if self.strategy == "abTest":
            return self.ab_percent
        if self.strategy in ("shadow", "blueGreen"):
            return 0
        if self.canary_weight is not None:
            return self.canary_weight
        return self.steps[0]


def _blue_green(spec: ModelDeploymentSpec) -> dict[str, Any]:
    settings = spec.blue_green
    if settings is None:
        return {}
    return {
        "preview_analysis": settings.pre_promotion_analysis,
        "auto_promote": settings.auto_promote,
        "scale_down_delay": seconds(settings.scale_down_delay),
    }


@dataclass(frozen=True)
class RolloutState:
    """The rollout as the status records it."""

    phase: Phase | None = None
    canary: str | None = None
    """The identity (digest) of the canary model this rollout is about."""
    step: int = 0
    """Index in the steps of the current step."""
    weight: int = 0
    """Percent of live traffic the canary gets."""
    failures: int = 0
    """Failed analyses in a row."""
    since: float | None = None
    """When the current analysis interval started (epoch seconds)."""
    held: bool = False
    """Paused by a command (`mlops pause`) until `mlops resume`."""
    gate: Gate | None = None
    """The webhook gate the rollout waits at."""
    promotions: tuple[tuple[str, str | None], ...] = ()
    """The past promotions, oldest first: (the promoted digest, the digest it replaced)."""


@dataclass(frozen=True)
class Decision:
    action: Action
    state: RolloutState
    reason: str
    """A CamelCase reason for conditions and Events, e.g. StepAdvanced, AnalysisFailed."""
    message: str
    verdict: Verdict | None = None
    new_window: bool = False
    """An interval starts now: the caller records a new counter snapshot and the time."""
    requeue: float | None = None
    """Seconds until the next decision is due (None: nothing to wait for)."""
    ignored: str | None = None
    """Why the command given was not acted on (the decision is the one without it)."""

    @property
    def transition(self) -> bool:
        """Worth an Event: the phase, the step or the weight changed."""
        return self.action in (
            "start",
            "pause",
            "resume",
            "advance",
            "promote",
            "rollback",
            "reweight",
            "stable",
        )


def _describe(metrics: VariantMetrics | None) -> str:
    if metrics is None:
        return "no metrics"
    parts = [f"requests={metrics.requests:g}"]
    for check in ABSOLUTE:
        value = getattr(metrics, check.metric)
        if value is not None:
            parts.append(f"{check.short}={check.show(value)}")
    return " ".join(parts)


def evaluate(
    thresholds: Thresholds, canary: VariantMetrics | None, stable: VariantMetrics | None = None
) -> tuple[Verdict, str]:
    """The verdict on a canary's interval, and why, with the measured numbers; ``stable`` is
    the stable variant's interval, for the relative thresholds."""
    if canary is None:
        return "Inconclusive", "no metrics could be read for the canary"
    if canary.requests < thresholds.min_requests:
        return "Inconclusive", (
            f"{canary.requests:g} requests, fewer than minRequests={thresholds.min_requests}"
        )
    problems, unmeasured = [], []
    for check in CHECKS:
        value, threshold = getattr(canary, check.metric), getattr(thresholds, check.threshold)
        if value is None and threshold is not None and check.needed:
            unmeasured.append(check)
        if value is None or threshold is None:
            continue
        baseline = getattr(stable, check.metric) if stable is not None else None
        limit = check.limit(threshold, baseline)
        if limit is not None and check.missed(value, limit):
            problems.append(check.problem(value, threshold, baseline))
    if problems:
        return "Failed", "; ".join(problems) + f" ({_describe(canary)})"
    if unmeasured:
        names = ", ".join(f"{check.label} ({check.spec})" for check in unmeasured)
        return "Inconclusive", f"no {names} measured in the interval ({_describe(canary)})"
    if canary.lost:
        # A stable server's loss only thins its sample; a canary's may hide its failures.
        return "Inconclusive", (
            f"canary server(s) {', '.join(canary.lost)} left or restarted during the interval: "
            f"their counts since its start are unknown, so it cannot pass ({_describe(canary)})"
        )
    return "Passed", f"within thresholds ({_describe(canary)})"


def decide(
    plan: Plan,
    state: RolloutState,
    canary: str | None,
    now: float,
    observed: VariantMetrics | None = None,
    *,
    baseline: VariantMetrics | None = None,
    command: Command | None = None,
    ready: bool = True,
    hooks: Outcomes | None = None,
) -> Decision:
    """The next move of the rollout.

    ``canary`` identifies the canary model wanted (its digest), None without a canary or while
    it cannot be resolved. ``observed`` is the canary's metrics since ``state.since`` and
    ``baseline`` the stable variant's over the same interval; they are read only when an
    analysis is due (the caller may pass None when it is not). ``command`` is a manual one
    not handled yet: it acts first, or the decision says why it was ignored. ``ready``: every
    server of the canary is ready (blue-green switches only then). ``hooks``: the outcome
    of each webhook kind :func:`hooks_due` named.
    """
    ignored = None
    if command is not None:
        acted = _command(plan, state, canary, now, command)
        if isinstance(acted, Decision):
            return acted
        ignored = f"{command.verb} ignored: {acted}"
    hooks = hooks or {}
    decision = _lifecycle(plan, state, canary, now)
    if decision is None:
        decision = _hooked(plan, state, now, hooks)
    if decision is None and plan.strategy == "blueGreen":
        decision = _blue_green_due(plan, state, now, ready)
    if decision is None:
        decision = _analyse(plan, state, now, observed, baseline, rollout=hooks.get("rollout"))
    return replace(decision, ignored=ignored) if ignored else decision


def _command(
    plan: Plan, state: RolloutState, canary: str | None, now: float, command: Command
) -> Decision | str:
    """The decision a manual command makes, or why it makes none."""
    if canary is None or state.canary != canary or state.phase in (None, "Stable"):
        return "no rollout is under way"
    if state.phase == "Promoted":
        return f"the rollout of {canary} is over: Promoted"
    retry = command.verb == "retry"
    if state.phase == "RolledBack" and not retry:
        return f"the rollout of {canary} is over: RolledBack (retry starts it again)"
    if state.phase != "RolledBack" and retry:
        return "the rollout is still under way"
    return _BY_HAND[command.verb](plan, state, now)


def _retry(plan: Plan, state: RolloutState, now: float) -> Decision:
    assert state.canary is not None
    started = _start(plan, state.canary, now)
    return replace(started, reason="RolloutRetried", message="rollout retried by hand")


def _abort(plan: Plan, state: RolloutState, now: float) -> Decision:
    back = replace(state, phase="RolledBack", weight=0, held=False, since=now)
    return Decision("rollback", back, "Aborted", f"rollout aborted by hand at {state.weight}%")


def _promote_by_hand(plan: Plan, state: RolloutState, now: float) -> Decision:
    """The next step now; blue-green: switch now; after the last step (or without steps):
    promote."""
    if state.gate is not None:
        return _at_gate(plan, state, now, Outcome(True, "promoted by hand"))
    if plan.strategy == "blueGreen" and state.step == 0:
        return _switch(plan, state, now, "promoted by hand")
    if not _has_next_step(plan, state):
        return _promote(replace(state, held=False), "by hand (promote)")
    step = state.step + 1
    moved = replace(state, step=step, weight=plan.steps[step], held=False, since=now, failures=0)
    if not plan.pause:
        moved = replace(moved, phase="Progressing")
    return Decision(
        "advance",
        moved,
        "StepAdvanced",
        f"canary at {moved.weight}%: promoted by hand",
        new_window=True,
        requeue=plan.interval,
    )


def _pause_by_hand(plan: Plan, state: RolloutState, now: float) -> Decision | str:
    if state.held:
        return "already paused"
    paused = replace(state, phase="Paused", held=True, since=now)
    return Decision(
        "pause",
        paused,
        "Paused",
        f"rollout paused at {state.weight}% (by hand)",
        new_window=True,
        requeue=plan.interval,
    )


def _resume_by_hand(plan: Plan, state: RolloutState, now: float) -> Decision | str:
    if not state.held:
        return "not paused by hand" + (" (spec.traffic.pause is set)" if plan.pause else "")
    resumed = replace(state, held=False, since=now, phase="Paused" if plan.pause else "Progressing")
    why = " (still paused: spec.traffic.pause is set)" if plan.pause else ""
    return Decision(
        "resume",
        resumed,
        "Resumed",
        f"rollout resumed at {state.weight}%{why}",
        new_window=True,
        requeue=plan.interval,
    )


_BY_HAND: dict[str, Callable[[Plan, RolloutState, float], Decision | str]] = {
    "promote": _promote_by_hand,
    "promote-full": lambda _plan, state, _now: _promote(
        replace(state, held=False), "by hand (promote-full)"
    ),
    "abort": _abort,
    "retry": _retry,
    "pause": _pause_by_hand,
    "resume": _resume_by_hand,
}
"""What each manual command does to a rollout under way (RolledBack for retry)."""


def _has_next_step(plan: Plan, state: RolloutState) -> bool:
    return (
        plan.strategy == "canary"
        and plan.canary_weight is None
        and state.step + 1 < len(plan.steps)
    )


def recently_stable(plan: Plan, state: RolloutState) -> frozenset[str]:
    """The digests the stable variant served within the last ``rollbackWindow`` promotions."""
    if plan.rollback_window <= 0:
        return frozenset()
    window = state.promotions[-plan.rollback_window :]
    return frozenset(d for pair in window for d in pair if d is not None)


def _start(plan: Plan, canary: str, now: float, state: RolloutState | None = None) -> Decision:
    if state is not None and canary in recently_stable(plan, state):
        back = RolloutState(phase="Promoted", canary=canary, since=now, promotions=state.promotions)
        return Decision(
            "promote",
            back,
            "RollbackWindow",
            f"rollbackWindow: the canary's model was stable within the last "
            f"{plan.rollback_window} promotion(s): promoted at once, no steps or analysis",
        )
    gate = first_gate(plan.hooks)
    weight = 0 if gate else plan.initial_weight()
    phase: Phase = "Paused" if plan.pause else "Progressing"
    since = now - plan.interval if gate else now  # a gate is called at once
    started = RolloutState(phase=phase, canary=canary, weight=weight, since=since, gate=gate)
    what = {
        "abTest": f"A/B test started: canary gets {weight}% of keys",
        "shadow": "shadow started: canary gets a mirrored copy of the traffic",
        "blueGreen": "blue-green started: the candidate runs at full size behind the preview",
    }.get(plan.strategy, f"canary started at {weight}%")
    if gate:
        what = f"rollout started: waiting at the {gate} gate, no traffic to the canary yet"
    return Decision(
        "start", started, "RolloutStarted", what, new_window=True, requeue=plan.interval
    )


def _lifecycle(plan: Plan, state: RolloutState, canary: str | None, now: float) -> Decision | None:  # noqa: PLR0911 (one return per state)
    """Everything but an analysis: no canary, a new one, over, paused, reweighted, waiting."""
    if canary is None:
        stable = RolloutState(phase="Stable")
        if state.phase == "Stable" or (state.phase is None and state.canary is None):
            return Decision("done", stable, "Stable", "serving the stable model")
        return Decision("stable", stable, "Stable", "no canary: the stable model gets all traffic")
    if state.canary != canary or state.phase in (None, "Stable"):
        return _start(plan, canary, now, state)
    if state.phase in ("Promoted", "RolledBack"):
        return Decision("done", state, state.phase, f"rollout of {canary} is over: {state.phase}")
    if plan.strategy == "abTest" and plan.ab_promote:
        return _promote(state, "abTest.promote is set")
    if plan.pause or state.held:
        paused = replace(state, phase="Paused", since=now)
        action: Action = "wait" if state.phase == "Paused" else "pause"
        return Decision(
            action,
            paused,
            "Paused",
            f"rollout paused at {state.weight}% ({'by hand' if state.held else 'traffic.pause'})",
            new_window=True,
            requeue=plan.interval,
        )
    if state.phase == "Paused":
        resumed = replace(state, phase="Progressing", since=now)
        return Decision(
            "resume",
            resumed,
            "Resumed",
            f"rollout resumed at {state.weight}%",
            new_window=True,
            requeue=plan.interval,
        )
    step, wanted = _fixed_weight(plan, state)
    if wanted != state.weight or step != state.step:
        moved = replace(state, weight=wanted, step=step)
        return Decision(
            "reweight",
            moved,
            "WeightChanged",
            f"canary weight set to {wanted}%",
            requeue=_remaining(plan, state, now),
        )
    remaining = _remaining(plan, state, now)
    if remaining > 0 and state.gate not in CONFIRM:
        return Decision("wait", state, "Waiting", "analysis interval not over", requeue=remaining)
    return None


def _hooked(plan: Plan, state: RolloutState, now: float, hooks: Outcomes) -> Decision | None:
    """A rollback hook that answered 2xx rolls back; a gate decides while the rollout waits."""
    rollback = hooks.get("rollback")
    if rollback is not None and rollback.ok:
        back = replace(state, phase="RolledBack", weight=0, gate=None, since=now)
        return Decision(
            "rollback", back, "RollbackWebhook", f"rolled back by webhook: {rollback.message}"
        )
    if state.gate is not None:
        return _at_gate(plan, state, now, hooks.get(state.gate))
    return None


def _at_gate(plan: Plan, state: RolloutState, now: float, outcome: Outcome | None) -> Decision:
    gate = state.gate
    assert gate is not None
    if outcome is not None and outcome.ok:
        return _gate_opened(plan, state, now, gate, outcome.message)
    said = outcome.message if outcome is not None else "not called yet"
    if gate == "pre-rollout" and outcome is not None:
        return _failed(
            plan,
            replace(state, since=now),
            f"pre-rollout webhook failed: {said}",
            "PreRolloutFailed",
        )
    return Decision(
        "hold",
        state,
        GATE_REASONS[gate],
        f"waiting at the {gate} gate at {state.weight}%: {said}",
        requeue=plan.interval,
    )


def _gate_opened(plan: Plan, state: RolloutState, now: float, gate: Gate, why: str) -> Decision:
    if gate == "confirm-promotion":
        passed = replace(state, gate=None)
        if plan.strategy == "blueGreen" and state.step == 0:
            return _switch(plan, passed, now, f"confirm-promotion: {why}")
        return _promote(passed, f"confirm-promotion: {why}")
    following = next_gate(plan.hooks, gate)
    if following is not None:
        moved = replace(state, gate=following, since=now - plan.interval)
        return Decision(
            "hold", moved, GATE_REASONS[following], f"{gate} passed ({why}); calling {following}"
        )
    weight = plan.initial_weight()
    opened = replace(state, gate=None, weight=weight, step=0, since=now, failures=0)
    return Decision(
        "advance",
        opened,
        "GateOpened",
        f"{gate} passed ({why}): canary at {weight}%",
        new_window=True,
        requeue=plan.interval,
    )


def _analyse(
    plan: Plan,
    state: RolloutState,
    now: float,
    observed: VariantMetrics | None,
    baseline: VariantMetrics | None,
    *,
    rollout: Outcome | None = None,
) -> Decision:
    verdict, why = evaluate(plan.thresholds, observed, baseline)
    if rollout is not None and not rollout.ok:
        verdict, why = "Failed", f"rollout webhook failed: {rollout.message}"
    window = replace(state, since=now)
    if verdict == "Inconclusive":
        return Decision(
            "hold",
            window,
            "AnalysisInconclusive",
            f"step held: {why}",
            verdict=verdict,
            new_window=True,
            requeue=plan.interval,
        )
    if verdict == "Failed":
        return _failed(plan, window, why)
    return _passed(plan, replace(window, failures=0), now, why)


def _failed(plan: Plan, window: RolloutState, why: str, reason: str = "AnalysisFailed") -> Decision:
    """One more failure; failureLimit of them in a row roll back (abTest never does)."""
    failures = window.failures + 1
    limit = plan.thresholds.failure_limit
    if plan.strategy != "abTest" and failures >= limit:
        back = replace(window, phase="RolledBack", weight=0, failures=failures, gate=None)
        return Decision(
            "rollback",
            back,
            reason,
            f"rolled back after {failures} failed analyses: {why}",
            verdict="Failed",
            new_window=True,
        )
    return Decision(
        "hold",
        replace(window, failures=failures),
        reason,
        f"analysis failed ({failures}/{limit}): {why}",
        verdict="Failed",
        new_window=True,
        requeue=plan.interval,
    )


def _passed(plan: Plan, passed: RolloutState, now: float, why: str) -> Decision:
    """A passed analysis: the next step, a promotion, a blue-green switch, or a hold."""
    if plan.strategy == "canary" and plan.canary_weight is None:
        if passed.step + 1 < len(plan.steps):
            weight = plan.steps[passed.step + 1]
            return Decision(
                "advance",
                replace(passed, step=passed.step + 1, weight=weight),
                "StepAdvanced",
                f"canary at {weight}%: previous step {why}",
                verdict="Passed",
                new_window=True,
                requeue=plan.interval,
            )
        if "confirm-promotion" in plan.hooks:
            return _await_confirmation(plan, passed, now, f"last step passed: {why}")
        return _promote(passed, f"last step passed: {why}", "Passed")
    if plan.strategy == "blueGreen":
        return _switch_or_await(plan, passed, now, f"preview {why}", "Passed")
    return Decision(
        "hold",
        passed,
        "AnalysisPassed",
        why,
        verdict="Passed",
        new_window=True,
        requeue=plan.interval,
    )


def _blue_green_due(plan: Plan, state: RolloutState, now: float, ready: bool) -> Decision | None:
    """Blue-green past its interval: promote after the scale-down delay; before the switch,
    wait for the preview's servers, and switch without analysis when none is asked for."""
    if state.step >= 1:
        return _promote(state, "scaleDownDelay over: the old variant's servers go")
    if not ready:
        return Decision(
            "hold",
            state,
            "PreviewNotReady",
            "waiting for the preview's model servers to be ready",
            requeue=plan.interval,
        )
    if not plan.preview_analysis:
        return _switch_or_await(plan, replace(state, since=now), now, "preview ready")
    return None


def _switch_or_await(
    plan: Plan, state: RolloutState, now: float, why: str, verdict: Verdict | None = None
) -> Decision:
    if plan.auto_promote and "confirm-promotion" in plan.hooks:
        return _await_confirmation(plan, state, now, why, verdict)
    if plan.auto_promote:
        return _switch(plan, state, now, why, verdict)
    return Decision(
        "hold",
        state,
        "AwaitingPromotion",
        f"{why}; waiting for `mlops promote` to switch (blueGreen.autoPromote is false)",
        verdict=verdict,
        new_window=True,
        requeue=plan.interval,
    )


def _await_confirmation(
    plan: Plan, state: RolloutState, now: float, why: str, verdict: Verdict | None = "Passed"
) -> Decision:
    """Would promote (blue-green: switch): first the confirm-promotion gate, polled each tick."""
    return Decision(
        "hold",
        replace(state, gate="confirm-promotion", since=now),
        GATE_REASONS["confirm-promotion"],
        f"{why}; waiting at the confirm-promotion gate at {state.weight}%",
        verdict=verdict,
        new_window=True,
    )


def _switch(
    plan: Plan, state: RolloutState, now: float, why: str, verdict: Verdict | None = None
) -> Decision:
    """Blue-green: all traffic to the candidate at once; the old servers stay for the delay."""
    switched = replace(state, phase="Progressing", step=1, weight=100, since=now, held=False)
    return Decision(
        "advance",
        switched,
        "Switched",
        f"all traffic switched to the candidate ({why}); the old variant stays "
        f"{plan.scale_down_delay:g}s for an instant abort",
        verdict=verdict,
        new_window=True,
        requeue=plan.scale_down_delay,
    )


def _fixed_weight(plan: Plan, state: RolloutState) -> tuple[int, int]:
    """The step and weight the spec wants now (steps edited mid-rollout are followed)."""
    if state.gate in ("confirm-rollout", "pre-rollout"):
        return state.step, 0
    if plan.strategy == "blueGreen":
        step = min(state.step, 1)
        return step, 100 if step else 0
    if plan.strategy == "abTest":
        return 0, plan.ab_percent
    if plan.strategy == "shadow":
        return 0, 0
    if plan.canary_weight is not None:
        return 0, plan.canary_weight
    step = min(state.step, len(plan.steps) - 1)
    return step, plan.steps[step]


def _remaining(plan: Plan, state: RolloutState, now: float) -> float:
    if state.since is None:
        return 0.0
    length = plan.scale_down_delay if plan.strategy == "blueGreen" and state.step else plan.interval
    return max(0.0, state.since + length - now)


def _promote(state: RolloutState, why: str, verdict: Verdict | None = None) -> Decision:
    promoted = replace(state, phase="Promoted", weight=0, failures=0)
    return Decision(
        "promote",
        promoted,
        "Promoted",
        f"canary promoted: the stable variant serves its model ({why})",
        verdict=verdict,
        new_window=False,
    )


def due(plan: Plan, state: RolloutState, canary: str | None, now: float) -> bool:
    """Whether :func:`decide` would analyse now (so the caller reads the metrics first)."""
    return canary is not None and _lifecycle(plan, state, canary, now) is None


def hooks_due(
    plan: Plan, state: RolloutState, canary: str | None, now: float
) -> tuple[HookKind, ...]:
    """The webhook kinds to call before :func:`decide` now: the gate the rollout waits at, or
    the rollout hooks of an analysis due; with either, the rollback hooks."""
    if not plan.hooks or not due(plan, state, canary, now):
        return ()
    kinds: tuple[HookKind, ...] = (state.gate,) if state.gate else ("rollout",)
    return tuple(kind for kind in (*kinds, "rollback") if kind in plan.hooks)
