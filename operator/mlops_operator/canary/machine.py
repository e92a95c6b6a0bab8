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
from dataclasses import dataclass, replace
from typing import Literal

from mlops_operator.api.modeldeployment import ModelDeploymentSpec
from mlops_operator.canary.checks import ABSOLUTE, CHECKS
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
    """The relative thresholds: margins around the stable variant's values."""


@dataclass(frozen=True)
class Plan:
    """What the spec asks for, reduced to what the state machine needs."""

    strategy: Literal["canary", "abTest", "shadow"] = "canary"
    steps: tuple[int, ...] = DEFAULT_STEPS
    canary_weight: int | None = None
    interval: float = 60.0
    pause: bool = False
    thresholds: Thresholds = Thresholds()
    ab_percent: int = 50
    ab_promote: bool = False

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
        )

    def initial_weight(self) -> int:
        if self.strategy == "abTest":
            return self.ab_percent
        if self.strategy == "shadow":
            return 0
        if self.canary_weight is not None:
            return self.canary_weight
        return self.steps[0]


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
    problems = []
    for check in CHECKS:
        value, threshold = getattr(canary, check.metric), getattr(thresholds, check.threshold)
        if value is None or threshold is None:
            continue
        baseline = getattr(stable, check.metric) if stable is not None else None
        limit = check.limit(threshold, baseline)
        if limit is not None and check.missed(value, limit):
            problems.append(check.problem(value, threshold, baseline))
    if problems:
        return "Failed", "; ".join(problems) + f" ({_describe(canary)})"
    return "Passed", f"within thresholds ({_describe(canary)})"


def decide(
    plan: Plan,
    state: RolloutState,
    canary: str | None,
    now: float,
    observed: VariantMetrics | None = None,
    *,
    baseline: VariantMetrics | None = None,
) -> Decision:
    """The next move of the rollout.

    ``canary`` identifies the canary model wanted (its digest), None without a canary or while
    it cannot be resolved. ``observed`` is the canary's metrics since ``state.since`` and
    ``baseline`` the stable variant's over the same interval; they are read only when an
    analysis is due (the caller may pass None when it is not).
    """
    decision = _lifecycle(plan, state, canary, now)
    if decision is not None:
        return decision
    return _analyse(plan, state, now, observed, baseline)


def _lifecycle(plan: Plan, state: RolloutState, canary: str | None, now: float) -> Decision | None:  # noqa: PLR0911 (one return per state)
    """Everything but an analysis: no canary, a new one, over, paused, reweighted, waiting."""
    if canary is None:
        stable = RolloutState(phase="Stable")
        if state.phase == "Stable" or (state.phase is None and state.canary is None):
            return Decision("done", stable, "Stable", "serving the stable model")
        return Decision("stable", stable, "Stable", "no canary: the stable model gets all traffic")
    if state.canary != canary or state.phase in (None, "Stable"):
        weight = plan.initial_weight()
        phase: Phase = "Paused" if plan.pause else "Progressing"
        started = RolloutState(phase=phase, canary=canary, weight=weight, since=now)
        what = {
            "abTest": f"A/B test started: canary gets {weight}% of keys",
            "shadow": "shadow started: canary gets a mirrored copy of the traffic",
        }.get(plan.strategy, f"canary started at {weight}%")
        return Decision(
            "start", started, "RolloutStarted", what, new_window=True, requeue=plan.interval
        )
    if state.phase in ("Promoted", "RolledBack"):
        return Decision("done", state, state.phase, f"rollout of {canary} is over: {state.phase}")
    if plan.strategy == "abTest" and plan.ab_promote:
        return _promote(state, "abTest.promote is set")
    if plan.pause:
        paused = replace(state, phase="Paused", since=now)
        action: Action = "wait" if state.phase == "Paused" else "pause"
        return Decision(
            action,
            paused,
            "Paused",
            f"rollout paused at {state.weight}% (traffic.pause)",
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
    if remaining > 0:
        return Decision("wait", state, "Waiting", "analysis interval not over", requeue=remaining)
    return None


def _analyse(
    plan: Plan,
    state: RolloutState,
    now: float,
    observed: VariantMetrics | None,
    baseline: VariantMetrics | None,
) -> Decision:
    verdict, why = evaluate(plan.thresholds, observed, baseline)
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
        failures = state.failures + 1
        limit = plan.thresholds.failure_limit
        if plan.strategy != "abTest" and failures >= limit:
            back = replace(window, phase="RolledBack", weight=0, failures=failures)
            return Decision(
                "rollback",
                back,
                "AnalysisFailed",
                f"rolled back after {failures} failed analyses: {why}",
                verdict=verdict,
                new_window=True,
            )
        return Decision(
            "hold",
            replace(window, failures=failures),
            "AnalysisFailed",
            f"analysis failed ({failures}/{limit}): {why}",
            verdict=verdict,
            new_window=True,
            requeue=plan.interval,
        )
    passed = replace(window, failures=0)
    if plan.strategy == "canary" and plan.canary_weight is None:
        if state.step + 1 < len(plan.steps):
            weight = plan.steps[state.step + 1]
            return Decision(
                "advance",
                replace(passed, step=state.step + 1, weight=weight),
                "StepAdvanced",
                f"canary at {weight}%: previous step {why}",
                verdict=verdict,
                new_window=True,
                requeue=plan.interval,
            )
        return _promote(passed, f"last step passed: {why}", verdict)
    return Decision(
        "hold",
        passed,
        "AnalysisPassed",
        why,
        verdict=verdict,
        new_window=True,
        requeue=plan.interval,
    )


def _fixed_weight(plan: Plan, state: RolloutState) -> tuple[int, int]:
    """The step and weight the spec wants now (steps edited mid-rollout are followed)."""
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
    return max(0.0, state.since + plan.interval - now)


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
