"""`mlops serve --explain` as a real process: the explain route answers shap attributions."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sklearn.datasets import load_iris
from sklearn.ensemble import RandomForestClassifier

from mlops_operator.api.trainingjob import Preprocessing
from model_server.testing import http, wait_ready, write_artifact
from trainer import pipeline

from .backends import free_port

pytestmark = pytest.mark.component

MLOPS = str(Path(sys.executable).with_name("mlops"))
FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]]


@pytest.fixture(scope="module")
def forest(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, object]:
    frame, target = load_iris(return_X_y=True, as_frame=True)
    frame.columns = FEATURES
    model = pipeline.build(
        Preprocessing(), FEATURES, [], RandomForestClassifier(n_estimators=20, random_state=0)
    )
    directory = tmp_path_factory.mktemp("forest") / "artifact"
    digest = write_artifact(directory, model, frame, target, name="iris")
    return directory, digest, model


@pytest.fixture(scope="module")
def server(forest: tuple[Path, str, object]) -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen(
        [
            MLOPS,
            "serve",
            f"--model-uri={forest[0]}",
            f"--model-digest={forest[1]}",
            "--host=127.0.0.1",
            f"--port={port}",
            "--grpc-port=-1",
            "--explain",
            "--explain-max-rows=10",
        ],
        env={**os.environ},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, timeout=60)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def body(rows: list[list[float]]) -> dict[str, object]:
    data = [value for row in rows for value in row]
    return {
        "id": "explain-1",
        "inputs": [{"name": "x", "shape": [len(rows), 4], "datatype": "FP64", "data": data}],
    }


def test_explain_route_answers_additive_attributions(
    server: str, forest: tuple[Path, str, object]
) -> None:
    status, answer = http(server, "POST", "/v2/models/iris/explain", body(ROWS))
    assert status == 200, answer
    assert answer["model_name"] == "iris"
    assert answer["id"] == "explain-1"
    assert answer["explainer"] == "tree"
    assert answer["output"] == "probability"
    assert answer["features"] == FEATURES
    assert answer["targets"] == [0, 1, 2]
    assert len(answer["explanations"]) == 3
    model = forest[2]
    import pandas as pd

    proba = model.predict_proba(pd.DataFrame(ROWS, columns=FEATURES))  # type: ignore[attr-defined]
    for row, expected_proba in zip(answer["explanations"], proba, strict=True):
        assert set(row["attributions"]) == set(FEATURES)
        for target, expected in enumerate(answer["expected_value"]):
            total = expected + sum(values[target] for values in row["attributions"].values())
            assert total == pytest.approx(expected_proba[target], abs=1e-6)
            assert row["output"][target] == pytest.approx(expected_proba[target], abs=1e-9)
    # the setosa row owes its setosa probability to the petals, not the sepals
    setosa = answer["explanations"][0]["attributions"]
    petals = setosa["petal_length"][0] + setosa["petal_width"][0]
    assert petals > abs(setosa["sepal_width"][0])


def test_explain_versioned_route_and_metrics(server: str) -> None:
    status, _ = http(server, "POST", "/v2/models/iris/versions/1/explain", body(ROWS[:1]))
    assert status == 200
    status, metrics = http(server, "GET", "/metrics")
    text = metrics.decode()
    assert 'mlops_explain_duration_seconds_count{explainer="tree",model="iris"' in text
    assert "mlops_explained_rows_total" in text
    assert "mlops_explain_model_evaluations_total" in text
    status, meta = http(server, "GET", "/v2")
    assert "model_explain" in meta["extensions"]


def test_explain_refuses_bad_input_with_a_4xx(server: str) -> None:
    status, answer = http(server, "POST", "/v2/models/iris/explain", body(ROWS * 4))
    assert status == 400
    assert "at most 10" in answer["error"]
    status, answer = http(server, "POST", "/v2/models/iris/explain", "{not json")
    assert status == 400
    status, _ = http(server, "GET", "/v2/models/iris/explain")
    assert status == 405
