"""The rollout state in the ModelDeployment status, both ways. Pure.

Everything a rollout needs after an operator restart is here: the phase, the canary's digest,
the step index, the failures in a row, the start of the interval (analysis.time) and, for the
builtin source, the counter snapshot taken then.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any, cast, get_args

from mlops_operator.canary.machine import Phase, RolloutState
from mlops_operator.canary.metrics import Counters


def rfc3339(moment: float) -> str:
    when = datetime.datetime.fromtimestamp(moment, datetime.UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def epoch(text: str | None) -> float | None:
    if not text:
        return None
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


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


def snapshot_from_status(
    status: Mapping[str, Any] | None,
) -> dict[str, dict[str, Counters]]:
    snapshot = ((status or {}).get("analysis") or {}).get("snapshot") or {}
    return {
        variant: {key: Counters.from_dict(value) for key, value in servers.items()}
        for variant, servers in snapshot.items()
    }


def snapshot_to_status(snapshot: Mapping[str, Mapping[str, Counters]]) -> dict[str, Any]:
    return {
        variant: {key: counters.to_dict() for key, counters in servers.items()}
        for variant, servers in snapshot.items()
    }
