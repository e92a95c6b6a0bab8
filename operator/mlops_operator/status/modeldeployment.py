"""A ModelDeployment's status, both ways. Pure.

- reading: the rollout state (phase, the canary's digest, the step, the failures in a row, the
  start of the interval) and the builtin source's counter snapshot, so a restarted operator
  carries on where it stopped;
- writing: :func:`compose` turns one reconciliation's decision and observations into the whole
  status; :func:`failed` and :func:`waiting` for a spec that cannot be served (yet). The
  operator and the local runner both write their status through these.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast, get_args

from mlops_operator.canary.machine import Decision, Phase, RolloutState
from mlops_operator.canary.metrics import Counters, VariantMetrics
from mlops_operator.canary.resolve import ServedModel, Waiting
from mlops_operator.objects import VariantName
from mlops_operator.status.conditions import condition, parse_time, rfc3339

ACTIVE = ("Progressing", "Paused")
"""Phases in which a canary gets traffic."""
CONDITION_TYPES = ("Ready", "Progressing", "Degraded", "Promoted", "RolledBack")
OUTCOMES = {"promote": "Promoted", "rollback": "RolledBack"}
"""The actions that end a rollout, and the condition each one sets True."""
Snapshot = Mapping[str, Mapping[str, Counters]]
"""Each variant's counters by server at the start of the interval (builtin source)."""
Conditions = Mapping[str, tuple[bool, str, str]]
"""Condition type -> (status, reason, message)."""


@dataclass(frozen=True)
class Servers:
    """A variant's model servers as observed: wanted and ready."""

    replicas: int = 0
    ready: int = 0


@dataclass(frozen=True)
class Observation:
    """What one reconciliation decided and saw."""

    decision: Decision
    stable: ServedModel
    canary: ServedModel | None
    """The canary model wanted (None without one, or while it cannot be resolved)."""
    servers: Mapping[VariantName, Servers]
    url: str
    shadow: bool = False
    wanted_stable_replicas: int = 1
    promoted: Mapping[str, Any] | None = None
    measured: Mapping[str, VariantMetrics | None] | None = None
    snapshot: Snapshot | None = None
    canary_waiting: Waiting | None = None
    """Why the canary named in the spec cannot be served yet."""


def epoch(text: str | None) -> float | None:
    moment = parse_time(text)
    return None if moment is None else moment.timestamp()


def state_from_status(status: Mapping[str, Any] | None) -> RolloutState:
    status = status or {}
    analysis = status.get("analysis") or {}
    canary = status.get("canary") or {}
    phase = status.get("phase")
    return RolloutState(
        phase=cast(Phase, phase) if phase in get_args(Phase) else None,
        canary=canary.get("digest"),
        step=int(analysis.get("step") or 0),
        weight=int(status.get("canaryWeight") or 0),
        failures=int(analysis.get("failures") or 0),
        since=epoch(analysis.get("time")),
    )


def snapshot_from_status(status: Mapping[str, Any] | None) -> dict[str, dict[str, Counters]]:
    snapshot = ((status or {}).get("analysis") or {}).get("snapshot") or {}
    return {
        variant: {key: Counters.from_dict(value) for key, value in servers.items()}
        for variant, servers in snapshot.items()
    }


def snapshot_to_status(snapshot: Snapshot) -> dict[str, Any]:
    return {
        variant: {key: counters.to_dict() for key, counters in servers.items()}
        for variant, servers in snapshot.items()
    }


def served(model: ServedModel | None) -> dict[str, Any]:
    """A model as the status names it."""
    if model is None:
        return {}
    return {"model": model.name or model.uri, "uri": model.uri, "digest": model.digest}


def promoted_stable(
    status: Mapping[str, Any], wanted: ServedModel | Waiting
) -> ServedModel | Waiting:
    """spec.stable's model, unless a promoted canary replaced that very model (then the
    promoted one), or the model served before while the wanted one cannot be resolved."""
    promoted = status.get("promoted") or {}
    if isinstance(wanted, ServedModel):
        if promoted.get("digest") and promoted.get("replaces") == wanted.digest:
            return ServedModel(promoted["uri"], promoted["digest"], promoted.get("model"))
        return wanted
    serving = status.get("stable") or {}
    if serving.get("uri") and serving.get("digest"):
        return ServedModel(serving["uri"], serving["digest"], serving.get("model"))
    return wanted


def conditions(
    previous: Mapping[str, Any], generation: int | None, types: Conditions, now: float
) -> list[dict[str, Any]]:
    """The conditions after this pass: those given are set, the others kept as they were."""
    before = previous.get("conditions")
    kept = {c["type"]: c for c in before or ()}
    moment = datetime.datetime.fromtimestamp(now, datetime.UTC)
    for type_, (value, reason, message) in types.items():
        kept[type_] = condition(
            type_,
            value,
            reason=reason,
            message=message[:1000],
            generation=generation,
            previous=before,
            now=moment,
        )
    return [kept[t] for t in CONDITION_TYPES if t in kept]


def failed(
    previous: Mapping[str, Any], generation: int | None, message: str, now: float
) -> dict[str, Any]:
    """A spec that cannot be served: Failed, not Ready, Degraded (InvalidSpec)."""
    types = {"Ready": (False, "InvalidSpec", message), "Degraded": (True, "InvalidSpec", message)}
    return {
        **previous,
        "phase": "Failed",
        "message": message,
        "conditions": conditions(previous, generation, types, now),
    }


def waiting(
    previous: Mapping[str, Any], generation: int | None, why: Waiting, now: float
) -> dict[str, Any]:
    """No stable model to serve yet (its TrainingJob is still training, say)."""
    types = {
        "Ready": (False, why.reason, why.message),
        "Progressing": (True, why.reason, why.message),
    }
    return {
        **previous,
        "message": why.message,
        "conditions": conditions(previous, generation, types, now),
    }


def compose(
    previous: Mapping[str, Any], generation: int | None, seen: Observation, now: float
) -> dict[str, Any]:
    """The whole status after one reconciliation."""
    decision = seen.decision
    new = decision.state
    active = seen.canary is not None and new.phase in ACTIVE
    stable = seen.servers.get("stable", Servers())
    status: dict[str, Any] = dict(previous)
    status["phase"] = new.phase
    status["canaryWeight"] = new.weight if active else 0
    status["stable"] = {
        **served(seen.stable),
        "replicas": stable.replicas,
        "readyReplicas": stable.ready,
        "weight": 100 - (new.weight if active and not seen.shadow else 0),
    }
    if seen.canary is not None and new.canary == seen.canary.digest:
        canary = seen.servers.get("canary", Servers())
        status["canary"] = {
            **served(seen.canary),
            "replicas": canary.replicas if active else 0,
            "readyReplicas": canary.ready if active else 0,
            "weight": (100 if seen.shadow else new.weight) if active else 0,
        }
    else:
        status.pop("canary", None)
    if seen.promoted:
        status["promoted"] = dict(seen.promoted)
    status["analysis"] = _analysis(previous, seen)
    status["url"] = seen.url
    if decision.action not in ("wait", "done"):
        status["message"] = decision.message
    status.setdefault("message", decision.message)
    status["conditions"] = conditions(previous, generation, _conditions(seen, status), now)
    if new.phase == "Stable" and stable.ready == 0 and seen.wanted_stable_replicas > 0:
        status["phase"] = "Degraded"
    return status


def _conditions(seen: Observation, status: dict[str, Any]) -> dict[str, tuple[bool, str, str]]:
    decision, ready = seen.decision, seen.servers.get("stable", Servers()).ready
    new = decision.state
    types: dict[str, tuple[bool, str, str]] = {
        "Ready": (
            ready > 0,
            "Serving" if ready > 0 else "ModelServersNotReady",
            f"{ready} stable model server(s) ready",
        ),
    }
    if decision.action not in ("wait", "done"):
        types["Progressing"] = (new.phase in ACTIVE, decision.reason, decision.message)
        failed_ = decision.action == "rollback"
        types["Degraded"] = (
            failed_,
            decision.reason if failed_ else "AsExpected",
            decision.message if failed_ else "no failed analysis",
        )
    if decision.action == "start":
        for outcome in OUTCOMES.values():
            types[outcome] = (False, decision.reason, decision.message)
    elif decision.action in OUTCOMES:
        types[OUTCOMES[decision.action]] = (True, decision.reason, decision.message)
    if new.phase == "Stable" and seen.canary_waiting is not None:
        status["message"] = f"canary: {seen.canary_waiting.message}"
        types["Progressing"] = (True, seen.canary_waiting.reason, status["message"])
    elif new.phase == "Stable":
        types["Progressing"] = (False, "Stable", "no rollout under way")
    return types


def _analysis(previous: Mapping[str, Any], seen: Observation) -> dict[str, Any] | None:
    decision = seen.decision
    new = decision.state
    if new.phase == "Stable":
        return None
    analysis: dict[str, Any] = dict(previous.get("analysis") or {})
    if decision.action == "start":
        analysis = {}
    if new.since is not None:
        analysis["time"] = rfc3339(new.since, precise=True)
    analysis["step"] = new.step
    analysis["failures"] = new.failures
    if decision.verdict is not None:
        analysis["verdict"] = decision.verdict
        analysis["message"] = decision.message
        measured = seen.measured or {}
        for variant in ("stable", "canary"):
            metrics = measured.get(variant)
            if metrics is not None:
                analysis[variant] = metrics.to_status()
            else:
                analysis.pop(variant, None)
    if decision.new_window:
        if seen.snapshot is not None:
            analysis["snapshot"] = snapshot_to_status(seen.snapshot)
        else:
            analysis.pop("snapshot", None)
    if new.phase in ("Promoted", "RolledBack"):
        analysis.pop("snapshot", None)
    return analysis
