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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast, get_args

from mlops_operator.canary.handoff import MESSAGES, SERVING, STAGES, Handoff
from mlops_operator.canary.hooks import Gate
from mlops_operator.canary.machine import Decision, Phase, RolloutState
from mlops_operator.canary.metrics import Counters, VariantMetrics, comparison
from mlops_operator.canary.resolve import ServedModel, Waiting
from mlops_operator.canary.retraining import DriftState
from mlops_operator.objects import VariantName
from mlops_operator.status.conditions import condition, find, parse_time, rfc3339

ACTIVE = ("Progressing", "Paused")
"""Phases in which a canary gets traffic."""
CONDITION_TYPES = ("Ready", "Progressing", "Degraded", "Promoted", "RolledBack")
CHILD_PROBLEMS = ("NameClash", "ChildRejected", "MissingKind")
METRICS_UNAVAILABLE = "MetricsUnavailable"
"""Degraded while the analysis cannot read its metrics source (the rollout holds)."""
"""Degraded reasons of :func:`degraded`: a pass that wrote every child clears them."""
OUTCOMES = {"promote": "Promoted", "rollback": "RolledBack"}
"""The actions that end a rollout, and the condition each one sets True."""
Snapshot = Mapping[str, Mapping[str, Counters]]
"""Each variant's counters by server at the start of the interval (builtin source)."""
Conditions = Mapping[str, tuple[bool, str, str]]
"""Condition type -> (status, reason, message)."""
HISTORY_LIMIT = 10
"""Rollouts kept in status.history."""
ENDINGS = {"promote": "Promoted", "rollback": "RolledBack", "stable": "Cancelled"}
"""The actions that close the open history record, and its outcome."""


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
    entry_ready: bool = True
    """The entry takes requests (the builtin router: one of its Pods is ready)."""
    shadow: bool = False
    wanted_stable_replicas: int = 1
    promoted: Mapping[str, Any] | None = None
    measured: Mapping[str, VariantMetrics | None] | None = None
    snapshot: Snapshot | None = None
    canary_waiting: Waiting | None = None
    """Why the canary named in the spec cannot be served yet."""
    metrics_problem: str | None = None
    """Why the analysis due in this pass could read no metrics (the source's words)."""
    replaced: str | None = None
    """The digest the stable variant served before this pass (a promotion replaces it)."""
    command: str | None = None
    """The mlops.dev/command value handled in this pass."""
    command_problem: str | None = None
    """Why that value was not acted on (not a command, or nothing to act on)."""


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
        held=bool((status.get("control") or {}).get("paused")),
        gate=analysis.get("gate") if analysis.get("gate") in get_args(Gate) else None,
        promotions=tuple(
            (record["digest"], record.get("replaces"))
            for record in status.get("history") or ()
            if record.get("outcome") == "Promoted"
        ),
    )


def canary_ready(status: Mapping[str, Any] | None) -> bool:
    """Every model server the canary variant wants was ready at the last pass."""
    canary = (status or {}).get("canary") or {}
    wanted = int(canary.get("replicas") or 0)
    return wanted > 0 and int(canary.get("readyReplicas") or 0) >= wanted


def handled_command(status: Mapping[str, Any] | None) -> str | None:
    """The mlops.dev/command value acted on last."""
    return ((status or {}).get("control") or {}).get("command")


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


def handoff_from_status(status: Mapping[str, Any] | None) -> Handoff | None:
    """The promotion's hand-off under way (status.handoff), if any."""
    found = (status or {}).get("handoff") or {}
    previous = found.get("previous") or {}
    stage, since = found.get("stage"), epoch(found.get("since"))
    if stage not in STAGES or since is None or not previous.get("digest"):
        return None
    return Handoff(
        stage=stage,
        since=since,
        previous=ServedModel(previous["uri"], previous["digest"], previous.get("model")),
        settled=epoch(found.get("settled")),
    )


def with_handoff(
    status: Mapping[str, Any], generation: int | None, handoff: Handoff | None, now: float
) -> dict[str, Any]:
    """The status with the hand-off under way: status.handoff, the weights the router applies
    in its stage, Progressing True (reason Promoting) so the rollout is ticked to its end; when
    it is over, Progressing False (reason Promoted)."""
    out = dict(status)
    if handoff is None:
        if "handoff" not in out:
            return out
        del out["handoff"]
        message = "promotion complete: the canary's servers are gone"
        types = {"Progressing": (False, "Promoted", message)}
        out["conditions"] = conditions(out, generation, types, now)
        return out
    serving = SERVING[handoff.stage]
    previous = served(handoff.previous)
    out["handoff"] = {
        "stage": handoff.stage,
        "since": rfc3339(handoff.since, precise=True),
        "previous": previous,
    }
    if handoff.settled is not None:
        out["handoff"]["settled"] = rfc3339(handoff.settled, precise=True)
    weight = serving.canary_weight or 0
    out["canaryWeight"] = weight
    if "stable" in out:
        out["stable"] = {**out["stable"], "weight": 100 - weight}
    if "canary" in out:
        out["canary"] = {**out["canary"], "weight": weight}
    message = f"{MESSAGES[handoff.stage]} ({handoff.stage})"
    out["conditions"] = conditions(
        out, generation, {"Progressing": (True, "Promoting", message)}, now
    )
    return out


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


def degraded(
    previous: Mapping[str, Any], generation: int | None, reason: str, message: str, now: float
) -> dict[str, Any]:
    """The children cannot be written (a name clash, say): the served variants stay as they
    were; Degraded with the reason, not Ready while nothing is served."""
    served_before = bool((previous.get("stable") or {}).get("readyReplicas"))
    types = {"Degraded": (True, reason, message), "Progressing": (True, reason, message)}
    if not served_before:
        types["Ready"] = (False, reason, message)
    return {
        **previous,
        "message": message,
        "conditions": conditions(previous, generation, types, now),
    }


def idle(status: Mapping[str, Any] | None, generation: int | None) -> bool:
    """Nothing will happen until the spec, a child or a TrainingJob changes: the status is of
    this generation, no rollout is under way and nothing is waited for (Progressing is not
    True). The operator's timer runs only for ModelDeployments that are not idle."""
    if not status or status.get("observedGeneration") != generation:
        return False
    if status.get("phase") in ACTIVE:
        return False
    progressing = find(status.get("conditions"), "Progressing")
    return not (progressing and progressing.get("status") == "True")


def pruned(value: Any) -> Any:
    """The value as the API server stores it: no null fields (the schema prunes them)."""
    if isinstance(value, Mapping):
        return {k: pruned(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [pruned(v) for v in value]
    return value


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
    status["analysis"] = _analysis(previous, seen, now)
    control = _control(previous, seen, now)
    if control:
        status["control"] = control
    history = _history(previous.get("history") or [], seen, now)
    if history:
        status["history"] = history
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
    if ready > 0 and not seen.entry_ready:
        types["Ready"] = (False, "RouterNotReady", f"{types['Ready'][2]}, no router Pod ready yet")
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
    if seen.metrics_problem is not None:
        types["Degraded"] = (True, METRICS_UNAVAILABLE, seen.metrics_problem)
    before = find(status.get("conditions"), "Degraded") or {}
    if "Degraded" not in types and before.get("reason") in CHILD_PROBLEMS:
        types["Degraded"] = (False, "AsExpected", "every child is written")
    return types


def _judged(
    analysis: dict[str, Any], previous: Mapping[str, Any], seen: Observation, now: float
) -> None:
    """The verdict of the interval just judged, with each variant's numbers."""
    analysis["verdict"] = seen.decision.verdict
    analysis["judged"] = rfc3339(now, precise=True)
    analysis["weight"] = int(previous.get("canaryWeight") or 0)
    analysis["message"] = seen.decision.message
    measured = seen.measured or {}
    for variant in ("stable", "canary"):
        metrics = measured.get(variant)
        if metrics is not None:
            analysis[variant] = metrics.to_status()
        else:
            analysis.pop(variant, None)
    compared = comparison(measured.get("canary"), measured.get("stable"))
    if compared:
        analysis["comparison"] = compared
    else:
        analysis.pop("comparison", None)


def _analysis(previous: Mapping[str, Any], seen: Observation, now: float) -> dict[str, Any] | None:
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
    if new.gate:
        analysis["gate"] = new.gate
    else:
        analysis.pop("gate", None)
    if decision.verdict is not None:
        _judged(analysis, previous, seen, now)
    if decision.new_window:
        if seen.snapshot is not None:
            analysis["snapshot"] = snapshot_to_status(seen.snapshot)
        else:
            analysis.pop("snapshot", None)
    if new.phase in ("Promoted", "RolledBack"):
        analysis.pop("snapshot", None)
    return analysis


def _control(previous: Mapping[str, Any], seen: Observation, now: float) -> dict[str, Any]:
    control = dict(previous.get("control") or {})
    control["paused"] = seen.decision.state.held
    if seen.command is not None:
        control["command"] = seen.command
        control["message"] = seen.command_problem or seen.decision.message
        control["time"] = rfc3339(now)
    return control if control != {"paused": False} else {}


def _history(
    previous: list[Mapping[str, Any]], seen: Observation, now: float
) -> list[dict[str, Any]]:
    """The rollouts so far: a start opens a record (closing one still open as Superseded);
    a promotion, a rollback or the canary's removal closes it."""
    decision = seen.decision
    history = [dict(record) for record in previous]
    open_ = history[-1] if history and not history[-1].get("outcome") else None
    when = rfc3339(now)
    if decision.action == "start" and seen.canary is not None:
        if open_ is not None:
            open_.update(outcome="Superseded", finished=when, message="a newer rollout started")
        history.append(
            {
                "model": seen.canary.name or seen.canary.uri,
                "digest": seen.canary.digest,
                "replaces": seen.stable.digest,
                "started": when,
                "message": decision.message,
            }
        )
    elif decision.reason == "RollbackWindow" and seen.canary is not None:
        record = {
            "model": seen.canary.name or seen.canary.uri,
            "digest": seen.canary.digest,
            "replaces": seen.replaced,
            "started": when,
            "finished": when,
            "outcome": "Promoted",
            "message": decision.message,
        }
        history.append(record)
    elif decision.action in ENDINGS and open_ is not None:
        outcome = "Aborted" if decision.reason == "Aborted" else ENDINGS[decision.action]
        open_.update(outcome=outcome, finished=when, message=decision.message[:1000])
    return history[-HISTORY_LIMIT:]


def with_webhooks(
    status: Mapping[str, Any], results: Sequence[Mapping[str, Any]], now: float
) -> dict[str, Any]:
    """The status with each webhook's last call (by name, in the spec's order of calls)."""
    if not results:
        return dict(status)
    calls = {call["name"]: dict(call) for call in status.get("webhooks") or ()}
    for result in results:
        calls[result["name"]] = {**result, "time": rfc3339(now)}
    return {**status, "webhooks": list(calls.values())[-40:]}


def drift_state(status: Mapping[str, Any] | None) -> DriftState:
    """The retraining state status.retraining records."""
    found = (status or {}).get("retraining") or {}
    return DriftState(
        checked=epoch(found.get("checked")),
        psi=found.get("psi"),
        drifting=int(found.get("drifting") or 0),
        triggered=epoch(found.get("triggered")),
        run=found.get("run"),
        runs=int(found.get("runs") or 0),
        message=found.get("message"),
    )


def with_retraining(status: Mapping[str, Any], state: DriftState) -> dict[str, Any]:
    """The status with status.retraining for ``state``."""
    out: dict[str, Any] = {"drifting": state.drifting, "runs": state.runs}
    for key in ("checked", "triggered"):
        value = getattr(state, key)
        if value is not None:
            out[key] = rfc3339(value)
    if state.psi is not None:
        out["psi"] = round(state.psi, 4)
    for key in ("run", "message"):
        if getattr(state, key) is not None:
            out[key] = getattr(state, key)
    return {**status, "retraining": out}
