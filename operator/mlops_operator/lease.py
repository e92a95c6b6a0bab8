"""Leader election's arithmetic over a coordination.k8s.io/v1 Lease's spec. Pure.

Expiry is judged by the candidate's own clock, as client-go does: a lease is free once its
record (holder, renewTime) has not changed for leaseDurationSeconds since this candidate
first saw it, so no two clocks need agree.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Timing:
    """Seconds: how long a lease holds without renewal, how long the leader keeps trying to
    renew before it stops acting, and how often everyone tries."""

    duration: float
    renew_deadline: float
    retry: float

    def __post_init__(self) -> None:
        if not 0 < self.retry < self.renew_deadline < self.duration:
            raise ValueError("leader election needs 0 < retry < renew deadline < lease duration")


@dataclass(frozen=True)
class Seen:
    """A lease record as one candidate last saw it, and when (its monotonic clock)."""

    record: tuple[str, str]
    at: float


def record(spec: Mapping[str, Any]) -> tuple[str, str]:
    return str(spec.get("holderIdentity") or ""), str(spec.get("renewTime") or "")


def observe(spec: Mapping[str, Any], seen: Seen | None, now: float) -> Seen:
    """What the candidate knows after reading ``spec`` at ``now``."""
    current = record(spec)
    if seen is not None and seen.record == current:
        return seen
    return Seen(current, now)


def free_for(
    spec: Mapping[str, Any], identity: str, seen: Seen, now: float, timing: Timing
) -> bool:
    """Whether ``identity`` may take (or keep) the lease: it holds it, nobody does, or the
    holder has not renewed for the lease's duration."""
    holder = spec.get("holderIdentity") or ""
    if not holder or holder == identity:
        return True
    duration = float(spec.get("leaseDurationSeconds") or timing.duration)
    return now - seen.at > duration


def claim(
    spec: Mapping[str, Any], identity: str, wall: datetime.datetime, timing: Timing
) -> dict[str, Any]:
    """The spec with ``identity`` holding the lease, renewed at ``wall``."""
    stamp = micro_time(wall)
    ours = spec.get("holderIdentity") == identity
    transitions = int(spec.get("leaseTransitions") or 0)
    return {
        **spec,
        "holderIdentity": identity,
        "leaseDurationSeconds": max(1, round(timing.duration)),
        "acquireTime": spec.get("acquireTime") if ours else stamp,
        "renewTime": stamp,
        "leaseTransitions": transitions if ours else transitions + 1,
    }


def released(spec: Mapping[str, Any], wall: datetime.datetime) -> dict[str, Any]:
    """The spec after its holder steps down: no holder, so a standby takes it at once."""
    return {
        **spec,
        "holderIdentity": None,
        "leaseDurationSeconds": 1,
        "renewTime": micro_time(wall),
    }


def micro_time(wall: datetime.datetime) -> str:
    """The API's MicroTime: RFC 3339 with microseconds, in UTC."""
    return wall.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
