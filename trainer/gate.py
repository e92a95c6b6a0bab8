"""The quality gate: thresholds on metrics and on data quality.

``qualityGate.min`` and ``.max`` bound any metric of the result (test metrics and
``cv_mean``/``cv_std``); a metric the run did not produce (``roc_auc`` of a model without
probabilities) fails its bound. ``maxMissingFraction`` bounds the fraction of missing values of
every feature column, checked before training so a bad dataset fails fast.
"""

from __future__ import annotations

import math

from mlops_operator.api.trainingjob import QualityGate
from mlops_operator.api.workload import GateFailure


def check_metrics(gate: QualityGate | None, metrics: dict[str, float]) -> list[GateFailure]:
    failures: list[GateFailure] = []
    if gate is None:
        return failures
    for bound, thresholds in (("min", gate.min), ("max", gate.max)):
        for name, threshold in sorted((thresholds or {}).items()):
            actual = metrics.get(name)
            if actual is None or math.isnan(actual):
                failures.append(
                    GateFailure(metric=name, bound=bound, threshold=threshold, actual=None)
                )
                continue
            missed = threshold - actual if bound == "min" else actual - threshold
            if missed > 0:
                failures.append(
                    GateFailure(
                        metric=name,
                        bound=bound,
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
