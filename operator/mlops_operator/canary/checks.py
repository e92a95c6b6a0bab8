"""The analysis metrics as a table: what each one is called, how it is bounded, how it reads.

A new analysis metric is a row here, its threshold in the API's ``Analysis`` and in
:class:`~mlops_operator.canary.machine.Thresholds`, and its value in ``VariantMetrics`` (computed
by ``summarize``); docs/contributing.md lists the files.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class Check:
    metric: str
    """The VariantMetrics field, e.g. error_rate."""
    status: str
    """Its name in the status (VariantAnalysis), e.g. errorRate."""
    threshold: str
    """The Thresholds (and API Analysis) field that bounds it, e.g. max_error_rate."""
    spec: str
    """The threshold's name in the spec, e.g. maxErrorRate."""
    bound: Literal["max", "min"]
    label: str
    """In words, for messages: error rate."""
    short: str
    """In a list of numbers: errorRate=0.0123."""
    unit: str = ""
    decimals: int = 4
    """Shown in messages."""
    digits: int = 6
    """Kept in the status."""

    def show(self, value: float) -> str:
        return f"{value:.{self.decimals}f}{self.unit}"

    def missed(self, value: float, threshold: float) -> bool:
        return value > threshold if self.bound == "max" else value < threshold

    def problem(self, value: float, threshold: float) -> str:
        sign = ">" if self.bound == "max" else "<"
        return f"{self.label} {self.show(value)} {sign} {self.spec} {threshold:g}"


CHECKS: tuple[Check, ...] = (
    Check(
        "error_rate",
        "errorRate",
        "max_error_rate",
        "maxErrorRate",
        "max",
        label="error rate",
        short="errorRate",
    ),
    Check(
        "latency_p99_ms",
        "latencyP99Ms",
        "max_latency_p99_ms",
        "maxLatencyP99Ms",
        "max",
        label="p99 latency",
        short="p99",
        unit="ms",
        decimals=1,
        digits=3,
    ),
    Check(
        "accuracy",
        "accuracy",
        "min_accuracy",
        "minAccuracy",
        "min",
        label="online accuracy",
        short="accuracy",
    ),
)
