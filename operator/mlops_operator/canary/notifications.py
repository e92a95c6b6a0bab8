"""Rollout notifications: which decisions are worth one, and the bodies sinks get. Pure.

| event | decisions |
| --- | --- |
| started | a rollout starts (or is retried) |
| step | the weight moves on: the next step, a gate opened, a blue-green switch, a resume |
| paused | paused (by spec.traffic.pause or by hand) |
| promoted | the canary was promoted |
| rolledBack | rolled back (failed analyses, by hand, by a rollback hook) |
| failed | one analysis failed (the rollout goes on until failureLimit) |
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, get_args

from mlops_operator.api.modeldeployment import NotificationEvent
from mlops_operator.canary.hooks import named_model
from mlops_operator.canary.machine import Decision

EVENTS: tuple[NotificationEvent, ...] = get_args(NotificationEvent)
_BY_ACTION: dict[str, NotificationEvent] = {
    "start": "started",
    "advance": "step",
    "resume": "step",
    "reweight": "step",
    "pause": "paused",
    "promote": "promoted",
    "rollback": "rolledBack",
}
_EMOJI: dict[NotificationEvent, str] = {
    "started": ":rocket:",
    "step": ":arrow_up:",
    "paused": ":double_vertical_bar:",
    "promoted": ":white_check_mark:",
    "rolledBack": ":rewind:",
    "failed": ":warning:",
}


def event_of(decision: Decision) -> NotificationEvent | None:
    """The notification a decision makes, if any."""
    if decision.action == "hold" and decision.verdict == "Failed":
        return "failed"
    return _BY_ACTION.get(decision.action)


def generic(
    name: str,
    namespace: str,
    event: NotificationEvent,
    decision: Decision,
    *,
    status: Mapping[str, Any],
    time: str,
) -> dict[str, Any]:
    """The generic sink's JSON body (documented in docs/rollout-control.md)."""
    return {
        "event": event,
        "name": name,
        "namespace": namespace,
        "phase": decision.state.phase,
        "weight": decision.state.weight,
        "reason": decision.reason,
        "message": decision.message,
        "canary": named_model(status.get("canary")),
        "stable": named_model(status.get("stable")),
        "time": time,
    }


def slack(body: Mapping[str, Any]) -> dict[str, Any]:
    """A Slack-compatible incoming-webhook body for a generic one."""
    event: NotificationEvent = body["event"]
    canary = (body.get("canary") or {}).get("model") or "-"
    text = (
        f"{_EMOJI[event]} *{body['namespace']}/{body['name']}* {event} "
        f"(canary {canary}, weight {body['weight']}%): {body['message']}"
    )
    return {"text": text[:3000], "username": "mlops-operator"}


FORMATS: dict[str, Callable[[Mapping[str, Any]], dict[str, Any]]] = {
    "generic": dict,
    "slack": slack,
}
"""Each sink format: the generic body -> what is sent."""
