"""What every metrics source offers the analysis: one interval's metrics per variant."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from mlops_operator.canary.metrics import Counters, VariantMetrics

Targets = Mapping[str, Mapping[str, str]]
"""{variant: {server key (e.g. Pod name): its /metrics URL}}."""
Snapshot = Mapping[str, Mapping[str, Counters]]
"""{variant: {server key: its counters}} at the start of an interval."""


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
