"""The quality gate: thresholds on metrics and on data quality.

``qualityGate.min`` and ``.max`` bound any metric of the result (test metrics and
``cv_mean``/``cv_std``); a metric the run did not produce (``roc_auc`` of a model without
probabilities) fails its bound. ``maxMissingFraction`` bounds the fraction of missing values of
every feature column, checked before training so a bad dataset fails fast.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

from mlops_operator.api.trainingjob import QualityGate


class GateFailure(BaseModel):
    """One bound a model (or its data) missed."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)

    metric: str
    """The metric, or ``missing:<column>`` for the data-quality bound."""
    bound: Literal["min", "max"]
    threshold: float
    actual: float | None
    """None when the run did not produce the metric."""
    missed_by: float | None = None

    def describe(self) -> str:
        if self.actual is None:
            return f"{self.metric} was not measured (needed {self.bound} {self.threshold:g})"
        sign = "<" if self.bound == "min" else ">"
        return (
            f"{self.metric} {self.actual:.4g} {sign} {self.bound} {self.threshold:g} "
            f"(missed by {self.missed_by:.4g})"
        )


def check_metrics(gate: QualityGate | None, metrics: dict[str, float]) -> list[GateFailure]:
    failures: list[GateFailure] = []
    if gate is None:
        return failures
    for bound, thresholds in (("min", gate.min), ("max", gate.max)):
        for name, threshold in sorted((thresholds or {}).items()):
            actual = metrics.get(name)
            if actual is None or math.isnan(actual):
                failures.append(
                    GateFailure(metric=name, bound=bound, threshold=threshold, actual=None)  # type: ignore[arg-type]
                )
                continue
            missed = threshold - actual if bound == "min" else actual - threshold
            if missed > 0:
                failures.append(
                    GateFailure(
                        metric=name,
                        bound=bound,  # type: ignore[arg-type]
                        threshold=threshold,
                        actual=actual,
                        missed_by=missed,
                    )
                )
    return failures


def check_data(gate: QualityGate | None, missing: dict[str, float]) -> list[GateFailure]:
    if gate is None or gate.max_missing_fraction is None:
        return []
    limit = gate.max_missing_fraction
    return [
        GateFailure(
            metric=f"missing:{column}",
            bound="max",
            threshold=limit,
            actual=fraction,
            missed_by=fraction - limit,
        )
        for column, fraction in missing.items()
        if fraction > limit
    ]


def summary(failures: list[GateFailure]) -> str:
    return "quality gate failed: " + "; ".join(failure.describe() for failure in failures)
