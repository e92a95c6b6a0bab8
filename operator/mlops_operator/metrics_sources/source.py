"""What every metrics source offers the analysis: one interval's metrics per variant."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from mlops_operator.canary.metrics import COUNTER_NAMES, Counters, VariantMetrics
from model_server.metric_names import FEEDBACK, REQUEST_DURATION, REQUESTS

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
)
"""Every plain counter of :class:`Counters`, and the samples it is made of."""
LATENCY_BUCKETS = f"{REQUEST_DURATION}_bucket"


def counters(
    samples: Iterable[tuple[str, Mapping[str, str], float]], buckets: Mapping[float, float]
) -> Counters:
    """Counters from (sample name, labels, value) triples and the latency histogram."""
    totals = dict.fromkeys(COUNTER_NAMES, 0.0)
    for name, labels, value in samples:
        for series in COUNTED:
            if name == f"{series.metric}_total" and series.matches(labels.get(series.label, "")):
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


class MetricsSource(Protocol):
    def measure(self, window: Window) -> Reading:
        """Each variant's metrics over the window."""

    def begin(self, window: Window) -> dict[str, dict[str, Counters]] | None:
        """What to remember at the start of a window (None: nothing)."""
