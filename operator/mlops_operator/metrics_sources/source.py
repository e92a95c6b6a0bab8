"""What every metrics source offers the analysis: one interval's metrics per variant."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from mlops_operator.canary.metrics import COUNTER_NAMES, Counters, VariantMetrics
from model_server.metric_names import (
    AGREEMENT,
    FEEDBACK,
    REQUEST_DURATION,
    REQUESTS,
    ROUTED,
    SOURCE,
)

Targets = Mapping[str, Mapping[str, str]]
"""{variant: {server key (e.g. Pod name): its /metrics URL}}."""
Snapshot = Mapping[str, Mapping[str, Counters]]
"""{variant: {server key: its counters}} at the start of an interval."""


@dataclass(frozen=True)
class Series:
    """Which samples of a model server's counter add up to one of the Counters' fields."""

    counter: str
    """The Counters field."""
    metric: str
    """The counter's name (its samples are <metric>_total)."""
    label: str
    matches: Callable[[str], bool]
    """Whether a sample with this label value counts."""


COUNTED: tuple[Series, ...] = (
    Series("requests", REQUESTS, "code", lambda _code: True),
    Series("errors", REQUESTS, "code", lambda code: code.startswith("5")),
    Series("correct", FEEDBACK, "outcome", lambda outcome: outcome == "correct"),
    Series("incorrect", FEEDBACK, "outcome", lambda outcome: outcome == "incorrect"),
    Series("agree", AGREEMENT, "outcome", lambda outcome: outcome == "agree"),
    Series("disagree", AGREEMENT, "outcome", lambda outcome: outcome == "disagree"),
    Series("skipped", AGREEMENT, "outcome", lambda outcome: outcome == "skipped"),
)
"""Every plain counter of :class:`Counters`, and the samples it is made of."""
LATENCY_BUCKETS = f"{REQUEST_DURATION}_bucket"

Sources = frozenset[str] | None
"""The values of the ``source`` label that count (None: every sample, labelled or not)."""
SOURCED = frozenset({REQUESTS, REQUEST_DURATION, FEEDBACK, AGREEMENT})
"""The metrics a model server labels with where the request came from (metric_names.SOURCE)."""


def sources_for(proves_source: bool) -> Sources:
    """What the analysis counts: behind a router that proves its requests (the builtin one:
    traffic.proof) only the requests it proved, so a client reaching a server directly, or
    forging the header, moves nothing; behind a gateway or a mesh, which cannot send the
    proof, every request."""
    return frozenset({ROUTED}) if proves_source else None


def counted(metric: str, labels: Mapping[str, str], sources: Sources) -> bool:
    """Whether a sample of ``metric`` with these labels counts for ``sources``."""
    return sources is None or metric not in SOURCED or labels.get(SOURCE) in sources


def matcher(metric: str, sources: Sources) -> str:
    """The PromQL label matcher that keeps only the counted samples of ``metric`` (to append
    to a selector; empty when all count)."""
    if sources is None or metric not in SOURCED:
        return ""
    values = sorted(sources)
    if len(values) == 1:
        return f',{SOURCE}="{values[0]}"'
    return f',{SOURCE}=~"{"|".join(values)}"'


def counters(
    samples: Iterable[tuple[str, Mapping[str, str], float]],
    buckets: Mapping[float, float],
    sources: Sources = None,
) -> Counters:
    """Counters from (sample name, labels, value) triples and the latency histogram (whose
    buckets the caller has already chosen by ``sources``)."""
    totals = dict.fromkeys(COUNTER_NAMES, 0.0)
    for name, labels, value in samples:
        for series in COUNTED:
            if (
                name == f"{series.metric}_total"
                and series.matches(labels.get(series.label, ""))
                and counted(series.metric, labels, sources)
            ):
                totals[series.counter] += value
    return Counters(buckets=dict(buckets), **totals)


def bound(le: str) -> float:
    """A histogram bucket's upper bound."""
    return math.inf if le == "+Inf" else float(le)


@dataclass(frozen=True)
class Window:
    """One ModelDeployment's analysis interval."""

    namespace: str
    name: str
    since: float
    now: float
    targets: Callable[[], Targets] = dict
    """The variants' servers, asked for only by the sources that scrape them."""
    snapshot: Snapshot = field(default_factory=dict)
    """The counters at ``since``, as :meth:`MetricsSource.begin` returned them."""


@dataclass(frozen=True)
class Reading:
    metrics: dict[str, VariantMetrics | None]
    """Each variant's numbers over the interval (None: nothing could be read)."""
    snapshot: dict[str, dict[str, Counters]] | None
    """The counters now, to keep in the status for the next interval (None: not needed)."""
    problem: str | None = None
    """Why nothing could be read, naming the field to fix (e.g. the Prometheus URL)."""


class MetricsSource(Protocol):
    def measure(self, window: Window) -> Reading:
        """Each variant's metrics over the window."""

    def begin(self, window: Window) -> dict[str, dict[str, Counters]] | None:
        """What to remember at the start of a window (None: nothing)."""
