"""Drift (PSI) and feedback (online accuracy) bookkeeping."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_iris

from model_server.artifact import Metadata, NumericStats
from model_server.drift import DriftMonitor, psi
from model_server.errors import InvalidInput, NotFound
from model_server.feedback import FeedbackStore
from model_server.model import LoadedModel


def test_psi_zero_for_equal_distributions() -> None:
    share = np.array([0.2, 0.3, 0.5])
    assert psi(share, share * 1000) == pytest.approx(0.0)
    assert psi(share, np.array([0.5, 0.3, 0.2])) > 0.25


def test_drift_follows_the_served_inputs(iris_model: LoadedModel) -> None:
    metadata: Metadata = iris_model.metadata
    monitor = DriftMonitor(metadata, iris_model.feature_names, window=1000)
    assert monitor.psi() == {}
    frame, _ = load_iris(return_X_y=True, as_frame=True)
    rows = frame.sample(2000, replace=True, random_state=0).to_numpy()
    normal = [rows[:, i].copy() for i in range(4)]  # in distribution: resampled training rows
    stats = metadata.feature_stats["sepal_length"]
    assert isinstance(stats, NumericStats)
    monitor.observe(normal)
    before = monitor.psi()
    assert max(before.values()) < 0.25
    shifted = [c.copy() for c in normal]
    shifted[0] = shifted[0] + 3 * stats.std
    for _ in range(5):  # the window forgets the in-distribution rows
        monitor.observe(shifted)
    after = monitor.psi()
    assert after["sepal_length"] > 1.0
    assert after["sepal_width"] < 0.25


def test_drift_needs_a_minimum_sample(iris_model: LoadedModel) -> None:
    monitor = DriftMonitor(iris_model.metadata, iris_model.feature_names, window=1000)
    few = [np.full(5, 9.9) for _ in range(4)]  # 5 rows far out of distribution
    monitor.observe(few)
    assert monitor.psi() == {}
    assert monitor.effective_rows == 5
    monitor.observe([np.full(95, 9.9) for _ in range(4)])
    assert monitor.psi()["sepal_length"] > 1.0
    assert monitor.effective_rows == 100


def test_feedback_accuracy_and_bounds() -> None:
    store = FeedbackStore(capacity=2, classification=True)
    store.remember("a", [0, 1])
    store.remember("b", [2])
    store.remember("c", ["x"])  # forgets "a", the oldest
    assert len(store) == 2
    with pytest.raises(NotFound, match="'a'"):
        store.record("a", [0, 1])
    outcome = store.record("b", ["2"])
    assert (outcome.correct, outcome.incorrect) == (1, 0)
    assert store.record("c", ["y"]).incorrect == 1
    assert store.accuracy() == 0.5
    with pytest.raises(NotFound):
        store.record("b", [2])  # each id is accepted once


def test_feedback_names_a_class_of_the_model() -> None:
    store = FeedbackStore(capacity=10, classification=True, classes=["no", "yes"])
    store.remember("a", ["yes"])
    with pytest.raises(InvalidInput, match=r"truth 1 is not a class of this model .*'no', 'yes'"):
        store.record("a", [1])
    assert store.record("a", ["yes"]).correct == 1  # the refused feedback consumed nothing


def test_feedback_row_count_must_match() -> None:
    store = FeedbackStore(capacity=10, classification=True)
    store.remember("a", [0, 1])
    with pytest.raises(InvalidInput, match="2 rows"):
        store.record("a", [0])


def test_feedback_regression_error() -> None:
    store = FeedbackStore(capacity=10, classification=False)
    store.remember("a", [1.0, 2.0])
    assert store.record("a", [1.5, 1.0]).absolute_error == pytest.approx(1.5)


def test_feedback_rows_are_bounded() -> None:
    store = FeedbackStore(capacity=1, classification=True)
    store.remember("big", list(range(17)))  # more than capacity * 16 rows: not remembered
    assert len(store) == 0


def test_categorical_drift() -> None:
    metadata = Metadata.model_validate(
        {
            "name": "m",
            "version": "1",
            "task": "classification",
            "estimator": "x",
            "target": "y",
            "features": [{"name": "color", "dtype": "object"}],
            "dataDigest": "sha256:" + "0" * 64,
            "featureStats": {
                "color": {
                    "kind": "categorical",
                    "missing": 0.0,
                    "fractions": {"red": 0.5, "blue": 0.5},
                }
            },
        }
    )
    monitor = DriftMonitor(metadata, ["color"], window=100, min_rows=10)
    monitor.observe([np.array(["red", "blue"] * 50, dtype=object)])
    assert monitor.psi()["color"] < 0.01
    for _ in range(10):
        monitor.observe([np.array(["green", None, "red"] * 30, dtype=object)])
    assert monitor.psi()["color"] > 1.0


def test_remembered_requests_hold_the_documented_memory_at_most() -> None:
    # docs/model-server.md: at most ~600 bytes per remembered request with a 256-character id
    # and 16 rows, plus ~40 bytes per remembered row: ~12 MiB at the defaults.
    import tracemalloc

    capacity = 2_000
    store = FeedbackStore(capacity=capacity, classification=True, classes=[0, 1, 2])
    tracemalloc.start()
    try:
        for i in range(3 * capacity):  # three times over: the oldest are forgotten
            store.remember(f"{i:0256d}", np.array([0, 1, 2, 1] * 4).tolist())
        held = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert len(store) == capacity
    assert held < capacity * 600 + capacity * 16 * 40


def test_an_id_reused_with_another_prediction_gets_no_feedback() -> None:
    from model_server.errors import Conflict

    store = FeedbackStore(capacity=10, classification=True, classes=[0, 1])
    store.remember("order-1001", [0])
    store.remember("order-1001", [0])  # a retry: the same answer, nothing changes
    assert store.record("order-1001", [0]).correct == 1
    store.remember("order-1002", [0])
    store.remember("order-1002", [1])  # someone else's request under the same id
    with pytest.raises(Conflict, match="different predictions"):
        store.record("order-1002", [1])
    assert store.correct == 1
    assert store.incorrect == 0
