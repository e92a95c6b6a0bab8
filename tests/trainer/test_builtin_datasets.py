"""Real training on the datasets that ship with scikit-learn."""

from __future__ import annotations

import pytest

from mlops_operator.api.trainingjob import CLASSIFICATION_METRICS, REGRESSION_METRICS
from tests.trainer.conftest import Trainer

CASES = [
    ("iris", "sklearn.linear_model.LogisticRegression", {"max_iter": 500}, "accuracy", 0.85),
    ("wine", "sklearn.tree.DecisionTreeClassifier", {"max_depth": 4}, "accuracy", 0.8),
    ("breast_cancer", "sklearn.neighbors.KNeighborsClassifier", {}, "accuracy", 0.85),
    ("digits", "sklearn.naive_bayes.GaussianNB", {}, "accuracy", 0.7),
    ("diabetes", "sklearn.linear_model.Ridge", {"alpha": 1.0}, "r2", 0.3),
]


@pytest.mark.parametrize(("dataset", "estimator", "params", "headline", "floor"), CASES)
def test_trains_and_publishes(  # noqa: PLR0917
    train: Trainer,
    dataset: str,
    estimator: str,
    params: dict[str, object],
    headline: str,
    floor: float,
) -> None:
    run = train(
        {"dataset": {"builtin": dataset}, "model": {"estimator": estimator, "params": params}},
        name=dataset.replace("_", "-"),
    )
    assert run.code == 0, run.result["message"]
    result = run.result
    assert result["phase"] == "Succeeded"
    assert result["reason"] == "Trained"
    assert result["metrics"][headline] >= floor
    assert result["score"].startswith(f"{headline}=")
    expected = REGRESSION_METRICS if headline == "r2" else CLASSIFICATION_METRICS
    assert set(result["metrics"]) == {*expected, "cv_mean", "cv_std"}
    assert result["model"]["version"] == "v1"
    assert result["model"]["digest"].startswith("sha256:")
    assert result["onnx"]["verified"], result["onnx"]
    assert result["onnx"]["rows"] > 0
    assert sorted(p.name for p in run.artifact().iterdir()) == [
        "digest",
        "metadata.json",
        "model.onnx",
        "model.skops",
        "report.html",
    ]
    assert "Succeeded" in run.stdout
    assert len(result["importance"]) <= 10


def test_regression_reports_the_target_range(train: Trainer) -> None:
    run = train(
        {"dataset": {"builtin": "diabetes"}, "model": {"estimator": "sklearn.linear_model.Ridge"}}
    )
    data = run.result["data"]
    assert data["rows"] == 442
    assert data["targetRange"]["min"] < data["targetRange"]["max"]
    assert run.result["metrics"]["rmse"] ** 2 == pytest.approx(
        run.result["metrics"]["mse"], rel=1e-4
    )


def test_classification_reports_balance_and_confusion_matrix(train: Trainer) -> None:
    run = train(
        {
            "dataset": {"builtin": "iris"},
            "model": {"estimator": "sklearn.tree.DecisionTreeClassifier"},
            "split": {"testSize": 0.2, "seed": 1},
        }
    )
    result = run.result
    assert result["data"]["classBalance"] == {"0": 50, "1": 50, "2": 50}
    matrix = result["confusionMatrix"]
    assert matrix["labels"] == [0, 1, 2]
    assert sum(map(sum, matrix["matrix"])) == 30
    assert len(result["importance"]) == 4
