"""The builtin source's parser on the model server's own exposition (no network)."""

from __future__ import annotations

import math
import re

import pytest

from mlops_operator.canary import difference, summarize
from mlops_operator.metrics_sources import (
    PrometheusSource,
    QueryError,
    parse_exposition,
    sources_for,
)
from model_server.metrics import Metrics

pytestmark = pytest.mark.unit


def test_parse_the_model_servers_exposition() -> None:
    metrics = Metrics("iris", "canary")
    for _ in range(8):
        metrics.request(200, 0.004)
    metrics.request(500, 0.2)
    metrics.request(400, 0.001)
    metrics.feedback.labels("iris", "canary", "correct", "direct").inc(3)
    metrics.feedback.labels("iris", "canary", "incorrect", "router").inc(1)
    counters = parse_exposition(metrics.exposition().decode())
    assert counters.requests == 10
    assert counters.errors == 1
    assert counters.buckets[math.inf] == 10
    assert counters.buckets[0.005] == 9
    assert (counters.correct, counters.incorrect) == (3, 1)
    assert summarize(counters).accuracy == 0.75


def test_difference_between_two_scrapes() -> None:
    metrics = Metrics("iris", "stable")
    metrics.request(200, 0.01)
    before = {"pod": parse_exposition(metrics.exposition().decode())}
    for _ in range(3):
        metrics.request(503, 0.01)
    metrics.request(200, 0.01)
    after = {"pod": parse_exposition(metrics.exposition().decode())}
    interval = summarize(difference(before, after))
    assert interval.requests == 4
    assert interval.error_rate == 0.75
    assert interval.latency_p99_ms is not None
    assert interval.latency_p99_ms <= 10.0


def test_a_prometheus_url_that_urllib_refuses_is_a_query_error() -> None:
    """Not an exception out of every tick: the analysis is inconclusive, the rollout holds."""
    with pytest.raises(QueryError, match="prometheus monitoring"):
        PrometheusSource("http:// prometheus monitoring").query("up", 0)


def test_behind_the_builtin_router_only_the_requests_it_proved_count() -> None:
    """Requests sent to a server directly (or with a forged proof) are source="direct": they
    move neither the counters nor the latency the analysis reads."""
    metrics = Metrics("iris", "canary")
    for _ in range(3):
        metrics.request(200, 0.004, "router")
    for _ in range(50):
        metrics.request(500, 2.0, "direct")
    metrics.feedback.labels("iris", "canary", "correct", "router").inc(2)
    metrics.feedback.labels("iris", "canary", "incorrect", "direct").inc(40)
    metrics.compared("agree", 5, "router")
    metrics.compared("disagree", 30, "direct")
    text = metrics.exposition().decode()
    routed = parse_exposition(text, sources_for(proves_source=True))
    assert (routed.requests, routed.errors) == (3, 0)
    assert routed.buckets[math.inf] == 3
    assert routed.buckets[0.005] == 3
    assert (routed.correct, routed.incorrect, routed.agree, routed.disagree) == (2, 0, 5, 0)
    every = parse_exposition(text, sources_for(proves_source=False))
    assert (every.requests, every.errors, every.buckets[math.inf]) == (53, 50, 53)
    assert (every.correct, every.incorrect, every.agree, every.disagree) == (2, 40, 5, 30)


def test_the_prometheus_queries_keep_only_the_proved_requests_behind_the_builtin_router() -> None:
    class Recording(PrometheusSource):
        def __init__(self, sources: frozenset[str] | None) -> None:
            super().__init__("http://prometheus:9090", sources=sources)
            self.asked: list[str] = []

        def query(self, expr: str, at: float) -> list[dict[str, object]]:
            self.asked.append(expr)
            return []

    routed = Recording(sources_for(proves_source=True))
    routed.increases("ml", "iris", "canary", 60, 1000.0)
    by_metric = {re.findall(r"increase\((\w+)\{", expr)[0]: expr for expr in routed.asked}
    sel = 'namespace="ml",model="iris",variant="canary"'
    assert by_metric["mlops_requests_total"] == (
        f'sum by (code) (increase(mlops_requests_total{{{sel},source="router"}}[60s]))'
    )
    assert 'source="router"' in by_metric["mlops_feedback_total"]
    assert 'source="router"' in by_metric["mlops_request_duration_seconds_bucket"]
    assert 'source="router"' in by_metric["mlops_reference_agreement_total"]
    every = Recording(sources_for(proves_source=False))
    every.increases("ml", "iris", "canary", 60, 1000.0)
    assert len(every.asked) == len(routed.asked)
    assert not any("source" in expr for expr in every.asked)
