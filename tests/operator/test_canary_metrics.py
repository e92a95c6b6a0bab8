"""Metrics math: differencing counters, error rate, p99 from buckets, accuracy."""

from __future__ import annotations

import math

import pytest

from mlops_operator.canary.metrics import (
    Counters,
    difference,
    increase,
    lost,
    quantile,
    summarize,
)

pytestmark = pytest.mark.unit
INF = math.inf


def test_quantile_interpolates_like_prometheus() -> None:
    # 100 observations: 50 under 0.1, 40 in (0.1, 0.5], 10 in (0.5, 1].
    buckets = {0.1: 50.0, 0.5: 90.0, 1.0: 100.0, INF: 100.0}
    assert quantile(0.5, buckets) == pytest.approx(0.1)
    assert quantile(0.99, buckets) == pytest.approx(0.5 + 0.5 * 9 / 10)
    assert quantile(0.25, buckets) == pytest.approx(0.05)


def test_quantile_in_the_inf_bucket_answers_the_highest_bound() -> None:
    assert quantile(0.99, {0.1: 10.0, 1.0: 50.0, INF: 100.0}) == 1.0


@pytest.mark.parametrize("buckets", [{}, {0.1: 0.0, INF: 0.0}, {0.1: 3.0}])
def test_quantile_without_observations(buckets: dict[float, float]) -> None:
    assert quantile(0.99, buckets) is None


def test_increase_and_reset() -> None:
    before = Counters(requests=100, errors=5, buckets={0.1: 90.0, INF: 100.0}, correct=4)
    after = Counters(requests=150, errors=6, buckets={0.1: 130.0, INF: 150.0}, correct=9)
    assert increase(before, after) == Counters(
        requests=50, errors=1, buckets={0.1: 40.0, INF: 50.0}, correct=5
    )
    restarted = Counters(requests=7, errors=0, buckets={0.1: 7.0, INF: 7.0})
    assert increase(before, restarted) == restarted


def test_difference_over_servers_that_come_and_go() -> None:
    previous = {"a": Counters(requests=10, errors=1), "gone": Counters(requests=99)}
    current = {"a": Counters(requests=30, errors=3), "new": Counters(requests=5, errors=1)}
    assert difference(previous, current) == Counters(requests=25, errors=3, buckets={})


def test_servers_gone_or_restarted_are_lost_to_the_interval() -> None:
    previous = {
        "a": Counters(requests=10),
        "gone": Counters(requests=99),
        "restarted": Counters(requests=50, errors=5),
    }
    current = {
        "a": Counters(requests=30),
        "new": Counters(requests=5),
        "restarted": Counters(requests=3),
    }
    assert lost(previous, current) == ("gone", "restarted")
    assert lost(previous, previous) == ()


def test_summarize() -> None:
    counters = Counters(
        requests=200,
        errors=10,
        buckets={0.01: 150.0, 0.1: 198.0, 1.0: 200.0, INF: 200.0},
        correct=30,
        incorrect=10,
    )
    metrics = summarize(counters)
    assert metrics.requests == 200
    assert metrics.error_rate == pytest.approx(0.05)
    assert metrics.latency_p99_ms == pytest.approx((0.1 + 0.9 * 0 / 2) * 1000)
    assert metrics.accuracy == pytest.approx(0.75)
    assert summarize(Counters()).error_rate is None


def test_counters_round_trip_through_the_status() -> None:
    counters = Counters(requests=3, errors=1, buckets={0.005: 1.0, INF: 3.0}, correct=2)
    data = counters.to_dict()
    assert data["buckets"] == {"0.005": 1.0, "+Inf": 3.0}
    assert Counters.from_dict(data) == counters
