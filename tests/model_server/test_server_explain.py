"""Explanations: shap attributions in the input feature names, additive for exact explainers."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pytest
from sklearn.datasets import load_diabetes, load_iris
from sklearn.ensemble import GradientBoostingRegressor, RandomForestClassifier
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.neighbors import KNeighborsClassifier

from mlops_operator.api.trainingjob import Preprocessing
from model_server.artifact import Metadata
from model_server.dataplane import DataPlane
from model_server.errors import ExplainDisabled, InvalidInput
from model_server.explain import Explainer, background
from model_server.model import RuntimeOptions, load
from model_server.settings import ServerSettings
from model_server.testing import feature_stats, iris_artifact, write_artifact
from trainer import pipeline


def iris_with_colour() -> tuple[pd.DataFrame, pd.Series]:
    frame, target = load_iris(return_X_y=True, as_frame=True)
    frame["colour"] = np.where(frame["sepal length (cm)"] > 5.8, "red", "blue")
    return frame, target


def metadata(frame: pd.DataFrame, task: str) -> Metadata:
    return Metadata.model_validate(
        {
            "name": "m",
            "version": "1",
            "task": task,
            "estimator": "x",
            "target": "y",
            "features": [{"name": c, "dtype": str(frame[c].dtype)} for c in frame.columns],
            "dataDigest": "sha256:" + "0" * 64,
            "featureStats": feature_stats(frame),
        }
    )


def fitted(frame: pd.DataFrame, target: pd.Series, estimator: Any) -> Any:
    numeric = [c for c in frame.columns if pd.api.types.is_numeric_dtype(frame[c])]
    categorical = [c for c in frame.columns if c not in numeric]
    return pipeline.build(Preprocessing(), numeric, categorical, estimator).fit(frame, target)


def additivity_error(explanation: Any) -> float:
    total = np.asarray(explanation.expected_value)[None, :] + explanation.values.sum(axis=1)
    return float(np.abs(total - explanation.outputs).max())


@pytest.mark.parametrize(
    ("estimator", "method", "output"),
    [
        (RandomForestClassifier(n_estimators=20, random_state=0), "tree", "probability"),
        (LogisticRegression(max_iter=1000), "linear", "margin"),
    ],
)
def test_exact_attributions_add_up_to_the_output_minus_the_expected_value(
    estimator: Any, method: str, output: str
) -> None:
    frame, target = iris_with_colour()
    model = fitted(frame, target, estimator)
    explanation = Explainer(model, metadata(frame, "classification")).explain(frame.iloc[:20])
    assert explanation.method == method
    assert explanation.output == output
    assert explanation.features == list(frame.columns)  # one-hot columns summed back
    assert explanation.targets == [0, 1, 2]
    assert explanation.values.shape == (20, 5, 3)
    assert additivity_error(explanation) < 1e-6
    if output == "probability":
        np.testing.assert_allclose(explanation.outputs, model.predict_proba(frame.iloc[:20]))


@pytest.mark.parametrize(
    "estimator", [GradientBoostingRegressor(n_estimators=30, random_state=0), Ridge()]
)
def test_regressor_attributions_add_up_to_the_prediction(estimator: Any) -> None:
    frame, target = load_diabetes(return_X_y=True, as_frame=True)
    model = fitted(frame, target, estimator)
    explanation = Explainer(model, metadata(frame, "regression")).explain(frame.iloc[:10])
    assert explanation.output == "prediction"
    assert explanation.targets == ["y"]
    np.testing.assert_allclose(explanation.outputs[:, 0], model.predict(frame.iloc[:10]))
    assert additivity_error(explanation) < 1e-6


def test_binary_margin_explains_the_positive_class() -> None:
    frame, target = iris_with_colour()
    target = (target == 1).astype(int)
    model = fitted(frame, target, LogisticRegression(max_iter=1000))
    explanation = Explainer(model, metadata(frame, "classification")).explain(frame.iloc[:5])
    assert explanation.targets == [1]
    np.testing.assert_allclose(explanation.outputs[:, 0], model.decision_function(frame.iloc[:5]))
    assert additivity_error(explanation) < 1e-6


def test_other_estimators_get_the_bounded_permutation_explainer() -> None:
    frame, target = iris_with_colour()
    model = fitted(frame, target, KNeighborsClassifier())
    explainer = Explainer(model, metadata(frame, "classification"), samples=50)
    explanation = explainer.explain(frame.iloc[:3])
    assert explanation.method == "permutation"
    assert explanation.evaluations == 3 * 50
    assert additivity_error(explanation) < 1e-6  # permutation values telescope


def test_the_important_feature_gets_the_large_attribution() -> None:
    frame, target = iris_with_colour()
    model = fitted(frame, target, RandomForestClassifier(n_estimators=30, random_state=0))
    explanation = Explainer(model, metadata(frame, "classification")).explain(frame)
    magnitude = np.abs(explanation.values).mean(axis=(0, 2))
    ranked = [explanation.features[i] for i in np.argsort(-magnitude)]
    assert set(ranked[:2]) <= {"petal length (cm)", "petal width (cm)", "sepal length (cm)"}
    assert ranked[-1] != "petal width (cm)"


def test_background_comes_from_the_training_statistics_not_rows() -> None:
    frame, _ = iris_with_colour()
    rows = background(metadata(frame, "classification"))
    assert list(rows.columns) == list(frame.columns)
    assert len(rows) == 9
    assert set(rows["colour"]) == {"red", "blue"}
    edges = feature_stats(frame)["petal length (cm)"]["binEdges"]
    assert rows["petal length (cm)"].min() == edges[0]
    assert rows["petal length (cm)"].max() == edges[-1]


@pytest.fixture(scope="module")
def forest(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    frame, target = load_iris(return_X_y=True, as_frame=True)
    frame.columns = ["sl", "sw", "pl", "pw"]
    directory = tmp_path_factory.mktemp("forest") / "artifact"
    model = fitted(frame, target, RandomForestClassifier(n_estimators=10, random_state=0))
    return directory, write_artifact(directory, model, frame, target, name="iris")


BODY = {
    "inputs": [
        {
            "name": "x",
            "shape": [2, 4],
            "datatype": "FP64",
            "data": [5.1, 3.5, 1.4, 0.2, 6.7, 3.0, 5.2, 2.3],
        }
    ]
}


def test_onnx_predicts_and_the_pipeline_explains(tmp_path: Path) -> None:
    digest = iris_artifact(tmp_path, onnx=True)
    loaded = load(str(tmp_path), digest, options=RuntimeOptions(explain=True))
    assert loaded.runtime_name == "onnx"
    assert loaded.explainer is not None
    assert loaded.explainer.method == "linear"
    assert load(str(tmp_path), digest).explainer is None  # off by default


def test_data_plane_explains_and_counts(forest: tuple[Path, str]) -> None:
    settings = ServerSettings(model_uri=str(forest[0]), model_digest=forest[1], explain=True)
    plane = DataPlane(settings)
    plane.load()
    answer = orjson.loads(asyncio.run(plane.explain("iris", None, orjson.dumps(BODY))))
    assert answer["explainer"] == "tree"
    assert answer["features"] == ["sl", "sw", "pl", "pw"]
    assert len(answer["explanations"]) == 2
    for row in answer["explanations"]:
        for target, expected in enumerate(answer["expected_value"]):
            total = expected + sum(v[target] for v in row["attributions"].values())
            assert total == pytest.approx(row["output"][target], abs=1e-6)
    exposition = plane.metrics_exposition().decode()
    assert 'mlops_explained_rows_total{explainer="tree",model="iris",variant="stable"} 2.0' in (
        exposition
    )
    assert "mlops_explain_duration_seconds_count" in exposition


def test_explain_is_refused_when_off_or_too_large(forest: tuple[Path, str]) -> None:
    off = DataPlane(ServerSettings(model_uri=str(forest[0]), model_digest=forest[1]))
    off.load()
    with pytest.raises(ExplainDisabled, match="not switched on"):
        asyncio.run(off.explain("iris", None, orjson.dumps(BODY)))
    small = DataPlane(
        ServerSettings(
            model_uri=str(forest[0]), model_digest=forest[1], explain=True, explain_max_rows=1
        )
    )
    small.load()
    with pytest.raises(InvalidInput, match="at most 1 per request"):
        asyncio.run(small.explain("iris", None, orjson.dumps(BODY)))
