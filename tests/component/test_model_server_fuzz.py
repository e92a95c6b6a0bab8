"""Fuzzing the infer and feedback endpoints over HTTP: no input ever gets a 5xx."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from model_server.protocol import DATATYPES
from model_server.settings import ServerSettings
from model_server.testing import http, iris_artifact, running_server, wait_ready

pytestmark = pytest.mark.component

FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


def dumps(value: Any) -> bytes:
    return json.dumps(value).encode()


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=5),
)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4)
    ),
    max_leaves=12,
)
shapes = st.lists(st.integers(min_value=-2, max_value=6), min_size=0, max_size=3)
tensors = st.fixed_dictionaries(
    {
        "name": st.sampled_from(["input-0", *FEATURES, ""]),
        "shape": shapes | json_values,
        "datatype": st.sampled_from([*DATATYPES, "FP128", "fp32"]) | json_values,
        "data": st.lists(st.one_of(scalars, st.lists(scalars, max_size=4)), max_size=24)
        | json_values,
    },
    optional={"parameters": json_values},
)
requests = st.fixed_dictionaries(
    {"inputs": st.lists(tensors, max_size=5) | json_values},
    optional={
        "id": st.text(max_size=8) | json_values,
        "outputs": st.lists(
            st.fixed_dictionaries(
                {"name": st.sampled_from(["predict", "predict_proba", "x"]) | json_values}
            ),
            max_size=3,
        )
        | json_values,
        "parameters": json_values,
    },
)
bodies = st.one_of(
    requests.map(dumps),
    json_values.map(dumps),
    st.binary(max_size=200),
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    directory: Path = tmp_path_factory.mktemp("iris") / "artifact"
    digest = iris_artifact(directory)
    settings_ = ServerSettings(model_uri=str(directory), model_digest=digest, max_rows=50)
    with running_server(settings_) as base:
        wait_ready(base)
        yield base


def check(status: int, response: Any) -> None:
    assert status < 500, response
    if status != 200:
        assert isinstance(response, dict), response
        assert set(response) == {"error"}, response
        assert response["error"], response


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=bodies)
def test_infer_never_answers_5xx(server: str, body: bytes) -> None:
    check(*http(server, "POST", "/v2/models/iris/infer", body))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rows=st.integers(min_value=0, max_value=8),
    values=st.lists(
        st.floats(allow_nan=False, allow_infinity=False, width=32), min_size=32, max_size=32
    ),
    datatype=st.sampled_from(["FP32", "FP64", "INT64", "FP16"]),
)
def test_well_formed_infer_succeeds(
    server: str, rows: int, values: list[float], datatype: str
) -> None:
    data: list[Any] = values[: rows * 4]
    if datatype == "INT64":
        data = [int(v) if abs(v) < 2**62 else 0 for v in data]
    body = {"inputs": [{"name": "x", "shape": [rows, 4], "datatype": datatype, "data": data}]}
    status, response = http(server, "POST", "/v2/models/iris/infer", body)
    assert status == 200, response
    assert response["outputs"][0]["shape"] == [rows]
    assert len(response["outputs"][0]["data"]) == rows


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=st.one_of(json_values.map(dumps), st.binary(max_size=100)))
def test_feedback_never_answers_5xx(server: str, body: bytes) -> None:
    check(*http(server, "POST", "/v2/models/iris/feedback", body))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    request=requests,
    sizes=st.lists(st.integers(min_value=-1, max_value=40), max_size=4),
    tail=st.binary(max_size=80),
    header=st.integers(min_value=-2, max_value=300) | st.none(),
)
def test_binary_extension_never_answers_5xx(
    server: str, request: dict[str, Any], sizes: list[int], tail: bytes, header: int | None
) -> None:
    inputs = request.get("inputs")
    if isinstance(inputs, list):
        for item, size in zip(inputs, sizes, strict=False):
            if isinstance(item, dict):
                item.setdefault("parameters", {})
                if isinstance(item["parameters"], dict):
                    item["parameters"]["binary_data_size"] = size
                    item.pop("data", None)
    head = dumps(request)
    length = len(head) if header is None else header
    status, response = http(
        server,
        "POST",
        "/v2/models/iris/infer",
        head + tail,
        headers={"Inference-Header-Content-Length": str(length)},
    )
    check(status, response)
