"""The model server over real HTTP on loopback (in-process uvicorn on a free port)."""

from __future__ import annotations

import concurrent.futures
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from model_server import model as model_module
from model_server.dataplane import DataPlane
from model_server.settings import ServerSettings
from model_server.testing import http, iris_artifact, running_server, wait_ready

pytestmark = pytest.mark.component

ROW = [5.1, 3.5, 1.4, 0.2]  # setosa, class 0
FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
INFER_ONE = b'{"inputs":[{"name":"x","shape":[1,4],"datatype":"FP64","data":[1,2,3,4]}]}'


def infer_body(rows: list[list[float]], **extra: Any) -> dict[str, Any]:
    flat = [v for row in rows for v in row]
    return {
        "inputs": [{"name": "input-0", "shape": [len(rows), 4], "datatype": "FP64", "data": flat}],
        **extra,
    }


def metric_samples(base: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    status, text = http(base, "GET", "/metrics")
    assert status == 200
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text.decode())
        for s in family.samples
    }


def value(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    """The sample with exactly these labels, summed over ``source`` (router, direct) unless
    that is given too."""
    want = frozenset({"model": "iris", "variant": "canary", **labels}.items())
    return sum(
        number
        for (sample, have), number in samples.items()
        if sample == name and want <= have and {k for k, _ in have - want} <= {"source"}
    )


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    directory = tmp_path_factory.mktemp("iris") / "artifact"
    return directory, iris_artifact(directory)


def settings_for(artifact: tuple[Path, str], **overrides: Any) -> ServerSettings:
    return ServerSettings(
        model_uri=f"file://{artifact[0]}",
        model_digest=artifact[1],
        variant="canary",
        **overrides,
    )


@pytest.fixture
def server(artifact: tuple[Path, str]) -> Iterator[str]:
    with running_server(
        settings_for(artifact, max_request_bytes=64 * 1024, max_batch_wait=0.002)
    ) as base:
        wait_ready(base)
        yield base


# protocol conformance -------------------------------------------------------------------------


def test_health_and_metadata(server: str) -> None:
    assert http(server, "GET", "/v2/health/live") == (200, {"live": True})
    assert http(server, "GET", "/v2/health/ready") == (200, {"ready": True})
    status, metadata = http(server, "GET", "/v2")
    assert status == 200
    assert metadata["name"] == "mlops-model-server"
    status, model = http(server, "GET", "/v2/models/iris")
    assert status == 200
    assert model["versions"] == ["1"]
    assert [i["name"] for i in model["inputs"]] == FEATURES
    assert http(server, "GET", "/v2/models/iris/versions/1")[1] == model
    assert http(server, "GET", "/v2/models/iris/ready") == (200, {"name": "iris", "ready": True})
    assert http(server, "GET", "/v2/models/iris/versions/1/ready")[0] == 200


def test_infer(server: str) -> None:
    status, response = http(
        server,
        "POST",
        "/v2/models/iris/infer",
        infer_body(
            [ROW, [6.7, 3.0, 5.2, 2.3]],
            id="req-1",
            outputs=[{"name": "predict"}, {"name": "predict_proba"}],
        ),
    )
    assert status == 200, response
    assert response["id"] == "req-1"
    assert response["model_name"] == "iris"
    assert response["model_version"] == "1"
    predict, proba = response["outputs"]
    assert predict == {"name": "predict", "shape": [2], "datatype": "INT64", "data": [0, 2]}
    assert proba["name"] == "predict_proba"
    assert proba["shape"] == [2, 3]
    assert np.allclose(np.reshape(proba["data"], (2, 3)).sum(axis=1), 1.0)


def test_infer_one_input_per_feature_and_versions_path(server: str) -> None:
    inputs = [
        {"name": name, "shape": [1], "datatype": "FP32", "data": [value]}
        for name, value in zip(FEATURES, ROW, strict=True)
    ]
    status, response = http(server, "POST", "/v2/models/iris/versions/1/infer", {"inputs": inputs})
    assert status == 200, response
    assert response["outputs"][0]["data"] == [0]
    assert len(response["id"]) == 32


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "words"),
    [
        ("POST", "/v2/models/iris/infer", b"{nope", 400, "not valid JSON"),
        ("POST", "/v2/models/iris/infer", infer_body([ROW[:3]]), 400, "shape"),
        (
            "POST",
            "/v2/models/iris/infer",
            {
                "inputs": [
                    {"name": "x", "shape": [1, 4], "datatype": "FP64", "data": [1, None, 2, 3]}
                ]
            },
            400,
            "missing value",
        ),
        (
            "POST",
            "/v2/models/iris/infer",
            {
                "inputs": [
                    {"name": "x", "shape": [1, 4], "datatype": "FP64", "data": ["a", 1, 2, 3]}
                ]
            },
            400,
            "FP64",
        ),
        ("POST", "/v2/models/other/infer", infer_body([ROW]), 404, "'other'"),
        ("POST", "/v2/models/iris/versions/7/infer", infer_body([ROW]), 404, "version '7'"),
        ("GET", "/v2/models/other", None, 404, "'other'"),
        ("GET", "/v2/models/other/ready", None, 404, "'other'"),
        ("GET", "/v2/models/iris/infer", None, 405, "POST"),
        ("POST", "/v2/health/live", b"", 405, "GET"),
        ("GET", "/v3/nothing", None, 404, "no such endpoint"),
        ("POST", "/v2/models/iris/infer", b"x" * (65 * 1024), 413, "at most 65536"),
    ],
)
def test_errors_are_json_naming_the_problem(  # noqa: PLR0917
    server: str, method: str, path: str, body: Any, status: int, words: str
) -> None:
    got, response = http(server, method, path, body)
    assert got == status, response
    assert set(response) == {"error"}
    assert words in response["error"]


def test_chunked_body_over_the_limit(server: str) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(100):
            yield b"x" * 1024

    import http.client
    from urllib.parse import urlsplit

    parts = urlsplit(server)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port)
    connection.request("POST", "/v2/models/iris/infer", body=chunks(), encode_chunked=True)
    response = connection.getresponse()
    assert response.status == 413
    connection.close()


def test_openapi_served(server: str) -> None:
    status, document = http(server, "GET", "/v2/openapi.json")
    assert status == 200
    assert "/v2/models/{name}/infer" in document["paths"]


def test_tritonclient_works_unchanged(server: str) -> None:
    import tritonclient.http as triton

    client = triton.InferenceServerClient(server.removeprefix("http://"))
    try:
        assert client.is_server_live()
        assert client.is_server_ready()
        assert client.is_model_ready("iris")
        assert client.get_model_metadata("iris")["name"] == "iris"
        data = np.array([ROW, [6.7, 3.0, 5.2, 2.3]], dtype=np.float32)
        tensor = triton.InferInput("input-0", list(data.shape), "FP32")
        tensor.set_data_from_numpy(data, binary_data=False)
        outputs = [
            triton.InferRequestedOutput("predict", binary_data=False),
            triton.InferRequestedOutput("predict_proba", binary_data=False),
        ]
        result = client.infer("iris", [tensor], outputs=outputs, request_id="triton-1")
        assert result.get_response()["id"] == "triton-1"
        assert result.as_numpy("predict").tolist() == [0, 2]
        assert result.as_numpy("predict_proba").shape == (2, 3)
    finally:
        client.close()


# metrics, drift, feedback ---------------------------------------------------------------------


def test_metrics_after_known_requests(server: str) -> None:
    def one(i: int) -> int:
        return http(server, "POST", "/v2/models/iris/infer", infer_body([ROW] * (1 + i % 3)))[0]

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(one, range(30)))
    assert codes == [200] * 30
    for _ in range(4):
        assert http(server, "POST", "/v2/models/iris/infer", infer_body([ROW[:2]]))[0] == 400
    assert http(server, "POST", "/v2/models/nope/infer", infer_body([ROW]))[0] == 404
    samples = metric_samples(server)
    assert value(samples, "mlops_requests_total", code="200") == 30
    assert value(samples, "mlops_requests_total", code="400") == 4
    assert value(samples, "mlops_requests_total", code="404") == 1
    assert value(samples, "mlops_input_errors_total", reason="shape") == 4
    rows = sum(1 + i % 3 for i in range(30))
    assert value(samples, "mlops_predictions_total", **{"class": "0"}) == rows
    assert value(samples, "mlops_batch_size_sum") == rows
    batches = value(samples, "mlops_batch_size_count")
    assert 1 <= batches <= 30  # concurrent requests share predict calls
    assert value(samples, "mlops_request_duration_seconds_count") == 35
    assert value(samples, "mlops_model_ready") == 1
    assert (
        value(
            samples,
            "mlops_model_info",
            version="1",
            digest=http(server, "GET", "/v2/models/iris")[1]["parameters"]["digest"],
        )
        == 1
    )


def test_drift_moves_with_shifted_inputs(server: str) -> None:
    from sklearn.datasets import load_iris

    frame, _ = load_iris(return_X_y=True, as_frame=True)
    rows = frame.sample(500, replace=True, random_state=1).to_numpy().tolist()
    for start in range(0, 500, 100):
        assert (
            http(server, "POST", "/v2/models/iris/infer", infer_body(rows[start : start + 100]))[0]
            == 200
        )
    before = metric_samples(server)
    psi = {f: value(before, "mlops_feature_drift_psi", feature=f) for f in FEATURES}
    assert max(psi.values()) < 0.25, psi
    shifted = [[r[0] + 4.0, *r[1:]] for r in rows]  # sepal length far above anything seen
    for _ in range(10):
        for start in range(0, 500, 100):
            http(server, "POST", "/v2/models/iris/infer", infer_body(shifted[start : start + 100]))
    after = metric_samples(server)
    assert value(after, "mlops_feature_drift_psi", feature="sepal_length") > 1.0
    assert value(after, "mlops_feature_drift_psi", feature="sepal_width") < 0.25
    assert value(after, "mlops_feature_drift_rows") >= 500  # what the PSI is based on


def test_feedback_moves_online_accuracy(server: str) -> None:
    setosa, virginica = ROW, [6.7, 3.0, 5.2, 2.3]
    status, response = http(
        server, "POST", "/v2/models/iris/infer", infer_body([setosa, virginica], id="fb-1")
    )
    assert status == 200
    assert response["outputs"][0]["data"] == [0, 2]
    status, outcome = http(
        server, "POST", "/v2/models/iris/feedback", {"id": "fb-1", "truth": [0, 1]}
    )
    assert status == 200, outcome
    assert (outcome["correct"], outcome["incorrect"]) == (1, 1)
    samples = metric_samples(server)
    assert value(samples, "mlops_feedback_total", outcome="correct") == 1
    assert value(samples, "mlops_feedback_total", outcome="incorrect") == 1
    assert value(samples, "mlops_online_accuracy") == 0.5
    # a generated id works too, and each id counts once
    _, response = http(server, "POST", "/v2/models/iris/infer", infer_body([setosa]))
    assert (
        http(server, "POST", "/v2/models/iris/feedback", {"id": response["id"], "truth": [0]})[0]
        == 200
    )
    assert value(metric_samples(server), "mlops_online_accuracy") == pytest.approx(2 / 3)
    status, error = http(
        server, "POST", "/v2/models/iris/feedback", {"id": "fb-1", "truth": [0, 1]}
    )
    assert status == 404
    assert "fb-1" in error["error"]
    assert http(server, "POST", "/v2/models/iris/feedback", {"id": "x"})[0] == 400
    assert http(server, "POST", "/v2/models/iris/feedback", b"[")[0] == 400
    # a truth that is none of the model's classes is refused, not counted as wrong
    http(server, "POST", "/v2/models/iris/infer", infer_body([setosa], id="fb-2"))
    status, error = http(server, "POST", "/v2/models/iris/feedback", {"id": "fb-2", "truth": [7]})
    assert status == 400
    assert "not a class of this model (classes: 0, 1, 2)" in error["error"]
    assert value(metric_samples(server), "mlops_online_accuracy") == pytest.approx(2 / 3)


# readiness ------------------------------------------------------------------------------------


def test_not_ready_until_the_model_is_loaded(
    artifact: tuple[Path, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    release = threading.Event()
    real_load = model_module.load

    def slow_load(*args: Any, **kwargs: Any) -> model_module.LoadedModel:
        release.wait(30)
        return real_load(*args, **kwargs)

    monkeypatch.setattr(model_module, "load", slow_load)
    settings = settings_for(artifact)
    with running_server(settings, DataPlane(settings)) as base:
        assert http(base, "GET", "/v2/health/live")[0] == 200
        assert http(base, "GET", "/v2/health/ready") == (503, {"ready": False})
        assert http(base, "GET", "/v2/models/iris/ready")[0] == 503
        status, error = http(base, "POST", "/v2/models/iris/infer", infer_body([ROW]))
        assert status == 503
        assert "not loaded yet" in error["error"]
        release.set()
        wait_ready(base)
        assert http(base, "POST", "/v2/models/iris/infer", infer_body([ROW]))[0] == 200


def test_tritonclient_binary_tensors(server: str) -> None:
    """tritonclient's defaults: inputs in the binary tensor data extension."""
    import tritonclient.http as triton

    client = triton.InferenceServerClient(server.removeprefix("http://"))
    try:
        data = np.array([ROW, [6.7, 3.0, 5.2, 2.3]], dtype=np.float64)
        tensor = triton.InferInput("input-0", list(data.shape), "FP64")
        tensor.set_data_from_numpy(data)  # binary_data=True
        result = client.infer("iris", [tensor])
        assert result.as_numpy("predict").tolist() == [0, 2]
        per_feature = []
        for i, name in enumerate(FEATURES):
            feature = triton.InferInput(name, [2], "FP32")
            feature.set_data_from_numpy(data[:, i].astype(np.float32))
            per_feature.append(feature)
        result = client.infer(
            "iris", per_feature, outputs=[triton.InferRequestedOutput("predict_proba")]
        )
        assert result.as_numpy("predict_proba").shape == (2, 3)
    finally:
        client.close()


@pytest.mark.parametrize(
    ("header", "body", "words"),
    [
        ("abc", b"{}", "Inference-Header-Content-Length"),
        ("999", b"{}", "outside the body"),
        (
            str(len(INFER_ONE)),
            INFER_ONE + b"xx",
            "binary bytes after the last",
        ),
    ],
)
def test_binary_extension_errors(server: str, header: str, body: bytes, words: str) -> None:
    status, response = http(
        server,
        "POST",
        "/v2/models/iris/infer",
        body,
        headers={"Inference-Header-Content-Length": header},
    )
    assert status == 400, response
    assert words in response["error"]
