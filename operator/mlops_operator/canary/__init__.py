"""The canary/A-B/shadow rollout logic: pure (state + observations + clock -> decision).

Shared by the operator and the local runner; nothing here talks to Kubernetes or the network.
"""

from mlops_operator.canary.machine import (
    Decision,
    Plan,
    RolloutState,
    Thresholds,
    decide,
    evaluate,
)
from mlops_operator.canary.metrics import Counters, VariantMetrics, difference, summarize

__all__ = [
    "Counters",
    "Decision",
    "Plan",
    "RolloutState",
    "Thresholds",
    "VariantMetrics",
    "decide",
    "difference",
    "evaluate",
    "summarize",
]
