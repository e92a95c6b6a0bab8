"""Conditions as the Kubernetes API conventions define them, with stable transition times."""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping
from typing import Any


def rfc3339(moment: datetime.datetime | float, *, precise: bool = False) -> str:
    """A time (or epoch seconds) as the API writes it; ``precise`` keeps the microseconds."""
    if not isinstance(moment, datetime.datetime):
        moment = datetime.datetime.fromtimestamp(moment, datetime.UTC)
    fraction = ".%f" if precise else ""
    return moment.astimezone(datetime.UTC).strftime(f"%Y-%m-%dT%H:%M:%S{fraction}Z")


def parse_time(value: str | None) -> datetime.datetime | None:
    if not value:
        return None
    return datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))


def condition(
    type_: str,
    status: bool,
    *,
    reason: str,
    message: str,
    generation: int | None,
    previous: Iterable[Mapping[str, Any]] | None,
    now: datetime.datetime,
) -> dict[str, Any]:
    """A condition whose lastTransitionTime moves only when its status changes."""
    value = "True" if status else "False"
    old = next((c for c in previous or () if c.get("type") == type_), None)
    since = old.get("lastTransitionTime") if old and old.get("status") == value else None
    result: dict[str, Any] = {
        "type": type_,
        "status": value,
        "reason": reason,
        "message": message,
        "lastTransitionTime": since or rfc3339(now),
    }
    if generation is not None:
        result["observedGeneration"] = generation
    return result


def find(conditions: Iterable[Mapping[str, Any]] | None, type_: str) -> Mapping[str, Any] | None:
    return next((c for c in conditions or () if c.get("type") == type_), None)
