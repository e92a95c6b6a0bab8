"""Metrics math: differencing cumulative counters over an interval, error rate, p99, accuracy,
agreement with the stable model.

A model server exports cumulative counters (requests by code, a latency histogram, feedback by
outcome). The analysis takes a snapshot per server at the start of an interval and another at
the end; the difference is what happened in the interval. A counter that went down means the
server restarted: like Prometheus' ``increase()``, the new value is then taken as the increase.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from mlops_operator.canary.checks import ABSOLUTE, RELATIVE


@dataclass(frozen=True)
class Counters:
    """Cumulative counters of one model server (or a sum over several, or an increase).

    Every field but ``buckets`` is a plain counter: a new counter is one field here (and its
    series in metrics_sources.source.COUNTED); the methods below go over all of them.
    """

    requests: float = 0.0
    errors: float = 0.0
    buckets: Mapping[float, float] = field(default_factory=dict)
    """Cumulative histogram bucket counts by upper bound in seconds (math.inf for +Inf)."""
    correct: float = 0.0
    incorrect: float = 0.0
    agree: float = 0.0
    disagree: float = 0.0
    skipped: float = 0.0
    """Rows compared with the reference (stable) model's predictions, and rows not compared."""

    def scalars(self) -> dict[str, float]:
        return {name: getattr(self, name) for name in COUNTER_NAMES}

    def to_dict(self) -> dict[str, Any]:
        """The status form (the Counters API model): bucket bounds as strings."""
        return {
            **self.scalars(),
            "buckets": {_bound_key(le): n for le, n in sorted(self.buckets.items())},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Counters:
        buckets = data.get("buckets") or {}
        return cls(
            buckets={_bound(k): float(v) for k, v in buckets.items()},
            **{name: float(data.get(name, 0)) for name in COUNTER_NAMES},
        )


COUNTER_NAMES = tuple(f.name for f in fields(Counters) if f.name != "buckets")


def _bound(text: str) -> float:
    return math.inf if text in ("+Inf", "Inf", "inf") else float(text)


def _bound_key(le: float) -> str:
    return "+Inf" if math.isinf(le) else repr(le)


def _increase(previous: float | None, current: float) -> float:
    if previous is None or current < previous:
        return current
    return current - previous


def restarted(previous: Counters, current: Counters) -> bool:
    """Whether any counter went down between two snapshots: the server restarted."""
    scalars = zip(current.scalars().values(), previous.scalars().values(), strict=True)
    return any(now < before for now, before in scalars) or any(
        current.buckets.get(le, 0.0) < n for le, n in previous.buckets.items()
    )


def increase(previous: Counters | None, current: Counters) -> Counters:
    """What one server's counters did between two snapshots (a reset counts from zero).

    If any counter went down, the server restarted: the whole current value is the increase.
    """
    if previous is None or restarted(previous, current):
        return current
    before = previous.scalars()
    return Counters(
        buckets={le: _increase(previous.buckets.get(le), n) for le, n in current.buckets.items()},
        **{name: _increase(before[name], now) for name, now in current.scalars().items()},
    )


def total(counters: list[Counters]) -> Counters:
    """The sum of several servers' counters (bucket by bucket)."""
    buckets: dict[float, float] = {}
    for item in counters:
        for le, n in item.buckets.items():
            buckets[le] = buckets.get(le, 0.0) + n
    return Counters(
        buckets=buckets,
        **{name: sum(getattr(c, name) for c in counters) for name in COUNTER_NAMES},
    )


def difference(previous: Mapping[str, Counters], current: Mapping[str, Counters]) -> Counters:
    """The increase over an interval of a variant's servers, keyed by server (e.g. Pod name).

    A server seen only now started during the interval: all its counts are new. A server seen
    only before is gone and contributes nothing (its last counts cannot be known).
    """
    return total([increase(previous.get(key), counters) for key, counters in current.items()])


def lost(previous: Mapping[str, Counters], current: Mapping[str, Counters]) -> tuple[str, ...]:
    """The servers of the interval's start whose counts since are partly unknown: gone by its
    end (a deleted or unready Pod), or restarted (what they counted before is lost)."""
    return tuple(
        sorted(
            key
            for key, before in previous.items()
            if key not in current or restarted(before, current[key])
        )
    )


def quantile(q: float, buckets: Mapping[float, float]) -> float | None:
    """The q-quantile from cumulative histogram buckets, as Prometheus' histogram_quantile.

    Linear interpolation inside the bucket holding the rank; the lowest bucket starts at 0; a
    rank in the +Inf bucket answers the highest finite bound. None without observations.
    """
    if not 0 <= q <= 1:
        raise ValueError(f"quantile {q} is not between 0 and 1")
    ordered = sorted(buckets.items())
    if not ordered or not math.isinf(ordered[-1][0]):
        return None
    count = ordered[-1][1]
    if count <= 0:
        return None
    rank = q * count
    lower_bound, lower_count = 0.0, 0.0
    for bound, cumulative in ordered:
        if cumulative >= rank:
            if math.isinf(bound):
                return lower_bound if len(ordered) > 1 else None
            in_bucket = cumulative - lower_count
            if in_bucket <= 0:
                return bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / in_bucket
        lower_bound, lower_count = bound, cumulative
    return lower_bound


@dataclass(frozen=True)
class VariantMetrics:
    """A variant's numbers over one analysis interval."""

    requests: float
    error_rate: float | None = None
    latency_p99_ms: float | None = None
    accuracy: float | None = None
    agreement: float | None = None
    """shadow: the fraction of compared rows that agreed with the stable model."""
    compared: float | None = None
    """shadow: rows compared with the stable model's predictions."""
    lost: tuple[str, ...] = ()
    """Servers whose counts over the interval are partly unknown (:func:`lost`): a reading
    without them may fail the variant but never pass it."""

    def to_status(self) -> dict[str, Any]:
        """The status form (the VariantAnalysis API model)."""
        out: dict[str, Any] = {"requests": round(self.requests, 3)}
        if self.compared is not None:
            out["compared"] = round(self.compared, 3)
        for check in ABSOLUTE:
            value = getattr(self, check.metric)
            if value is not None:
                out[check.status] = round(value, check.digits)
        return out


def comparison(canary: VariantMetrics | None, stable: VariantMetrics | None) -> dict[str, float]:
    """The canary against the stable variant over the same interval (the Comparison API
    model): one number per relative check whose metric both have."""
    out: dict[str, float] = {}
    if canary is None or stable is None:
        return out
    for check in RELATIVE:
        value, baseline = getattr(canary, check.metric), getattr(stable, check.metric)
        if value is None or baseline is None:
            continue
        versus = check.versus(value, baseline)
        if versus is not None:
            out[check.compared] = round(versus, check.digits)
    return out


def summarize(counters: Counters) -> VariantMetrics:
    """Error rate, p99 latency and online accuracy from an interval's increase."""
    requests = counters.requests
    error_rate = counters.errors / requests if requests > 0 else None
    p99 = quantile(0.99, counters.buckets)
    feedback = counters.correct + counters.incorrect
    compared = counters.agree + counters.disagree
    return VariantMetrics(
        requests=requests,
        error_rate=error_rate,
        latency_p99_ms=None if p99 is None else p99 * 1000.0,
        accuracy=counters.correct / feedback if feedback > 0 else None,
        agreement=counters.agree / compared if compared > 0 else None,
        compared=compared if compared > 0 or counters.skipped > 0 else None,
    )
