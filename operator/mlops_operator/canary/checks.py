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
    relative: bool = False
    """The threshold is a margin around the stable variant's value over the same interval."""
    ratio: bool = False
    """relative: the threshold is a factor of the stable's value, not a margin."""
    compared: str = ""
    """relative: its name in the status' comparison (Comparison), e.g. errorRateIncrease."""
    needed: bool = False
    """With its threshold set, an interval without a value decides nothing (Inconclusive)."""

    def show(self, value: float) -> str:
        return f"{value:.{self.decimals}f}{self.unit}"

    def limit(self, threshold: float, stable: float | None) -> float | None:
        """The bound the canary's value must keep (None: nothing to compare with)."""
        if not self.relative:
            return threshold
        if stable is None:
            return None
        if self.ratio:
            return stable * threshold
        return stable + threshold if self.bound == "max" else stable - threshold

    def versus(self, value: float, stable: float) -> float | None:
        """The canary's value against the stable's, as the status' comparison shows it."""
        if self.ratio:
            return value / stable if stable > 0 else None
        return value - stable if self.bound == "max" else stable - value

    def missed(self, value: float, limit: float) -> bool:
        return value > limit if self.bound == "max" else value < limit

    def problem(self, value: float, threshold: float, stable: float | None) -> str:
        sign = ">" if self.bound == "max" else "<"
        if not self.relative or stable is None:
            return f"{self.label} {self.show(value)} {sign} {self.spec} {threshold:g}"
        margin = "x" if self.ratio else "+" if self.bound == "max" else "-"
        return (
            f"{self.label} {self.show(value)} {sign} stable's {self.show(stable)} "
            f"{margin} {self.spec} {threshold:g}"
        )


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
    Check(
        "agreement",
        "agreement",
        "min_agreement",
        "minAgreement",
        "min",
        label="agreement with stable",
        short="agreement",
        needed=True,
    ),
    Check(
        "error_rate",
        "errorRate",
        "max_error_rate_increase",
        "maxErrorRateIncrease",
        "max",
        label="error rate",
        short="errorRate",
        relative=True,
        compared="errorRateIncrease",
    ),
    Check(
        "latency_p99_ms",
        "latencyP99Ms",
        "max_latency_p99_increase_ms",
        "maxLatencyP99IncreaseMs",
        "max",
        label="p99 latency",
        short="p99",
        unit="ms",
        decimals=1,
        digits=3,
        relative=True,
        compared="latencyP99IncreaseMs",
    ),
    Check(
        "latency_p99_ms",
        "latencyP99Ms",
        "max_latency_p99_ratio",
        "maxLatencyP99Ratio",
        "max",
        label="p99 latency",
        short="p99",
        unit="ms",
        decimals=1,
        digits=3,
        relative=True,
        ratio=True,
        compared="latencyP99Ratio",
    ),
    Check(
        "accuracy",
        "accuracy",
        "max_accuracy_drop",
        "maxAccuracyDrop",
        "min",
        label="online accuracy",
        short="accuracy",
        relative=True,
        compared="accuracyDrop",
    ),
)
ABSOLUTE: tuple[Check, ...] = tuple(check for check in CHECKS if not check.relative)
"""One check per metric: what VariantMetrics holds and the status shows."""
RELATIVE: tuple[Check, ...] = tuple(check for check in CHECKS if check.relative)
"""The comparisons with the stable variant the status shows (AnalysisStatus.comparison)."""
