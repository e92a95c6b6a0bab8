"""The gRPC service over real gRPC on loopback, with tritonclient: the REST conformance cases."""

from __future__ import annotations

import ast
import re
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
from model_server.testing import http, iris_artifact, running_servers, wait_ready

pytestmark = pytest.mark.component

ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]
FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    directory = tmp_path_factory.mktemp("iris") / "artifact"
    return directory, iris_artifact(directory, onnx=True)


def settings_for(artifact: tuple[Path, str], **overrides: Any) -> ServerSettings:
    return ServerSettings(
        model_uri=f"file://{artifact[0]}",
        model_digest=artifact[1],
        variant="canary",
        grpc_port=0,
        **overrides,
    )


@pytest.fixture(scope="module", params=["onnx", "sklearn"])
def servers(
    request: pytest.FixtureRequest, artifact: tuple[Path, str]
) -> Iterator[tuple[str, str]]:
    settings = settings_for(artifact, runtime=request.param, max_request_bytes=64 * 1024)
    with running_servers(settings) as (base, target):
        assert target is not None
        wait_ready(base)
        yield base, target


@pytest.fixture
def client(servers: tuple[str, str]) -> Iterator[Any]:
    import tritonclient.grpc as triton

    client = triton.InferenceServerClient(servers[1])
    yield client
    client.close()


def infer_input(name: str, data: np.ndarray[Any, Any], datatype: str) -> Any:
    import tritonclient.grpc as triton

    tensor = triton.InferInput(name, list(data.shape), datatype)
    tensor.set_data_from_numpy(data)
    return tensor


def outputs(*names: str) -> list[Any]:
    import tritonclient.grpc as triton

    return [triton.InferRequestedOutput(name) for name in names]


def test_health_and_metadata(client: Any, servers: tuple[str, str]) -> None:
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready("iris")
    assert client.is_model_ready("iris", "1")
    server = client.get_server_metadata(as_json=True)
    assert server["name"] == "mlops-model-server"
    metadata = client.get_model_metadata("iris", as_json=True)
    _, rest = http(servers[0], "GET", "/v2/models/iris")
    assert metadata["name"] == rest["name"] == "iris"
    assert metadata["versions"] == ["1"]
    assert metadata["platform"] == "sklearn"
    assert [(i["name"], i["datatype"], i["shape"]) for i in metadata["inputs"]] == [
        (i["name"], i["datatype"], [str(d) for d in i["shape"]]) for i in rest["inputs"]
    ]
    assert [o["name"] for o in metadata["outputs"]] == ["predict", "predict_proba"]
    assert client.get_model_metadata("iris", "1", as_json=True) == metadata


def test_infer_matches_rest(client: Any, servers: tuple[str, str]) -> None:
    data = np.array(ROWS, dtype=np.float64)
    result = client.infer(
        "iris",
        [infer_input("input-0", data, "FP64")],
        outputs=outputs("predict", "predict_proba"),
        request_id="grpc-1",
    )
    response = result.get_response(as_json=True)
    assert response["id"] == "grpc-1"
    assert response["model_name"] == "iris"
    assert response["model_version"] == "1"
    assert result.as_numpy("predict").tolist() == [0, 2]
    proba = result.as_numpy("predict_proba")
    assert proba.shape == (2, 3)
    assert [o["datatype"] for o in response["outputs"]] == ["INT64", "FP64"]
    flat = [v for row in ROWS for v in row]
    rest_body = {
        "id": "grpc-1",
        "inputs": [{"name": "input-0", "shape": [2, 4], "datatype": "FP64", "data": flat}],
        "outputs": [{"name": "predict"}, {"name": "predict_proba"}],
    }
    _, rest = http(servers[0], "POST", "/v2/models/iris/infer", rest_body)
    assert rest["outputs"][0]["data"] == [0, 2]
    np.testing.assert_allclose(proba.ravel(), rest["outputs"][1]["data"], rtol=1e-12)
    assert ast.literal_eval(response["outputs"][1]["parameters"]["classes"]["string_param"]) == [
        0,
        1,
        2,
    ]


def test_infer_per_feature_fp32_default_outputs_and_versions(client: Any) -> None:
    inputs = [
        infer_input(name, np.array([value], dtype=np.float32), "FP32")
        for name, value in zip(FEATURES, ROWS[1], strict=True)
    ]
    result = client.infer("iris", inputs, model_version="1")
    response = result.get_response(as_json=True)
    assert [o["name"] for o in response["outputs"]] == ["predict"]
    assert result.as_numpy("predict").tolist() == [2]
    assert len(response["id"]) == 32  # generated, as over REST


def test_typed_contents_without_raw(servers: tuple[str, str]) -> None:
    """A client that sends InferTensorContents (not raw) gets the same answer."""
    import grpc
    from tritonclient.grpc import service_pb2, service_pb2_grpc

    with grpc.insecure_channel(servers[1]) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        request = service_pb2.ModelInferRequest(model_name="iris", id="typed")
        tensor = request.inputs.add(name="input-0", datatype="FP64", shape=[2, 4])
        tensor.contents.fp64_contents.extend([v for row in ROWS for v in row])
        response = stub.ModelInfer(request)
    assert response.id == "typed"
    assert np.frombuffer(response.raw_output_contents[0], dtype="<i8").tolist() == [0, 2]


def error_cases() -> list[tuple[str, Any, str, str]]:
    return [
        ("unknown model", ("other", np.array(ROWS), "FP64", None), "NOT_FOUND", "'other'"),
        ("unknown version", ("iris", np.array(ROWS), "FP64", "7"), "NOT_FOUND", "version '7'"),
        ("bad shape", ("iris", np.array([ROWS[0][:3]]), "FP64", None), "INVALID_ARGUMENT", "shape"),
        (
            "missing value",
            ("iris", np.array([[1.0, np.nan, 2.0, 3.0]]), "FP64", None),
            "INVALID_ARGUMENT",
            "missing value",
        ),
        ("too large", ("iris", np.zeros((3000, 4)), "FP64", None), "RESOURCE_EXHAUSTED", ""),
        (
            "wrong datatype",
            ("iris", np.array([["a", "b", "c", "d"]], dtype=object), "BYTES", None),
            "INVALID_ARGUMENT",
            "not numbers",
        ),
    ]


@pytest.mark.parametrize(("case", "call", "code", "words"), error_cases())
def test_errors_are_status_codes_naming_the_problem(
    client: Any,
    case: str,
    call: tuple[str, np.ndarray[Any, Any], str, str | None],
    code: str,
    words: str,
) -> None:
    from tritonclient.utils import InferenceServerException

    model, data, datatype, version = call
    with pytest.raises(InferenceServerException) as raised:
        client.infer(model, [infer_input("x", data, datatype)], model_version=version or "")
    assert raised.value.status() == f"StatusCode.{code}", case
    assert words in raised.value.message(), raised.value.message()


def test_unknown_model_metadata_and_output(client: Any) -> None:
    from tritonclient.utils import InferenceServerException

    with pytest.raises(InferenceServerException, match="'other'") as raised:
        client.get_model_metadata("other")
    assert raised.value.status() == "StatusCode.NOT_FOUND"
    with pytest.raises(InferenceServerException, match="unknown output 'nope'") as raised:
        client.infer("iris", [infer_input("x", np.array(ROWS), "FP64")], outputs=outputs("nope"))
    assert raised.value.status() == "StatusCode.INVALID_ARGUMENT"
    with pytest.raises(InferenceServerException) as raised:
        client.is_model_ready("other")
    assert raised.value.status() == "StatusCode.NOT_FOUND"


def test_grpc_requests_are_counted_like_rest(client: Any, servers: tuple[str, str]) -> None:
    def count(code: str) -> float:
        _, text = http(servers[0], "GET", "/metrics")
        for family in text_string_to_metric_families(text.decode()):
            for sample in family.samples:
                if sample.name == "mlops_requests_total" and sample.labels["code"] == code:
                    return sample.value
        return 0.0

    ok, bad = count("200"), count("400")
    client.infer("iris", [infer_input("x", np.array(ROWS), "FP64")])
    with pytest.raises(Exception, match="shape"):
        client.infer("iris", [infer_input("x", np.array([ROWS[0][:3]]), "FP64")])
    assert (count("200"), count("400")) == (ok + 1, bad + 1)


def test_grpc_unavailable_until_the_model_is_loaded(
    artifact: tuple[Path, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import tritonclient.grpc as triton
    from tritonclient.utils import InferenceServerException

    release = threading.Event()
    real_load = model_module.load

    def slow_load(*args: Any, **kwargs: Any) -> model_module.LoadedModel:
        release.wait(30)
        return real_load(*args, **kwargs)

    monkeypatch.setattr(model_module, "load", slow_load)
    settings = settings_for(artifact)
    with running_servers(settings, DataPlane(settings)) as (base, target):
        assert target is not None
        client = triton.InferenceServerClient(target)
        try:
            assert client.is_server_live()
            assert not client.is_server_ready()
            assert not client.is_model_ready("iris")
            with pytest.raises(InferenceServerException, match="not loaded yet") as raised:
                client.infer("iris", [infer_input("x", np.array(ROWS), "FP64")])
            assert raised.value.status() == "StatusCode.UNAVAILABLE"
            release.set()
            wait_ready(base)
            assert client.infer("iris", [infer_input("x", np.array(ROWS), "FP64")]).as_numpy(
                "predict"
            ).tolist() == [0, 2]
        finally:
            client.close()


def test_the_generated_code_matches_the_vendored_proto(tmp_path: Path) -> None:
    """hack/gen-grpc.sh was run after the last change of the .proto."""
    from grpc_tools import protoc

    proto = Path("model_server/proto")
    assert (
        protoc.main(
            [
                "protoc",
                f"--proto_path={proto}",
                f"--python_out={tmp_path}",
                str(proto / "grpc_predict_v2.proto"),
            ]
        )
        == 0
    )
    fresh = (tmp_path / "grpc_predict_v2_pb2.py").read_text()
    committed = (proto / "grpc_predict_v2_pb2.py").read_text()
    pattern = re.compile(r"AddSerializedFile\((b'.*?')\)")
    assert pattern.findall(fresh) == pattern.findall(committed), "run hack/gen-grpc.sh"
