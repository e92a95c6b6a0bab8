"""The quality gate: bounds on metrics and data quality; a failing model is not published."""

from __future__ import annotations

import pytest

from tests.trainer.conftest import Trainer, churn_spec

IRIS = {"dataset": {"builtin": "iris"}, "model": {"estimator": "sklearn.svm.SVC"}}


def test_a_passing_gate_publishes(train: Trainer) -> None:
    run = train({**IRIS, "qualityGate": {"min": {"accuracy": 0.8, "cv_mean": 0.8}}})
    assert run.code == 0
    assert run.result["gateFailures"] == []
    assert run.result["model"]["version"] == "v1"


def test_a_failing_gate_says_which_metric_missed_by_how_much(train: Trainer) -> None:
    spec = {
        "dataset": {"builtin": "wine"},
        "model": {
            "estimator": "sklearn.dummy.DummyClassifier",
            "params": {"strategy": "most_frequent"},
        },
        "qualityGate": {"min": {"accuracy": 0.9, "f1_macro": 0.1}, "max": {"cv_std": 0.5}},
    }
    run = train(spec)
    assert run.code == 10
    result = run.result
    assert result["phase"] == "Failed"
    assert result["reason"] == "QualityGateFailed"
    assert "model" not in result
    (failure,) = [f for f in result["gateFailures"] if f["metric"] == "accuracy"]
    assert failure["bound"] == "min"
    assert failure["threshold"] == 0.9
    assert failure["missedBy"] == pytest.approx(0.9 - failure["actual"])
    assert "accuracy" in result["message"]
    assert "missed by" in result["message"]
    assert result["metrics"]["accuracy"] < 0.5  # the metrics are reported all the same
    assert run.files_in_store() == []


def test_max_bounds_fail_when_exceeded(train: Trainer) -> None:
    spec = {
        "dataset": {"builtin": "diabetes"},
        "model": {"estimator": "sklearn.linear_model.Ridge"},
        "qualityGate": {"max": {"mse": 100.0}},
    }
    run = train(spec)
    assert run.code == 10
    (failure,) = run.result["gateFailures"]
    assert failure["metric"] == "mse"
    assert failure["bound"] == "max"
    assert failure["missedBy"] > 0


def test_a_metric_that_is_not_defined_fails_its_bound(train: Trainer) -> None:
    # A hard-margin classifier without probabilities has no roc_auc.
    spec = {
        "dataset": {"builtin": "iris"},
        "model": {"estimator": "sklearn.linear_model.RidgeClassifier"},
        "qualityGate": {"min": {"roc_auc": 0.5}},
    }
    run = train(spec)
    assert run.code == 10
    assert "roc_auc" not in run.result["metrics"]
    assert "roc_auc was not measured" in run.result["message"]


def test_max_missing_fraction_fails_before_training(train: Trainer, churn_pvc: str) -> None:
    run = train(churn_spec(churn_pvc, qualityGate={"maxMissingFraction": 0.05}))
    assert run.code == 10
    (failure,) = run.result["gateFailures"]
    assert failure["metric"] == "missing:age"
    assert failure["actual"] > 0.05
    assert run.result["metrics"] == {}
    assert run.files_in_store() == []


def test_max_missing_fraction_passes_within_bounds(train: Trainer, churn_pvc: str) -> None:
    run = train(churn_spec(churn_pvc, qualityGate={"maxMissingFraction": 0.2}))
    assert run.code == 0, run.result["message"]
