"""Webhooks at Flagger's points, as the state machine sees them. Pure.

The controller asks :func:`due` which kinds to call before a decision, calls them (the I/O is
in ``mlops_operator.webhooks``), and passes each kind's :class:`Outcome` to ``decide``:

- confirm-rollout: polled every tick while a new rollout waits, before any traffic; 2xx
  starts it, anything else holds it (the condition's reason names the gate).
- pre-rollout: once an interval, before any traffic; 2xx starts the rollout, anything else
  is a failed analysis.
- rollout: every analysis interval, before the metrics are judged; anything but 2xx is a
  failed analysis.
- confirm-promotion: polled every tick once the analysis would promote (blue-green: switch);
  2xx promotes, anything else holds the weight.
- rollback: with every analysis and at every gate; 2xx rolls back now.
- post-rollout: once, after a promotion or a rollback; the answer is only recorded.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, get_args

Kind = Literal[
    "pre-rollout", "rollout", "confirm-rollout", "confirm-promotion", "post-rollout", "rollback"
]
KINDS: tuple[Kind, ...] = get_args(Kind)
Gate = Literal["confirm-rollout", "pre-rollout", "confirm-promotion"]
CONFIRM: tuple[Gate, ...] = ("confirm-rollout", "confirm-promotion")
"""Gates polled every tick (a person or a pipeline answering): they never count as failures."""
GATE_REASONS: dict[Gate, str] = {
    "confirm-rollout": "WaitingForConfirmRollout",
    "pre-rollout": "WaitingForPreRollout",
    "confirm-promotion": "WaitingForConfirmPromotion",
}
"""The condition reason while a rollout waits at each gate."""


@dataclass(frozen=True)
class Outcome:
    """All hooks of one kind, called: did every one answer 2xx, and what they said."""

    ok: bool
    message: str


Outcomes = Mapping[Kind, Outcome]


def first_gate(kinds: frozenset[Kind]) -> Gate | None:
    """The gate a new rollout waits at before any traffic moves."""
    for gate in ("confirm-rollout", "pre-rollout"):
        if gate in kinds:
            return gate
    return None


def next_gate(kinds: frozenset[Kind], passed: Gate) -> Gate | None:
    """After confirm-rollout, pre-rollout (when there is one)."""
    if passed == "confirm-rollout" and "pre-rollout" in kinds:
        return "pre-rollout"
    return None


def payload(
    name: str,
    namespace: str,
    kind: Kind,
    status: Mapping[str, Any],
    metadata: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The JSON body every hook gets: the object, the hook's kind, where the rollout is."""
    analysis = status.get("analysis") or {}
    return {
        "name": name,
        "namespace": namespace,
        "type": kind,
        "phase": status.get("phase"),
        "weight": status.get("canaryWeight", 0),
        "canary": named_model(status.get("canary")),
        "stable": named_model(status.get("stable")),
        "analysis": {
            key: analysis[key]
            for key in ("verdict", "message", "failures", "judged", "canary", "stable")
            if key in analysis
        },
        "metadata": dict(metadata or {}),
    }


def named_model(variant: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """A variant as hooks and notifications name it: its model and digest."""
    if not variant:
        return None
    return {key: variant.get(key) for key in ("model", "digest")}
