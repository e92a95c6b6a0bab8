"""The data plane without HTTP: metadata, readiness, metrics, the OpenAPI document."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from model_server import openapi
from model_server.dataplane import DataPlane
from model_server.errors import ModelNotFound, ModelNotReady
from model_server.metrics import Metrics
from model_server.settings import ServerSettings

BODY = orjson.dumps(
    {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": [5.1, 3.5, 1.4, 0.2]}]}
)


def samples(plane: DataPlane) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = plane.metrics_exposition().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_not_ready_until_loaded(iris_settings: ServerSettings) -> None:
    plane = DataPlane(iris_settings)
    assert not plane.ready()
    assert plane.metrics_exposition() == b""
    with pytest.raises(ModelNotReady):
        asyncio.run(plane.infer("iris", None, BODY))
    plane.load()
    assert plane.ready()
    assert plane.model_ready("iris", None)
    assert plane.model_ready("iris", "1")


def test_failed_load_is_remembered(iris: tuple[Path, str]) -> None:
    settings = ServerSettings(model_uri=str(iris[0]), model_digest="sha256:" + "a" * 64)
    plane = DataPlane(settings)
    assert not asyncio.run(plane.load_async())
    assert plane.load_error is not None
    assert "refusing" in plane.load_error
    assert not plane.ready()


def test_unknown_model_and_version(iris_plane: DataPlane) -> None:
    with pytest.raises(ModelNotFound, match="'other'"):
        iris_plane.model_metadata("other", None)
    with pytest.raises(ModelNotFound, match="version '9'"):
        iris_plane.model_metadata("iris", "9")


def test_metadata(iris_plane: DataPlane) -> None:
    metadata = iris_plane.model_metadata("iris", None)
    assert metadata["versions"] == ["1"]
    assert next(i["name"] for i in metadata["inputs"]) == "sepal_length"
    assert [o["name"] for o in metadata["outputs"]] == ["predict", "predict_proba"]
    assert metadata["outputs"][0]["datatype"] == "INT64"


def test_infer_counts(iris_plane: DataPlane) -> None:
    async def main() -> list[bytes]:
        results = await asyncio.gather(*(iris_plane.infer("iris", None, BODY) for _ in range(5)))
        await iris_plane.shutdown()
        return list(results)

    responses = [orjson.loads(r) for r in asyncio.run(main())]
    assert all(r["outputs"][0]["data"] == [0] for r in responses)
    metrics = samples(iris_plane)
    labels = (("model", "iris"), ("variant", "canary"))
    direct = (("code", "200"), ("model", "iris"), ("source", "direct"), ("variant", "canary"))
    assert metrics[("mlops_requests_total", direct)] == 5  # no router token: nothing is proved
    assert metrics[("mlops_predictions_total", (("class", "0"), *labels))] == 5
    assert metrics[("mlops_batch_size_sum", labels)] == 5


def test_metrics_registries_are_per_instance() -> None:
    first, second = Metrics("m", "stable"), Metrics("m", "stable")
    first.request(200, 0.01)
    assert b'mlops_requests_total{code="200"' in first.exposition()
    assert b'mlops_requests_total{code="200"' not in second.exposition()


def test_committed_openapi_document_is_current() -> None:
    committed = (Path(openapi.__file__).parent / "openapi.json").read_text()
    assert committed == openapi.render(), (
        "run: python -m model_server.openapi > model_server/openapi.json"
    )


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLOPS_MODEL_URI", "pvc://models/iris/1")
    monkeypatch.setenv("MLOPS_MODEL_DIGEST", "sha256:" + "0" * 64)
    monkeypatch.setenv("MLOPS_VARIANT", "canary")
    monkeypatch.setenv("MLOPS_MAX_BATCH_SIZE", "8")
    settings = ServerSettings()
    assert (settings.variant, settings.max_batch_size, settings.allow_pickle) == (
        "canary",
        8,
        False,
    )
    for name, field in ServerSettings.model_fields.items():
        assert field.description, f"{name} has no description"


def test_a_request_the_model_rejects_fails_alone(tmp_path: Path) -> None:
    """An unseen category with handle_unknown="error": 400 for it, the rest of the batch is fine."""
    import pandas as pd
    from sklearn.compose import make_column_transformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    from model_server.errors import InvalidInput
    from model_server.testing import write_artifact

    frame = pd.DataFrame({"color": ["red", "blue"] * 10})
    model = make_pipeline(
        make_column_transformer((OneHotEncoder(handle_unknown="error"), ["color"])),
        LogisticRegression(),
    )
    digest = write_artifact(tmp_path, model, frame, [0, 1] * 10, name="colors")
    settings = ServerSettings(model_uri=str(tmp_path), model_digest=digest, max_batch_wait=0.05)
    plane = DataPlane(settings)
    plane.load()

    def request(color: str) -> bytes:
        tensor = {"name": "color", "shape": [1], "datatype": "BYTES", "data": [color]}
        return orjson.dumps({"inputs": [tensor]})

    async def main() -> list[bytes | BaseException]:
        results = await asyncio.gather(
            plane.infer("colors", None, request("red")),
            plane.infer("colors", None, request("green")),
            plane.infer("colors", None, request("blue")),
            return_exceptions=True,
        )
        await plane.shutdown()
        return list(results)

    red, green, blue = asyncio.run(main())
    assert isinstance(green, InvalidInput)
    assert "the model rejected the input" in green.message
    assert isinstance(red, bytes)
    assert isinstance(blue, bytes)
    assert orjson.loads(red)["outputs"][0]["data"] == [0]
    assert orjson.loads(blue)["outputs"][0]["data"] == [1]
