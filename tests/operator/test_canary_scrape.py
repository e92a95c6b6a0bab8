"""The builtin source's parser on the model server's own exposition (no network)."""

from __future__ import annotations

import math

import pytest

from mlops_operator.canary import difference, summarize
from mlops_operator.metrics_sources import parse_exposition
from model_server.metrics import Metrics

pytestmark = pytest.mark.unit


def test_parse_the_model_servers_exposition() -> None:
    metrics = Metrics("iris", "canary")
    for _ in range(8):
        metrics.request(200, 0.004)
    metrics.request(500, 0.2)
    metrics.request(400, 0.001)
    metrics.feedback.labels("iris", "canary", "correct").inc(3)
    metrics.feedback.labels("iris", "canary", "incorrect").inc(1)
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
