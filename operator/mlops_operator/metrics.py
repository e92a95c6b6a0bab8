"""The operator's Prometheus metrics, on a registry of their own (served by operator.py).

Controllers wrap each reconciliation in :func:`reconciling`; the ModelDeployment controller
adds its own series (canary weight, analysis outcomes) to :data:`REGISTRY`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

RECONCILE_TOTAL = Counter(
    "mlops_reconcile_total",
    "Reconciliations by resource kind and result (ok, error).",
    ["kind", "result"],
    registry=REGISTRY,
)
RECONCILE_DURATION = Histogram(
    "mlops_reconcile_duration_seconds",
    "How long a reconciliation took, by resource kind.",
    ["kind"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
    registry=REGISTRY,
)
API_REQUESTS = Counter(
    "mlops_api_requests_total",
    "Requests the controllers sent to the Kubernetes API, by verb and resource (kopf's own "
    "watches, annotation patches and Events are not counted).",
    ["verb", "resource"],
    registry=REGISTRY,
)
LEADER = Gauge(
    "mlops_operator_leader",
    "1 while this replica holds the leader-election Lease and acts, 0 while it waits.",
    registry=REGISTRY,
)
TRAININGJOB_TRANSITIONS = Counter(
    "mlops_trainingjob_transitions_total",
    "TrainingJob phase changes by the new phase and its reason.",
    ["phase", "reason"],
    registry=REGISTRY,
)
SCHEDULED_RUNS = Counter(
    "mlops_trainingjob_scheduled_runs_total",
    "Runs created by scheduled TrainingJobs (result: created, skipped).",
    ["result"],
    registry=REGISTRY,
)


@contextmanager
def reconciling(kind: str) -> Iterator[None]:
    """Counts one reconciliation of ``kind`` (ok, or error when it raises) and times it."""
    started = time.perf_counter()
    try:
        yield
    except BaseException:
        RECONCILE_TOTAL.labels(kind=kind, result="error").inc()
        raise
    else:
        RECONCILE_TOTAL.labels(kind=kind, result="ok").inc()
    finally:
        RECONCILE_DURATION.labels(kind=kind).observe(time.perf_counter() - started)


CANARY_WEIGHT = Gauge(
    "mlops_canary_weight_percent",
    "Percent of live traffic the canary of a ModelDeployment gets.",
    ["namespace", "name"],
    registry=REGISTRY,
)
ANALYSIS_TOTAL = Counter(
    "mlops_analysis_total",
    "Canary analyses by verdict (Passed, Failed, Inconclusive).",
    ["verdict"],
    registry=REGISTRY,
)
ROLLOUT_TRANSITIONS = Counter(
    "mlops_rollout_transitions_total",
    "ModelDeployment rollout transitions by action (start, advance, promote, rollback, ...).",
    ["action"],
    registry=REGISTRY,
)
NOTIFICATIONS = Counter(
    "mlops_notifications_total",
    "Rollout notifications by sink and result (sent, failed, dropped: the sink's queue was full).",
    ["sink", "result"],
    registry=REGISTRY,
)
RETRAINING_RUNS = Counter(
    "mlops_retraining_runs_total",
    "TrainingJob runs started because a ModelDeployment's stable model drifted.",
    ["namespace", "name"],
    registry=REGISTRY,
)
